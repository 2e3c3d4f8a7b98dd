"""A trained avatar, loadable from a run folder alone, with the calls an app or exporter needs.

    avatar = Avatar.load("runs/me")                       # <run>/avatar/checkpoint.pt
    image = avatar.render({"hair": "hair_b"}, yaw=15)     # (H, W, 3) float numpy in [0, 1]
    z = avatar.interpolate("hair", "source", "hair_b", 0.5)
    z = avatar.latent({"hair": 2, "glasses": z_glasses})  # compose several categories
    z = avatar.sample(seed=3)                             # random look from the fitted prior
    code = avatar.fit_code(photo, mask, "hair")           # attribute transfer from a new image

A *latent* is a (latent_size,) tensor: one `latent_dim` sub-vector per category in `avatar.categories`
order. Wherever a latent is expected, a selection dict {category: value} is accepted too, a value being
a value label, a code index or a (latent_dim,) code tensor; unnamed categories keep the source look.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np
import torch

from perse.avatar.model import AvatarModel
from perse.config import PipelineConfig, config_from_dict
from perse.core.camera import Camera, head_pose_viewmat
from perse.core.gaussians import Gaussians
from perse.core.io import atomic_path
from perse.core.paths import RunPaths
from perse.core.render import render, render_batch
from perse.errors import PerseError

Selection = Union[torch.Tensor, Mapping[str, Any], None]
# How far a random sample strays from the learned code it starts at, as a fraction of the distance to
# that code's nearest neighbour (`Avatar.sample`).
SAMPLE_SPREAD = 0.15


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save to a temporary file then rename, so a crash never leaves a half-written checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, device: str = "cpu") -> dict[str, Any]:
    if not path.exists():
        raise PerseError(f"{path} is missing: this run has no trained avatar yet; run `perse train {path.parent.parent}`")
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise PerseError(f"{path}: not a readable PERSE avatar checkpoint ({exc}); delete it and re-run "
                         "`perse train`") from exc


def model_from_state(state: dict[str, Any], device: str = "cpu") -> AvatarModel:
    config = config_from_dict(state["config"])
    n = state["model"]["means"].shape[0]
    counts = {name: len(values) for name, values in state["categories"].items()}
    zeros = torch.zeros(n, 3)
    model = AvatarModel(config.avatar, counts, len(state["expression_names"]), zeros, zeros + 0.5, zeros[:, :1] + 1,
                        seed=config.seed)
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    if missing or unexpected:
        raise PerseError(f"this avatar checkpoint was written by another version of PERSE Studio (its model "
                         f"{'lacks ' + ', '.join(missing) if missing else 'has extra ' + ', '.join(unexpected)}); "
                         "re-run `perse train` on its run folder")
    return model.to(device)


class Avatar:
    """A trained PERSE avatar (model + the names and camera it was trained with)."""

    def __init__(self, model: AvatarModel, config: PipelineConfig, categories: dict[str, list[str]],
                 expression_names: list[str], image_size: int, intrinsics: np.ndarray):
        self.model = model.eval()
        self.config = config
        self.categories = categories
        self.expression_names = list(expression_names)
        self.image_size = int(image_size)
        self.intrinsics = np.asarray(intrinsics, dtype=np.float64)

    @classmethod
    def load(cls, run: Path | str, device: str | None = None) -> "Avatar":
        """Load <run>/avatar/checkpoint.pt (written by `perse train`) onto `device` (default: CUDA if present)."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        state = load_checkpoint(RunPaths(run).checkpoint, device)
        config = config_from_dict(state["config"])
        return cls(model_from_state(state, device), config, state["categories"], state["expression_names"],
                   state["image_size"], np.asarray(state["intrinsics"]))

    @property
    def device(self) -> torch.device:
        return self.model.means.device

    @property
    def fov_deg(self) -> float:
        return math.degrees(2 * math.atan(0.5 * self.image_size / self.intrinsics[1, 1]))

    def _category(self, category: str) -> int:
        if category not in self.categories:
            raise PerseError(f"unknown category '{category}'; this avatar has: {', '.join(self.categories)}")
        return list(self.categories).index(category)

    def code(self, category: str, value: int | str | torch.Tensor) -> torch.Tensor:
        """One category's (latent_dim,) code: by value label, code index, or a code tensor passed through."""
        index = self._category(category)
        if isinstance(value, torch.Tensor):
            if value.shape != (self.model.latent_dim,):
                raise PerseError(f"a code for '{category}' must have shape ({self.model.latent_dim},), got "
                                 f"{tuple(value.shape)}")
            return value.to(self.device)
        values = self.categories[category]
        if isinstance(value, str):
            if value not in values:
                raise PerseError(f"category '{category}' has no value '{value}'; known: {', '.join(values)}")
            value = values.index(value)
        if not 0 <= int(value) < len(values):
            raise PerseError(f"category '{category}' has codes 0..{len(values) - 1}, got {value}")
        return self.model.codes[index][int(value)].detach()

    def latent(self, selection: Selection = None) -> torch.Tensor:
        """Compose a full latent: {category: value} for any number of categories, source elsewhere."""
        if isinstance(selection, torch.Tensor):
            if selection.shape != (self.latent_size,):
                raise PerseError(f"a latent must have shape ({self.latent_size},), got {tuple(selection.shape)}")
            return selection.to(self.device)
        chosen = dict(selection or {})
        for name in chosen:
            self._category(name)
        return torch.cat([self.code(name, chosen.get(name, 0)) for name in self.categories])

    @property
    def latent_size(self) -> int:
        return self.model.latent_dim * len(self.categories)

    def interpolate(self, category: str, a, b, t: float, base: Selection = None) -> torch.Tensor:
        """Latent with `category` set to (1 - t) * code(a) + t * code(b), other categories from `base`."""
        code = (1 - t) * self.code(category, a) + t * self.code(category, b)
        return self.with_code(self.latent(base), category, code)

    def with_code(self, latent: torch.Tensor, category: str, code: torch.Tensor) -> torch.Tensor:
        index = self._category(category)
        d = self.model.latent_dim
        return torch.cat([latent[: index * d], code.to(latent), latent[(index + 1) * d:]])

    def prior(self, category: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and per-dimension std of the Gaussian fitted to a category's learned codes."""
        codes = self.model.codes[self._category(category)].detach()
        # A floor keeps a category with near-identical codes sampleable around them.
        std = codes.std(dim=0, unbiased=False).clamp_min(0.05 * self.config.avatar.prior_std)
        return codes.mean(dim=0), std

    def learned_codes(self, category: str) -> torch.Tensor:
        """(n_values, latent_dim): the category's trained codes, source first."""
        return self.model.codes[self._category(category)].detach()

    def slider_code(self, category: str, position: float) -> torch.Tensor:
        """Slider position p in [0, n-1] -> the blend of codes floor(p) and ceil(p) (clamped to the ends)."""
        last = len(self.categories[category]) - 1
        position = min(max(float(position), 0.0), float(last))
        low = int(math.floor(position))
        high = min(low + 1, last)
        t = position - low
        return (1 - t) * self.code(category, low) + t * self.code(category, high)

    def within_learned_codes(self, category: str, code: torch.Tensor) -> torch.Tensor:
        """Pull a code back to the region the decoder was trained on: no farther from the prior mean (in
        prior standard deviations) than the farthest learned code, keeping its direction. Far outside it
        the decoder emits huge, streaky Gaussians."""
        mean, std = self.prior(category)
        radius = ((self.learned_codes(category) - mean) / std).norm(dim=1).max()
        z = (code.to(mean) - mean) / std
        norm = z.norm()
        return code.to(mean) if norm <= radius else mean + std * z * (radius / norm)

    def sample(self, seed: int = 0, categories: list[str] | None = None, base: Selection = None) -> torch.Tensor:
        """A random latent from a prior fitted on the learned codes: a mixture of small Gaussians, one
        around each code. Each listed category (default all) picks one of its codes at random and moves
        away from it by a Gaussian step of SAMPLE_SPREAD times the distance to its nearest other code.

        Samples stay next to a look the decoder was trained on: an accessory is either there or not.
        (Convex mixes of all codes, the former prior, land between unrelated looks, where the decoder
        draws half-transparent ghosts of several at once.)
        """
        generator = torch.Generator().manual_seed(seed)
        latent = self.latent(base)
        for name in categories or list(self.categories):
            codes = self.learned_codes(name)
            pick = int(torch.randint(len(codes), (1,), generator=generator))
            code = codes[pick]
            if len(codes) > 1:
                gap = torch.cat([codes[:pick], codes[pick + 1:]]).sub(code).norm(dim=1).min()
                step = torch.randn(code.shape, generator=generator).to(code) / math.sqrt(code.numel())
                code = code + SAMPLE_SPREAD * gap * step
            latent = self.with_code(latent, name, code)
        return latent

    def expression(self, expression: Mapping[str, float] | np.ndarray | list | None) -> torch.Tensor:
        """Expression vector from {name: value} (unnamed = 0) or a full list."""
        if expression is None:
            return torch.zeros(len(self.expression_names), device=self.device)
        if isinstance(expression, Mapping):
            unknown = set(expression) - set(self.expression_names)
            if unknown:
                raise PerseError(f"unknown expression(s) {sorted(unknown)}; known: {', '.join(self.expression_names)}")
            values = [float(expression.get(name, 0.0)) for name in self.expression_names]
        else:
            values = [float(v) for v in expression]
            if len(values) != len(self.expression_names):
                raise PerseError(f"expression needs {len(self.expression_names)} values "
                                 f"({', '.join(self.expression_names)}), got {len(values)}")
        return torch.tensor(values, device=self.device)

    def gaussians(self, selection: Selection = None, expression=None) -> Gaussians:
        """Decoded world-space Gaussians (canonical head pose) for a latent and expression."""
        latent = self.latent(selection)
        batched = self.model.decode(latent[None], self.expression(expression)[None])
        return batched.map(lambda t: t[0])

    def camera(self, yaw: float = 0.0, pitch: float = 0.0, size: int | None = None) -> Camera:
        size = size or self.image_size
        K = self.intrinsics.copy()
        K[:2] *= size / self.image_size
        return Camera(K, head_pose_viewmat(self.fov_deg, yaw, pitch), size, size)

    @torch.no_grad()
    def render(self, selection: Selection = None, yaw: float = 0.0, pitch: float = 0.0, expression=None,
               size: int | None = None, background=(1.0, 1.0, 1.0)) -> np.ndarray:
        """Render to an (size, size, 3) float numpy image in [0, 1] (default: training size, white background).

        `selection` is a latent or {category: value}; yaw/pitch in degrees (positive yaw turns the face
        to the image's left); `expression` is {name: value} or a full vector.
        """
        out = render(self.gaussians(selection, expression), self.camera(yaw, pitch, size), background,
                     backend=self.config.avatar.renderer)
        return out.rgb.clamp(0, 1).cpu().numpy()

    def fit_code(self, image: np.ndarray, mask: np.ndarray, category: str, yaw: float = 0.0, pitch: float = 0.0,
                 expression=None, steps: int = 200, lr: float = 0.02, base: Selection = None) -> torch.Tensor:
        """Find the `category` code that best reproduces `image` inside `mask` (decoder frozen).

        `image` (H, W, 3) in [0, 1] and `mask` (H, W) in [0, 1] (the attribute's region) are seen from
        the given head pose; returns a (latent_dim,) code usable in `latent({category: code})`, kept
        within the learned codes' range (a photo unlike every training clip otherwise drives it far out).
        """
        camera = self.camera(yaw, pitch, np.shape(image)[0])
        return self.fit_codes(np.asarray(image)[None], np.asarray(mask)[None], [category], camera.viewmat[None],
                              self.expression(expression)[None], steps=steps, lr=lr, base=base)[0]

    def fit_codes(self, images: np.ndarray, masks: np.ndarray, categories: Sequence[str], viewmats, expressions,
                  mattes: np.ndarray | None = None, steps: int = 200, lr: float = 0.02,
                  base: Selection = None) -> list[torch.Tensor]:
        """`fit_code` for a batch, each item with its own category, camera and expression, in one
        optimisation (items are independent: each code only sees its own item's loss).

        images (B, H, H, 3) and masks (B, H, H) in [0, 1]; viewmats (B, 4, 4) world-to-camera; expressions
        (B, E). Without `mattes`, as for a photo, the render is composited over its image, so only what
        the avatar draws is compared. With `mattes` (B, H, H), the person alpha of each image (a dataset
        frame has one), render and image are compared premultiplied, colour and alpha, as training
        compares frames: a look that reaches beyond the head (a hat) must then be drawn, not left to
        show through.
        """
        images = np.asarray(images, dtype=np.float32)
        masks = np.asarray(masks, dtype=np.float32)
        batch, size = images.shape[:2]
        if (images.ndim != 4 or images.shape[2:] != (size, 3) or masks.shape != images.shape[:3]
                or len(categories) != batch):
            raise PerseError(f"fit_code: needs square RGB images (B, H, H, 3), masks (B, H, H) and a category per "
                             f"image; got {images.shape}, {masks.shape} and {len(categories)} categories")
        for category, mask in zip(categories, masks):
            if mask.sum() < 1:
                raise PerseError(f"fit_code: the mask for '{category}' is empty; nothing to fit")
        device = self.device
        target = torch.tensor(images, device=device)
        weight = torch.tensor(masks, device=device)[..., None]
        matte = None if mattes is None else torch.tensor(np.asarray(mattes, np.float32), device=device)[..., None]
        if matte is not None:
            target = target * matte
        K = torch.as_tensor(self.camera(size=size).K, dtype=torch.float32, device=device)
        viewmats = torch.as_tensor(np.asarray(viewmats), dtype=torch.float32, device=device)
        expressions = torch.as_tensor(np.asarray(expressions), dtype=torch.float32, device=device)
        codes = torch.stack([self.prior(category)[0] for category in categories]).requires_grad_(True)
        base_latent = self.latent(base)
        optimizer = torch.optim.Adam([codes], lr=lr)
        for p in self.model.parameters():
            p.requires_grad_(False)
        try:
            for _ in range(steps):
                latents = torch.stack([self.with_code(base_latent, category, code)
                                       for category, code in zip(categories, codes)])
                out = render_batch(self.model.decode(latents, expressions), viewmats, K, size, size,
                                   backend=self.config.avatar.renderer)
                if matte is None:
                    error = (out.rgb + (1 - out.alpha[..., None]) * target - target).abs()
                else:
                    error = torch.cat([(out.rgb - target).abs(), (out.alpha[..., None] - matte).abs()], dim=-1)
                loss = ((error * weight).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3))).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        finally:
            for p in self.model.parameters():
                p.requires_grad_(True)
        return [self.within_learned_codes(category, code) for category, code in zip(categories, codes.detach())]
