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
import pickle
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np
import torch

from perse.avatar.areas import FaceAreas
from perse.avatar.model import AvatarModel
from perse.config import PipelineConfig, config_from_dict
from perse.core.camera import Camera, head_pose_viewmat
from perse.core.expressions import EXPRESSION_NAMES, LEGACY_CONTROLS, expand_legacy
from perse.core.gaussians import Gaussians
from perse.core.io import atomic_path
from perse.core.paths import RunPaths
from perse.core.render import render_batch
from perse.errors import PerseError
from perse.synth.catalog import CATALOG, interpolation_pairs

Selection = Union[torch.Tensor, Mapping[str, Any], None]
# `Avatar.sample`: a random look changes each category with this probability (at least one always
# changes). All eight at once make a costume rather than a person, and each category's small side
# effects on the face add up (darkened skin, stray splats).
SAMPLE_CHANGE = 0.5
# How far along a trained path (`trained_paths`) from a learned look a sample may stop.
SAMPLE_SPREAD = 0.4


# What every checkpoint holds (perse.avatar.train.Trainer.state); `load_checkpoint` refuses a file without.
CHECKPOINT_KEYS = ("model", "config", "categories", "expression_names", "image_size", "intrinsics")
# The head turns an avatar can be rendered at: any yaw, and pitch up to looking straight down or up.
# (The clips train +-MAX_YAW/MAX_PITCH of perse.synth.animate.motion; beyond that the head is guessed.)
YAW_RANGE, PITCH_RANGE = (-180.0, 180.0), (-90.0, 90.0)
# Expression controls are trained from 0 (neutral) to 1 (full strength) (perse.synth.animate.motion).
EXPRESSION_RANGE = (0.0, 1.0)
MAX_RENDER_SIZE = 4096


def _in_range(what: str, value: Any, bounds: tuple[float, float]) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and bounds[0] <= number <= bounds[1]):
        raise PerseError(f"{what} must be a number in [{bounds[0]:g}, {bounds[1]:g}], got {value!r}")
    return number


def _render_size(size: Any) -> int | None:
    """A render size as given (None: the training size), checked to be a whole number of pixels."""
    if size is None:
        return None
    number = _in_range("size", size, (1, MAX_RENDER_SIZE))
    if not number.is_integer():
        raise PerseError(f"size must be a whole number of pixels in [1, {MAX_RENDER_SIZE}], got {size!r}")
    return int(number)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save to a temporary file then rename, so a crash never leaves a half-written checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, device: str = "cpu") -> dict[str, Any]:
    """A checkpoint is data: only tensors and plain containers, numbers and strings are unpickled
    (`weights_only`), so a crafted file cannot run code when a run folder is opened."""
    if not path.exists():
        raise PerseError(f"{path} is missing: this run has no trained avatar yet; run `perse train {path.parent.parent}`")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise PerseError(f"{path}: refused to load: it holds Python objects, not only tensors and plain data, "
                         "so opening it could run code (a PERSE checkpoint never does). Do not use run folders "
                         "from untrusted sources; delete it and re-run `perse train`") from exc
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise PerseError(f"{path}: not a readable PERSE avatar checkpoint ({exc}); delete it and re-run "
                         "`perse train`") from exc
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise PerseError(f"{path}: not a PERSE avatar checkpoint (it lacks {', '.join(missing)}); delete it "
                         "and re-run `perse train`")
    if list(state["expression_names"]) != list(EXPRESSION_NAMES):
        run = path.parent.parent
        raise PerseError(f"{path}: this avatar learned the expression controls "
                         f"{', '.join(map(str, state['expression_names']))}, not this PERSE Studio's "
                         f"{len(EXPRESSION_NAMES)} ({', '.join(EXPRESSION_NAMES)}); rebuild it from its photo with "
                         f"`perse run PHOTO --out {run}`, which synthesizes the new expressions and retrains")
    return state


def model_from_state(state: dict[str, Any], device: str = "cpu") -> AvatarModel:
    config = config_from_dict(state["config"])
    try:
        n = state["model"]["means"].shape[0]
        counts = {name: len(values) for name, values in state["categories"].items()}
    except (KeyError, AttributeError, TypeError) as exc:
        raise PerseError(f"this avatar checkpoint is malformed ({exc!r} in its model or categories); re-run "
                         "`perse train` on its run folder") from exc
    zeros = torch.zeros(n, 3)
    saved_areas = {name.removeprefix("areas."): value for name, value in state["model"].items()
                   if name.startswith("areas.")}
    areas = FaceAreas(**saved_areas) if saved_areas else None
    model = AvatarModel(config.avatar, counts, len(state["expression_names"]), zeros, zeros + 0.5, zeros[:, :1] + 1,
                        seed=config.seed, areas=areas)
    try:
        missing, unexpected = model.load_state_dict(state["model"], strict=False)
    except RuntimeError as exc:  # a tensor whose shape the saved config does not give
        raise PerseError(f"this avatar checkpoint does not match the model its config describes ({exc}); "
                         "re-run `perse train` on its run folder") from exc
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
        """Slider position p in [0, n-1] -> the blend of codes floor(p) and ceil(p); outside, a PerseError."""
        self._category(category)
        last = len(self.categories[category]) - 1
        position = _in_range(f"the '{category}' slider position", position, (0.0, float(last)))
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

    def trained_paths(self, category: str, code: int) -> list[int]:
        """The codes that `code` has 2D in-between targets with (the synth stage's pair plan)."""
        pairs = interpolation_pairs(len(self.categories[category]) - 1, self.config.synth.interp_ts)
        return sorted({b for a, b, _ in pairs if a == code} | {a for a, b, _ in pairs if b == code})

    @staticmethod
    def is_accessory(category: str) -> bool:
        """Worn or not (a hat, glasses): a category from outside the catalog counts as one."""
        return category not in CATALOG or CATALOG[category].accessory

    def sample(self, seed: int = 0, categories: list[str] | None = None, base: Selection = None) -> torch.Tensor:
        """A random latent from the learned prior: the learned looks and the trained paths between them.

        Of the listed categories (default all), each changes with probability SAMPLE_CHANGE (a single
        listed category always does; one accessory at most): it takes one of its learned looks at
        random and, unless it is an accessory, moves from it along one of its trained paths by up to
        SAMPLE_SPREAD. So a sample is a look the decoder was trained to draw: a hat is either worn or
        not, never a ghost. (Points off these paths, such as convex mixes of all codes or Gaussian steps
        around one, get no supervision, and the decoder draws half-transparent blends of several looks
        there.)
        """
        generator = torch.Generator().manual_seed(seed)
        latent = self.latent(base)
        names = categories or list(self.categories)
        changed = [name for name in names if float(torch.rand((), generator=generator)) < SAMPLE_CHANGE]
        if len(names) == 1 or not changed:
            changed = [names[int(torch.randint(len(names), (), generator=generator))]]
        # One accessory at most, as in the mixed looks it was trained on (perse.synth.mix): a hat and
        # glasses together were never shown, and their effects pile up on the same Gaussians.
        worn = [name for name in changed if self.is_accessory(name)]
        if len(worn) > 1:
            keep = worn[int(torch.randint(len(worn), (), generator=generator))]
            changed = [name for name in changed if name == keep or name not in worn]
        for name in changed:
            codes = self.learned_codes(name)
            # A change is to a look other than the source (keeping it is the other branch).
            pick = 1 + int(torch.randint(len(codes) - 1, (), generator=generator)) if len(codes) > 1 else 0
            code = codes[pick]
            t = float(torch.rand((), generator=generator)) * SAMPLE_SPREAD
            paths = self.trained_paths(name, pick)
            if paths and not self.is_accessory(name):
                other = paths[int(torch.randint(len(paths), (), generator=generator))]
                code = (1 - t) * code + t * codes[other]
            latent = self.with_code(latent, name, code)
        return latent

    def expression(self, expression: Mapping[str, float] | np.ndarray | list | None) -> torch.Tensor:
        """Expression vector from {name: value} (unnamed = 0) or a full list. Names are the controls of
        perse.core.expressions; the four old ones (jaw_open, smile, blink, brow_raise) stand for theirs."""
        if expression is None:
            return torch.zeros(len(self.expression_names), device=self.device)
        if isinstance(expression, Mapping):
            unknown = sorted(set(expression) - set(self.expression_names) - set(LEGACY_CONTROLS))
            if unknown:
                raise PerseError(f"unknown expression(s) {unknown}; known: {', '.join(self.expression_names)} "
                                 f"(old names {', '.join(LEGACY_CONTROLS)} still work)")
            # Checked under the names given, before old names are spread over the new controls.
            checked = {name: _in_range(f"expression '{name}'", value, EXPRESSION_RANGE)
                       for name, value in expression.items()}
            controls = expand_legacy(checked)
            return torch.tensor([controls.get(name, 0.0) for name in self.expression_names], device=self.device)
        values = list(expression)
        if len(values) != len(self.expression_names):
            raise PerseError(f"expression needs {len(self.expression_names)} values "
                             f"({', '.join(self.expression_names)}), got {len(values)}")
        values = [_in_range(f"expression '{name}'", value, EXPRESSION_RANGE)
                  for name, value in zip(self.expression_names, values)]
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
        to the image's left); `expression` is {name: value} (perse.core.expressions' controls, or the
        old four names) or a full vector.
        """
        return self.render_frames(selection, [yaw], [pitch], [expression], size, background)[0]

    @torch.no_grad()
    def render_frames(self, selection: Selection, yaws: Sequence[float], pitches: Sequence[float],
                      expressions: Sequence, size: int | None = None, background=(1.0, 1.0, 1.0),
                      uint8: bool = False) -> np.ndarray:
        """(B, size, size, 3) float images in [0, 1]: frame i at yaws[i], pitches[i] and expressions[i] (each
        as `render` takes it), one look, decoded and rendered as one batch: on a GPU a batch of frames costs
        little more than one (a driven video's frames). `uint8`: rounded to bytes where they were rendered,
        for a video encoder (on a GPU a quarter of the copy to the host, and no conversion on its CPU)."""
        if not len(yaws) == len(pitches) == len(expressions):
            raise PerseError(f"render_frames needs as many yaws, pitches and expressions, got {len(yaws)}, "
                             f"{len(pitches)}, {len(expressions)}")
        turns = [(_in_range("yaw", yaw, YAW_RANGE), _in_range("pitch", pitch, PITCH_RANGE))
                 for yaw, pitch in zip(yaws, pitches)]
        size = _render_size(size) or self.image_size
        cameras = [self.camera(yaw, pitch, size) for yaw, pitch in turns]
        latent = self.latent(selection)
        vectors = torch.stack([self.expression(expression) for expression in expressions])
        gaussians = self.model.decode(latent.expand(len(vectors), -1), vectors)
        viewmats = torch.as_tensor(np.stack([camera.viewmat for camera in cameras]), dtype=torch.float32)
        out = render_batch(gaussians, viewmats, torch.as_tensor(cameras[0].K, dtype=torch.float32), size, size,
                           background, backend=self.config.avatar.renderer)
        rgb = out.rgb.clamp(0, 1)
        if uint8:
            rgb = (rgb * 255.0).round().to(torch.uint8)
        return rgb.cpu().numpy()

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
