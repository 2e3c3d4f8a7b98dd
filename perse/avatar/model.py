"""The PERSE avatar: canonical 3D Gaussians whose look is decoded from a per-category latent.

Canonical space is world space at the frontal head pose (perse.camera); a frame's head pose is its
world-to-camera matrix, so the model never moves Gaussians rigidly itself. A latent is the
concatenation of one `latent_dim` sub-vector per category. Each category owns a table of learned codes,
row 0 being the source (reference) look. A decoder maps (canonical position encoding, latent,
expression) to per-Gaussian deltas of colour, opacity, scale, rotation and position.

The decoder's first layer is split by input: the position part depends only on the Gaussian and the
latent/expression part only on the frame, so a batch of B frames costs one (N, width) product plus a
broadcast add, not a (B*N, input) product.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from perse.avatar.gaussians import Gaussians
from perse.config import AvatarConfig

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
    def __init__(self, pos_dim: int, cond_dim: int, width: int, layers: int):
        super().__init__()
        self.pos_in = nn.Linear(pos_dim, width)
        self.cond_in = nn.Linear(cond_dim, width, bias=False)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(layers - 1))
        self.out = nn.Linear(width, sum(size for _, size in OUTPUTS))
        # Zero output layer: an untrained decoder leaves the canonical Gaussians untouched.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, pos_features: torch.Tensor, cond: torch.Tensor) -> dict[str, torch.Tensor]:
        """pos_features (N, P), cond (B, C) -> each output (B, N, size)."""
        h = torch.relu(self.pos_in(pos_features)[None] + self.cond_in(cond)[:, None])
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return dict(zip([name for name, _ in OUTPUTS], self.out(h).split([size for _, size in OUTPUTS], dim=-1)))


class AvatarModel(nn.Module):
    """Canonical Gaussians + code tables + decoder. `decode(latents, expressions)` gives world Gaussians."""

    def __init__(self, config: AvatarConfig, categories: Mapping[str, int], expression_dim: int,
                 points: torch.Tensor, colors: torch.Tensor, scales: torch.Tensor, seed: int = 0):
        super().__init__()
        self.category_names = list(categories)
        self.latent_dim = config.latent_dim
        self.pos_freqs = config.pos_freqs
        n = len(points)
        generator = torch.Generator().manual_seed(seed)
        self.means = nn.Parameter(points.float().clone())
        self.log_scales = nn.Parameter(torch.log(scales.float().clamp_min(1e-6)).expand(n, 3).clone())
        self.quats = nn.Parameter(torch.tensor([1.0, 0, 0, 0]).repeat(n, 1))
        self.opacity_logits = nn.Parameter(torch.full((n,), float(inverse_sigmoid(torch.tensor(0.5)))))
        self.color_logits = nn.Parameter(inverse_sigmoid(colors.float()))
        self.codes = nn.ParameterList(
            nn.Parameter(torch.randn(count, config.latent_dim, generator=generator) * config.prior_std)
            for count in categories.values())
        cond_dim = config.latent_dim * len(categories) + expression_dim
        pos_dim = 3 + 6 * config.pos_freqs
        torch.manual_seed(seed)
        self.decoder = Decoder(pos_dim, cond_dim, config.decoder_width, config.decoder_layers)

    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[0])

    def latent(self, code_indices: torch.Tensor) -> torch.Tensor:
        """(B, n_categories) code indices -> (B, latent_size) latents."""
        return torch.cat([table[code_indices[:, c]] for c, table in enumerate(self.codes)], dim=-1)

    def canonical(self) -> Gaussians:
        """The undecoded Gaussians (what initialisation and densification act on)."""
        return Gaussians(self.means, self.quats, torch.exp(self.log_scales), torch.sigmoid(self.opacity_logits),
                         torch.sigmoid(self.color_logits))

    def decode(self, latents: torch.Tensor, expressions: torch.Tensor) -> Gaussians:
        """latents (B, latent_size), expressions (B, E) -> batched world Gaussians (B, N, ...)."""
        pos = positional_encoding(self.means.detach(), self.pos_freqs)
        deltas = self.decoder(pos, torch.cat([latents, expressions], dim=-1))
        return Gaussians(
            means=self.means + OFFSET_UNIT * deltas["offset"],
            quats=self.quats + deltas["rotation"],
            scales=torch.exp(self.log_scales + deltas["scale"]),
            opacities=torch.sigmoid(self.opacity_logits + deltas["opacity"][..., 0]),
            colors=torch.sigmoid(self.color_logits + deltas["color"]),
        )
