"""One typed configuration for the whole pipeline.

A `PipelineConfig` is built from a preset, optionally a YAML/JSON file, then `section.field=value`
overrides (CLI `--set`), and is passed unchanged to every stage, so a run folder's `config.json`
fully describes how it was produced.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perse.errors import ConfigError

DEFAULT_CATEGORIES = ("hair", "beard", "hat", "glasses", "eyebrows", "lips", "skin", "earrings")
# Image sizes beyond this would need tens of gigabytes of frames; no preset comes near it.
MAX_IMAGE_SIZE = 4096


@dataclass(frozen=True)
class Range:
    """The values a numeric field allows: [low, high] (either end open or absent) plus `also` values
    with a meaning of their own (0 = none)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple[float, ...] = ()

    def __contains__(self, value: float) -> bool:
        if value in self.also:
            return True
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self, integer: bool) -> str:
        kind = "an integer" if integer else "a number"
        low, high = _number_text(self.low), _number_text(self.high)
        if self.low is not None and self.high is not None:
            text = f"{kind} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {low}"
        elif self.high is not None:
            text = f"{kind} {'<' if self.high_open else '<='} {high}"
        else:
            text = f"a finite {kind.split()[-1]}"
        return " or ".join([*(_number_text(v) for v in self.also), text])


def _number_text(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def ranged(default: Any, low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, also: tuple[float, ...] = ()) -> Any:
    """A numeric field whose values (each item, for a tuple) must lie in the range; checked by set_value."""
    return field(default=default, metadata={"range": Range(low, high, low_open, high_open, also)})


POSITIVE = {"low": 0, "low_open": True}


@dataclass
class IngestConfig:
    size: int = ranged(512, 32, MAX_IMAGE_SIZE)
    # Vertical field of view of every camera in the project (perse.core.camera: one camera convention).
    fov_deg: float = ranged(14.0, 0, 180, low_open=True, high_open=True)
    # Crop side as a multiple of the face height (brow-to-chin): holds hair and a little shoulder.
    crop_scale: float = ranged(2.6, **POSITIVE)
    # Crop centre below the brow, as a fraction of the face height: leaves room for hair above the head
    # and shows the neck and a little shoulder below the chin.
    crop_center_below_brow: float = ranged(0.3, -1.0, 1.0)
    max_megapixels: float = ranged(40.0, **POSITIVE)
    min_side: int = ranged(64, 1)
    # A face whose brow-to-chin height is smaller than this (in the original photo) is refused.
    min_face_px: int = ranged(48, 1)
    matte_feather_px: float = ranged(2.0, 0)


@dataclass
class SynthConfig:
    editor: str = "parametric"  # "parametric" | "diffusers"
    animator: str = "lift"
    # The lift animator's renderer: "gaussians" (perse.core.render), "splat" (its fast forward
    # splatter), or "auto" (gaussians on CUDA, splat on CPU).
    lift_renderer: str = "auto"
    identity: str = "dlib"  # "dlib" | "insightface"
    interp: str = "exact"  # "exact" | "morph"
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    values: int = ranged(3, 1)
    # Looks per category drawn beyond `values` and kept out of training: the metrics stage fits a code
    # to each (perse.metrics.looks), which says whether the latent space reaches looks it never saw.
    holdout_looks: int = ranged(2, 0)
    # Clips that change several categories at once (about half of them, one accessory at most), each
    # look one of the trained ones: they teach the avatar how looks combine (perse.synth.mix).
    mixes: int = ranged(16, 0)
    frames: int = ranged(32, 1)
    size: int = ranged(512, 32, MAX_IMAGE_SIZE)
    # Frames scoring below this are dropped; None uses the chosen scorer's own same-person threshold
    # (the backends' similarity scales differ: dlib 0.5, ArcFace 0.3).
    identity_threshold: float | None = ranged(None, -1.0, 1.0)  # similarities are cosines
    interp_ts: tuple[float, ...] = ranged((1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6), 0, 1, low_open=True, high_open=True)
    diffusers_model: str = "stabilityai/stable-diffusion-2-inpainting"
    diffusers_steps: int = ranged(25, 1)
    diffusers_guidance: float = ranged(7.5, 0)
    insightface_model: str = ""  # local .onnx path or "hub-repo-id/file.onnx"


@dataclass
class AvatarConfig:
    num_gaussians: int = ranged(100_000, 1)
    latent_dim: int = ranged(16, 1)  # per category
    decoder_width: int = ranged(128, 1)
    feature_dim: int = ranged(16, 1)  # per-Gaussian decoder features (rank of the bilinear decoder)
    # Per-Gaussian features the expression basis acts on, beside the categories' (0: it shares those).
    expression_feature_dim: int = ranged(16, 0)
    # Expressions reach the decoder multiplied by this. Adam moves each weight by about the learning rate
    # per step whatever the loss weight, so with unit inputs the expression basis could not grow past a
    # few tenths in a short run; the codes get the same boost from their 1 / prior_std rescaling.
    # Higher gains made the random samples' ghosts worse at `fast` (1.1 % at 6) for little more expression.
    expression_gain: float = ranged(2.0, 0)
    decoder_layers: int = ranged(3, 1)
    pos_freqs: int = ranged(6, 0)
    steps: int = ranged(3000, 1)
    interp_start: float = ranged(0.5, 0, 1)  # fraction of steps after which the interpolation loss is added
    batch_frames: int = ranged(4, 1)
    lr: float = ranged(5e-3, 0)  # canonical scales, rotations, opacities and colours
    means_lr: float = ranged(2e-4, 0)  # canonical positions (world units; the head is ~1 unit across)
    decoder_lr: float = ranged(1e-3, 0)
    code_lr: float = ranged(1e-2, 0)
    # Every learning rate decays exponentially to this fraction by the last step (0 would stop at step 1).
    lr_final: float = ranged(0.1, 0, 1, low_open=True)
    ssim_weight: float = ranged(0.2, 0, 1)  # of the image loss; L1 has the rest
    alpha_weight: float = ranged(0.1, 0)
    prior_weight: float = ranged(1e-3, 0)
    prior_std: float = ranged(0.25, **POSITIVE)
    interp_weight: float = ranged(1.0, 0)
    lpips_weight: float = ranged(0.0, 0)
    densify: bool = True
    # Backends by name (perse.core.render.RENDERERS, perse.avatar.densify.DENSIFIERS); "auto" picks by
    # device: gsplat and gsplat's MCMC strategy on CUDA, the torch compositor and gradient relocation on CPU.
    renderer: str = "auto"  # "auto" | "gsplat" | "torch"
    densifier: str = "auto"  # "auto" | "mcmc" | "relocate"
    # Densify and prune at a fixed budget: every densify_every steps (until densify_until of the run),
    # Gaussians fainter than prune_opacity move to where they help (perse/avatar/densify.py: gsplat's
    # MCMC strategy on CUDA, the largest position gradients on CPU).
    densify_every: int = ranged(100, 1)
    densify_until: float = ranged(0.7, 0, 1)
    prune_opacity: float = ranged(0.01, 0, 1, high_open=True)
    pair_batch: int = ranged(2, 1)  # interpolation pairs per step in stage 2
    checkpoint_every: int = ranged(500, 1)
    preview_every: int = ranged(250, 1)
    # Every n-th frame of a clip is held out for metrics; 0 holds none out, 1 would leave none to train on.
    holdout_every: int = ranged(8, 2, also=(0,))


@dataclass
class ExportConfig:
    fps: int = ranged(24, 1, 120)
    interp_frames: int = ranged(24, 1)
    turntable_frames: int = ranged(48, 1)
    # Turntable formats: GIF plays everywhere (and in the report); MP4 needs imageio-ffmpeg's encoder.
    turntable_formats: tuple[str, ...] = ("gif", "mp4")
    # GIFs are for sharing and previews; encoding them is the export's cost (palette per frame), so
    # they are rendered at most this large. MP4s keep the training size.
    gif_size: int = ranged(256, 16, MAX_IMAGE_SIZE)


@dataclass
class DriveConfig:
    """`perse drive`: a face video drives the avatar (perse/drive, docs/drive.md)."""

    # How each frame's expression is read (perse.drive.blendshapes.ESTIMATORS): "geometric" measures the
    # face mesh the ingest stage already runs; "mediapipe" runs mediapipe's face landmarker with the
    # blendshape model perse ships (perse/drive/models), or the .task file named below or in
    # PERSE_FACE_LANDMARKER.
    blendshapes: str = "geometric"
    face_landmarker: str = ""
    # Every frame is tracked and rendered; longer clips are refused before any work is done.
    max_seconds: float = ranged(120.0, **POSITIVE)
    # Render size in pixels; 0 = the avatar's training size.
    size: int = ranged(0, 16, MAX_IMAGE_SIZE, also=(0,))
    # One Euro filter (Casiez et al. 2012): the cutoff (Hz) when the face is still (lower = steadier),
    # and how fast the cutoff rises with speed (higher = less lag on quick moves). These keep 93% of a
    # 3-frame blink at 30 fps and cut a still face's jitter to a third (perse.drive.retarget).
    smoothing_min_cutoff: float = ranged(1.0, **POSITIVE)
    smoothing_beta: float = ranged(3.0, 0)
    # Processes tracking frames in parallel (each with its own mediapipe graphs); 0 = one per core up to 16.
    track_workers: int = ranged(0, 0, 64)


@dataclass
class DraftConfig:
    """A small avatar built first, so that a visitor has sliders and a head to turn within seconds while
    the real one trains (perse.pipeline.run: RUN/draft/, a run folder of its own). Its looks are the first
    `values` of each category's, so its sliders move the same way, between fewer stops."""

    enabled: bool = False
    values: int = ranged(2, 1)
    frames: int = ranged(4, 1)
    size: int = ranged(256, 32, MAX_IMAGE_SIZE)
    num_gaussians: int = ranged(20_000, 1)
    steps: int = ranged(300, 1)


@dataclass
class PipelineConfig:
    preset: str = "fast"
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    seed: int = ranged(0, 0, 2**32 - 1)  # what every generator (numpy, torch) accepts
    ingest: IngestConfig = field(default_factory=IngestConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    avatar: AvatarConfig = field(default_factory=AvatarConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    drive: DriveConfig = field(default_factory=DriveConfig)
    draft: DraftConfig = field(default_factory=DraftConfig)

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # CPU, seconds: tests, CI and machines without a GPU.
    "tiny": {
        "ingest.size": 256,
        "synth.size": 64,
        "synth.categories": ("hair", "glasses", "lips"),
        "synth.values": 2,
        "synth.frames": 8,
        "synth.mixes": 2,
        "avatar.num_gaussians": 1500,
        "avatar.steps": 200,
        "avatar.decoder_width": 64,
        "avatar.batch_frames": 2,
        # A few hundred steps: the decoder and codes must move faster than over a 3000-step GPU run.
        "avatar.decoder_lr": 3e-3,
        "avatar.code_lr": 3e-2,
        "avatar.checkpoint_every": 100,
        # Eight frames a clip, of which the turned-and-smiling ones may be dropped at 64 px: every
        # fourth kept frame is held out so each clip still has held-out frames to score.
        "avatar.holdout_every": 4,
        "avatar.preview_every": 50,
        "export.interp_frames": 8,
        "export.turntable_frames": 12,
    },
    # One Space GPU call at 512 px. A dense latent space: 12 looks per category (6 presets, then
    # continuous looks from the catalog's ranges), 8 frames each (frontal, head turns up to +-35 deg yaw
    # and +-20 deg pitch, every expression at full strength), so the dataset stays near 800 frames.
    "fast": {"synth.values": 12, "synth.frames": 8},
    "quality": {
        "synth.values": 5,
        "synth.frames": 48,
        "avatar.num_gaussians": 130_000,
        "avatar.steps": 12000,
        "avatar.decoder_width": 192,
    },
}


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Turn a string/JSON value into the declared field type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in {"none", "null", ""}):
            return None
        return _coerce(value, inner, key)
    if origin is tuple:
        (item_type, *_rest) = typing.get_args(annotation)
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(_coerce(v.strip() if isinstance(v, str) else v, item_type, key) for v in items if v != "")
    try:
        if annotation is bool:
            if isinstance(value, str):
                lowered = value.lower()
                if lowered not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                    raise ValueError(value)
                return lowered in {"1", "true", "yes", "on"}
            return bool(value)
        if annotation is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if annotation is float:
            return float(value)
        if annotation is str:
            return str(value)
    except ValueError as exc:
        raise ConfigError(f"config key '{key}': cannot read {value!r} as {annotation.__name__}") from exc
    raise ConfigError(f"config key '{key}': unsupported type {annotation}")


def _field_types(obj: Any) -> dict[str, Any]:
    return typing.get_type_hints(type(obj))


def _check_range(key: str, value: Any, spec: dataclasses.Field) -> None:
    """NaN, infinities and values outside the field's range are refused with the range named."""
    allowed: Range = spec.metadata.get("range", Range())
    for item in value if isinstance(value, tuple) else (value,):
        if item is None or isinstance(item, (bool, str)) or not isinstance(item, (int, float)):
            continue
        integer = isinstance(item, int)
        if not math.isfinite(item):
            raise ConfigError(f"config key '{key}': {item!r} is not a finite number; allowed: "
                              f"{allowed.describe(integer)}")
        if item not in allowed:
            raise ConfigError(f"config key '{key}': {item!r} is out of range; allowed: {allowed.describe(integer)}")


def _sections(config: PipelineConfig) -> dict[str, Any]:
    """The config's sections by name (ingest, synth, ...): every field that is itself a dataclass."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if dataclasses.is_dataclass(getattr(config, f.name))}


def check_config(config: PipelineConfig) -> None:
    """Every numeric field in its range: for configs built or changed in Python rather than by build_config."""
    for prefix, section in {"": config, **{f"{name}.": section for name, section in _sections(config).items()}}.items():
        for spec in dataclasses.fields(section):
            value = getattr(section, spec.name)
            if not dataclasses.is_dataclass(value):
                _check_range(prefix + spec.name, value, spec)


def set_value(config: PipelineConfig, key: str, value: Any) -> None:
    """Set `section.field` (or a top-level field) from a string or JSON value, type-checked."""
    parts = key.split(".")
    target: Any = config
    for part in parts[:-1]:
        if not hasattr(target, part) or not dataclasses.is_dataclass(getattr(target, part)):
            raise ConfigError(f"unknown config section '{part}' in '{key}'; sections: {', '.join(_sections(config))}")
        target = getattr(target, part)
    name = parts[-1]
    types = _field_types(target)
    if name not in types or dataclasses.is_dataclass(getattr(target, name)):
        known = ", ".join(sorted(n for n in types if not dataclasses.is_dataclass(getattr(target, n))))
        raise ConfigError(f"unknown config key '{key}'; known keys here: {known}")
    value = _coerce(value, types[name], key)
    _check_range(key, value, next(f for f in dataclasses.fields(target) if f.name == name))
    setattr(target, name, value)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror})") from exc
    try:
        if path.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml and json raise different types; both mean "malformed"
        raise ConfigError(f"config file {path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def build_config(
    preset: str = "fast",
    file: str | Path | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
) -> PipelineConfig:
    """Preset, then file, then overrides ("key=value" strings or a dict), each layer winning."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; choose one of: {', '.join(PRESETS)}")
    config = PipelineConfig(preset=preset)
    layers: list[dict[str, Any]] = [PRESETS[preset]]
    if file is not None:
        data = load_file(file)
        if "preset" in data and data["preset"] != preset:
            return build_config(data["preset"], file, overrides)
        layers.append(_flatten(data))
    if isinstance(overrides, list):
        parsed = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override '{item}' must look like section.key=value, e.g. avatar.steps=500")
            key, value = item.split("=", 1)
            parsed[key.strip()] = value.strip()
        layers.append(parsed)
    elif overrides:
        layers.append(overrides)
    for layer in layers:
        for key, value in layer.items():
            if key == "preset":
                continue
            set_value(config, key, value)
    return config


# Keys that earlier versions wrote into run folders' config.json and that no longer do anything: a saved
# run must still load (its avatar is the user's), so they are dropped when reading one.
RETIRED_KEYS = frozenset({"export.web_ply_max_gaussians"})
# Keys added since, with the value that means what a config written before them did: a saved avatar
# must load with the structure it was trained with.
ADDED_KEYS = {"avatar.expression_feature_dim": 0}


def draft_config(config: PipelineConfig) -> PipelineConfig:
    """The draft avatar's settings (`config.draft`): the same portrait, categories and seed, fewer and
    smaller clips (no mixed or held-out looks), fewer Gaussians and steps, no held-out frames, and no
    interpolation targets (its in-betweens go untrained: they were two thirds of its synthesis time)."""
    draft = config.draft
    steps = min(draft.steps, config.avatar.steps)
    return build_config(config.preset, overrides={
        **{key: value for key, value in _flatten(config.to_dict()).items() if not key.startswith("draft.")},
        "synth.values": min(draft.values, config.synth.values), "synth.frames": min(draft.frames, config.synth.frames),
        "synth.size": min(draft.size, config.synth.size), "synth.mixes": 0, "synth.holdout_looks": 0,
        "synth.interp_ts": (),
        "avatar.num_gaussians": min(draft.num_gaussians, config.avatar.num_gaussians),
        "avatar.steps": steps, "avatar.checkpoint_every": steps, "avatar.preview_every": steps,
        "avatar.holdout_every": 0})


def config_from_dict(data: dict[str, Any]) -> PipelineConfig:
    """Rebuild a config saved with `to_dict` (e.g. a run's config.json)."""
    saved = {key: value for key, value in _flatten(data).items() if key not in RETIRED_KEYS}
    return build_config(data.get("preset", "fast"), overrides={**ADDED_KEYS, **saved})
