"""The PERSE avatar: canonical 3D Gaussians whose look is decoded from a per-category latent.

Canonical space is world space at the frontal head pose (perse.core.camera); a frame's head pose is its
world-to-camera matrix, so the model never moves Gaussians rigidly itself. A latent is the
concatenation of one `latent_dim` sub-vector per category. Each category owns a table of learned codes,
row 0 being the source (reference) look. A decoder maps (canonical position encoding, latent,
expression) to per-Gaussian deltas of colour, opacity, scale, rotation and position.

The decoder is bilinear (see `Decoder`): per-Gaussian features times per-frame bases decoded from
each category's code and the expression, which makes categories compose and keeps 100k-Gaussian
batches cheap.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from perse.avatar.areas import FaceAreas, control_mask, feature_areas
from perse.config import AvatarConfig
from perse.core.gaussians import Gaussians

OUTPUTS = (("color", 3), ("opacity", 1), ("scale", 3), ("rotation", 4), ("offset", 3))
# Offsets are decoded in units of this many world units (the head radius is about 0.4), so a unit
# decoder output stays a plausible displacement.
OFFSET_UNIT = 0.05


def positional_encoding(x: torch.Tensor, freqs: int) -> torch.Tensor:
    """x (..., 3) -> (..., 3 + 6 * freqs): x, then sin/cos at octave frequencies."""
    bands = 2.0 ** torch.arange(freqs, device=x.device, dtype=x.dtype) * math.pi
    angles = (x[..., None] * bands).flatten(-2)
    return torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=-1)


def inverse_sigmoid(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(1e-4, 1 - 1e-4)
    return torch.log(x / (1 - x))


class Decoder(nn.Module):
    """Bilinear decoder: per-Gaussian features (N, F) times per-frame bases (B, F, outputs).

    Each category's code goes through its own MLP to a (F x outputs) basis, and the bases of all
    categories are summed; a linear expression basis acts on Fe further features of each Gaussian (or,
    with Fe = 0, is summed with the categories' on the same F). A Gaussian's deltas are its feature vector
    applied to that basis. So (1) categories compose additively by construction (setting hair and glasses
    together adds both effects), (2) a category only changes Gaussians whose features respond to its
    basis, which training makes the category's region, and (3) per-frame work is a few tiny MLPs plus one
    (B, N, F + Fe) x (F + Fe, outputs) product, cheap enough for 100k Gaussians in a millisecond.

    Expressions get features of their own because sharing them starves both: on obama at `fast` (H200,
    bench/results/ablation_expr_h200_obama.json) 8 features of their own raised the mouth controls
    from 2-8 to 11-30 grey levels and the held-out looks from 20.0 to 21.4 dB. Each control writes only
    the features of its face areas (perse.avatar.areas), which the model masks per Gaussian.
    """

    def __init__(self, categories: int, latent_dim: int, expression_dim: int, feature_dim: int, width: int,
                 layers: int, expression_feature_dim: int = 0, expression_gain: float = 2.0):
        super().__init__()
        self.feature_dim = feature_dim
        self.expression_feature_dim = expression_feature_dim
        self.expression_gain = expression_gain
        self.outputs = sum(size for _, size in OUTPUTS)
        sizes = [latent_dim] + [width] * (layers - 1) + [feature_dim * self.outputs]
        # One MLP per category, evaluated for all categories at once as batched matrix products.
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(categories, a, b) * math.sqrt(2.0 / a)) for a, b in zip(sizes[:-1], sizes[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(categories, 1, b)) for b in sizes[1:])
        self.expression = nn.Linear(expression_dim, (expression_feature_dim or feature_dim) * self.outputs, bias=False)
        # Each control writes only the rows of its face areas' features (perse.avatar.areas).
        allowed = (control_mask(expression_feature_dim, self.outputs) if expression_feature_dim
                   else torch.ones_like(self.expression.weight))
        self.register_buffer("expression_allowed", allowed, persistent=False)
        # Zero last layers: an untrained decoder leaves the canonical Gaussians untouched.
        nn.init.zeros_(self.weights[-1])
        nn.init.zeros_(self.expression.weight)

    def bases(self, codes: torch.Tensor, expressions: torch.Tensor) -> torch.Tensor:
        """codes (B, C, D), expressions (B, E) -> bases (B, F + Fe, outputs): the categories' summed, then
        the expressions'."""
        h = codes.transpose(0, 1)  # (C, B, D)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < len(self.weights) - 1:
                h = torch.relu(h)
        category = h.sum(0).reshape(-1, self.feature_dim, self.outputs)
        expression = F.linear(expressions * self.expression_gain, self.expression_basis())
        expression = expression.reshape(category.shape[0], -1, self.outputs)
        if not self.expression_feature_dim:
            return category + expression
        return torch.cat([category, expression], dim=1)

    def expression_basis(self) -> torch.Tensor:
        """(rows * outputs, E): the linear expression basis, each control on its own areas' features."""
        return self.expression.weight * self.expression_allowed

    def forward(self, features: torch.Tensor, codes: torch.Tensor, expressions: torch.Tensor) -> dict[str, torch.Tensor]:
        """features (N, F + Fe), codes (B, C, D), expressions (B, E) -> each output (B, N, size)."""
        out = torch.einsum("nf,bfo->bno", features, self.bases(codes, expressions))
        return dict(zip([name for name, _ in OUTPUTS], out.split([size for _, size in OUTPUTS], dim=-1)))


class AvatarModel(nn.Module):
    """Canonical Gaussians + code tables + decoder. `decode(latents, expressions)` gives world Gaussians."""

    def __init__(self, config: AvatarConfig, categories: Mapping[str, int], expression_dim: int,
                 points: torch.Tensor, colors: torch.Tensor, scales: torch.Tensor, seed: int = 0,
                 areas: FaceAreas | None = None):
        super().__init__()
        self.category_names = list(categories)
        self.latent_dim = config.latent_dim
        # Codes are drawn around N(0, prior_std^2); the decoder sees them rescaled to unit variance so
        # a code change moves its first layer as much as a position change does.
        self.code_scale = 1.0 / config.prior_std
        self.pos_freqs = config.pos_freqs
        n = len(points)
        generator = torch.Generator().manual_seed(seed)
        self.means = nn.Parameter(points.float().clone())
        self.log_scales = nn.Parameter(torch.log(scales.float().clamp_min(1e-6)).expand(n, 3).clone())
        self.quats = nn.Parameter(torch.tensor([1.0, 0, 0, 0]).repeat(n, 1))
        self.opacity_logits = nn.Parameter(torch.full((n,), float(inverse_sigmoid(torch.tensor(0.5)))))
        self.color_logits = nn.Parameter(inverse_sigmoid(colors.float()))
        # Per-Gaussian decoder features: a free vector plus a smooth function of canonical position
        # (so neighbours, and Gaussians created by densification, start out alike).
        feature_dim = config.feature_dim + config.expression_feature_dim
        self.features = nn.Parameter(torch.randn(n, feature_dim, generator=generator) * 0.1)
        self.codes = nn.ParameterList(
            nn.Parameter(torch.randn(count, config.latent_dim, generator=generator) * config.prior_std)
            for count in categories.values())
        torch.manual_seed(seed)
        self.position_features = nn.Linear(3 + 6 * config.pos_freqs, feature_dim)
        self.decoder = Decoder(len(categories), config.latent_dim, expression_dim, config.feature_dim,
                               config.decoder_width, config.decoder_layers, config.expression_feature_dim,
                               config.expression_gain)
        # The face areas the expression features are masked by; None lets expressions act anywhere.
        self.areas = areas if config.expression_feature_dim else None
        self.register_buffer("feature_areas", torch.tensor(
            feature_areas(config.expression_feature_dim) if self.areas is not None else [], dtype=torch.long),
            persistent=False)

    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[0])

    def latent(self, code_indices: torch.Tensor) -> torch.Tensor:
        """(B, n_categories) code indices -> (B, latent_size) latents."""
        return torch.cat([table.index_select(0, code_indices[:, c]) for c, table in enumerate(self.codes)], dim=-1)

    def canonical(self) -> Gaussians:
        """The undecoded Gaussians (what initialisation and densification act on)."""
        return Gaussians(self.means, self.quats, torch.exp(self.log_scales), torch.sigmoid(self.opacity_logits),
                         torch.sigmoid(self.color_logits))

    def decoder_features(self) -> torch.Tensor:
        """(N, F + Fe) each Gaussian's decoder input: its free features plus a function of its canonical
        position, the expression features weighted by the face areas it lies in."""
        means = self.means.detach()
        features = self.features + self.position_features(positional_encoding(means, self.pos_freqs))
        if self.areas is None:
            return features
        inside = self.areas.weights(means)[:, self.feature_areas]
        return torch.cat([features[:, :self.decoder.feature_dim], features[:, self.decoder.feature_dim:] * inside], 1)

    def decode(self, latents: torch.Tensor, expressions: torch.Tensor) -> Gaussians:
        """latents (B, latent_size), expressions (B, E) -> batched world Gaussians (B, N, ...)."""
        features = self.decoder_features()
        codes = (latents * self.code_scale).reshape(latents.shape[0], len(self.category_names), self.latent_dim)
        deltas = self.decoder(features, codes, expressions)
        return Gaussians(
            means=self.means + OFFSET_UNIT * deltas["offset"],
            quats=self.quats + deltas["rotation"],
            scales=torch.exp(self.log_scales + deltas["scale"]),
            opacities=torch.sigmoid(self.opacity_logits + deltas["opacity"][..., 0]),
            colors=torch.sigmoid(self.color_logits + deltas["color"]),
        )
