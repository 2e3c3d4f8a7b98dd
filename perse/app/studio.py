"""The app's GPU-bound work: running the pipeline and every call on a trained avatar.

Each entry point is wrapped in `@spaces.GPU` (a no-op off a ZeroGPU Space). On ZeroGPU the wrapped call
may run in a forked worker, so arguments and results are plain picklable values (paths, CPU tensors,
numpy images), and loaded avatars live in a per-process cache keyed by what they were trained from.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import spaces
import torch
from PIL import Image

from perse.avatar.avatar import Avatar
from perse.config import PipelineConfig, draft_config
from perse.core.paths import RunPaths
from perse.core.ply import FIELDS as PLY_FIELDS
from perse.core.ply import write_ply
from perse.errors import PerseError
from perse.events import CancelToken, Progress
from perse.export.splat import RECORD as SPLAT_RECORD
from perse.export.splat import write_splat
from perse.export.video import interpolation_frames, write_video
from perse.export.web import write_web_bundle
from perse.pipeline import run as run_pipeline
from perse.synth.catalog import CATALOG

# ZeroGPU reserves a GPU for this many seconds per call: an overestimate only delays queued visitors,
# an underestimate kills the run. Training time grows with steps, synthesis with the number of clips.
RUN_SECONDS_BASE = 60
RUN_SECONDS_PER_STEP = 0.02
RUN_SECONDS_PER_CLIP = 1.0
# Images are shown and exported at least this large. A small avatar is rendered at its training size
# and upscaled in 2D: rendered directly at 4x, its Gaussians (fitted to 64 px) show as needle-like streaks.
MIN_DISPLAY_SIZE = 256


def run_seconds(photo: str, run_dir: str, config: PipelineConfig, cancel: CancelToken) -> int:
    runs = [config, draft_config(config)] if config.draft.enabled else [config]
    clips = sum(len(c.synth.categories) * c.synth.values + 1 for c in runs)
    steps = sum(c.avatar.steps for c in runs)
    return int(RUN_SECONDS_BASE + RUN_SECONDS_PER_STEP * steps + RUN_SECONDS_PER_CLIP * clips)


@spaces.GPU(duration=run_seconds)
def pipeline_events(photo: str, run_dir: str, config: PipelineConfig, cancel: CancelToken) -> Iterator[Progress]:
    yield from run_pipeline(photo, run_dir, config, cancel=cancel)


class AvatarCache:
    """Loaded avatars by (run folder, checkpoint file's identity): a re-trained run, or a training run's
    newer checkpoint, never serves the avatar loaded before; one avatar is kept per folder."""

    def __init__(self, capacity: int = 8):
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, tuple[int, int]], Avatar] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, run_dir: str | Path) -> Avatar:
        checkpoint = RunPaths(run_dir).checkpoint
        try:
            stat = checkpoint.stat()
        except OSError:
            raise PerseError(f"{checkpoint} is missing: this avatar is no longer there; build it again") from None
        key = (str(run_dir), (stat.st_mtime_ns, stat.st_size))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        avatar = Avatar.load(run_dir)
        with self._lock:
            for older in [k for k in self._items if k[0] == key[0]]:
                del self._items[older]
            self._items[key] = avatar
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return avatar


AVATARS = AvatarCache()


@dataclass
class View:
    """Head pose and expression of what is shown; expression as {name: value} over the avatar's names."""

    yaw: float = 0.0
    pitch: float = 0.0
    expression: dict[str, float] = field(default_factory=dict)


def for_display(image: np.ndarray) -> np.ndarray:
    """A float [0, 1] render -> uint8, upscaled (bicubic, integer factor) to at least MIN_DISPLAY_SIZE."""
    image = to_uint8(image)
    factor = math.ceil(MIN_DISPLAY_SIZE / image.shape[0])
    if factor <= 1:
        return image
    size = (image.shape[1] * factor, image.shape[0] * factor)
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def _render(avatar: Avatar, latent: torch.Tensor, view: View) -> np.ndarray:
    return for_display(avatar.render(latent, yaw=view.yaw, pitch=view.pitch, expression=view.expression))


@dataclass(frozen=True)
class AvatarInfo:
    categories: dict[str, list[str]]  # category -> value labels by code index (0 = source)
    expressions: list[str]
    image_size: int
    num_gaussians: int
    interp_frames: int
    fps: int


@spaces.GPU(duration=30)
def open_avatar(run_dir: str, view: View) -> tuple[AvatarInfo, torch.Tensor, np.ndarray]:
    """A freshly trained avatar's description, its source latent and a render of it."""
    avatar = AVATARS.get(run_dir)
    latent = avatar.latent()
    info = AvatarInfo(
        categories={name: list(values) for name, values in avatar.categories.items()},
        expressions=list(avatar.expression_names), image_size=avatar.image_size,
        num_gaussians=avatar.model.num_gaussians,
        interp_frames=avatar.config.export.interp_frames, fps=avatar.config.export.fps)
    return info, latent.cpu(), _render(avatar, latent, view)


@spaces.GPU(duration=20)
def edit(run_dir: str, latent: torch.Tensor, view: View, op: str = "render", category: str | None = None,
         value: float = 0.0) -> tuple[torch.Tensor, np.ndarray]:
    """Change the latent, then render it. ops: "render" (no change); "slider" (category to slider position
    `value`); "sample" (category, or every category when None, from the prior with seed `value`); "reset"."""
    avatar = AVATARS.get(run_dir)
    if op == "render":
        latent = avatar.latent(latent)
    elif op == "slider":
        latent = avatar.with_code(avatar.latent(latent), category, avatar.slider_code(category, value))
    elif op == "sample":
        latent = avatar.sample(seed=int(value), categories=[category] if category else None, base=latent)
    elif op == "reset":
        latent = avatar.latent()
    else:
        raise ValueError(f"unknown edit '{op}'")
    return latent.cpu(), _render(avatar, latent, view)


@spaces.GPU(duration=20)
def slider_positions(run_dir: str, latent: torch.Tensor) -> dict[str, float]:
    """Per category, the slider position whose blend of neighbouring codes lies nearest the category's code
    in `latent`: where the sliders should stand after a random look, which is drawn near the learned codes."""
    avatar = AVATARS.get(run_dir)
    size = avatar.model.latent_dim
    positions = {}
    for i, name in enumerate(avatar.categories):
        code = latent[i * size:(i + 1) * size].to(avatar.device)
        codes = avatar.learned_codes(name)
        if len(codes) == 1:
            positions[name] = 0.0
            continue
        start, span = codes[:-1], codes[1:] - codes[:-1]
        t = (((code - start) * span).sum(dim=1) / span.pow(2).sum(dim=1).clamp_min(1e-12)).clamp(0.0, 1.0)
        distance = (start + t[:, None] * span - code).norm(dim=1)
        segment = int(distance.argmin())
        positions[name] = segment + float(t[segment])
    return positions


def _reference_pose(run_dir: str) -> dict[str, float]:
    return json.loads(RunPaths(run_dir).portrait_meta.read_text())["head_pose"]


@spaces.GPU(duration=60)
def transfer(run_dir: str, latent: torch.Tensor, photo: str, category: str, view: View,
             steps: int = 200) -> tuple[torch.Tensor, np.ndarray]:
    """Fit `category`'s code to another photo (inside that category's regions) and put it in the latent.

    The new photo goes through the same ingest as the reference, so its crop matches the training
    framing; its head pose, relative to the reference portrait's (which the avatar renders at yaw 0),
    is the pose the code is fitted at.
    """
    from perse.ingest import ingest

    avatar = AVATARS.get(run_dir)
    portrait = ingest(photo, avatar.config)
    regions = [portrait.masks[name] for name in CATALOG[category].regions if name in portrait.masks]
    if not regions:
        raise PerseError(f"the new photo has none of the regions '{category}' lives in "
                         f"({', '.join(CATALOG[category].regions)}); try a clearer photo")
    size = avatar.image_size
    image = cv2.resize(portrait.image, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    mask = cv2.resize(np.maximum.reduce(regions), (size, size), interpolation=cv2.INTER_AREA)
    if mask.sum() < 1:
        raise PerseError(f"the new photo shows too little of '{category}' to copy it; try a photo where it is visible")
    reference = _reference_pose(run_dir)
    code = avatar.fit_code(image, mask, category, yaw=portrait.head_pose["yaw"] - reference["yaw"],
                           pitch=portrait.head_pose["pitch"] - reference["pitch"], steps=steps, base=latent)
    latent = avatar.with_code(avatar.latent(latent), category, code)
    return latent.cpu(), _render(avatar, latent, view)


@spaces.GPU(duration=60)
def interpolation_clip(run_dir: str, latent: torch.Tensor, category: str, start: float, end: float,
                       frames: int, view: View, out: str) -> str:
    """A looping clip (.gif or .mp4 by `out`'s suffix) of `category` moving between two slider positions,
    other categories as in `latent`."""
    avatar = AVATARS.get(run_dir)
    images = interpolation_frames(avatar, category, avatar.slider_code(category, start),
                                  avatar.slider_code(category, end), frames=frames, base=latent, yaw=view.yaw,
                                  pitch=view.pitch, expression=view.expression)
    return str(write_video(out, [for_display(image) for image in images], fps=avatar.config.export.fps))


# Bytes a Gaussian takes in each download (the .ply's header adds under a kilobyte): what the page
# states before anything is written.
BYTES_PER_GAUSSIAN = {".ply": 4 * len(PLY_FIELDS), ".splat": SPLAT_RECORD.itemsize}


@spaces.GPU(duration=30)
def export_look(run_dir: str, latent: torch.Tensor, view: View, out: str) -> tuple[str, int]:
    """The current look as a standard 3DGS .ply or a .splat (by `out`'s suffix); returns (path, count)."""
    gaussians = AVATARS.get(run_dir).gaussians(latent, view.expression)
    write = write_splat if out.endswith(".splat") else write_ply
    return str(write(out, gaussians)), len(gaussians)


@spaces.GPU(duration=30)
def web_bundle(run_dir: str, folder: str) -> tuple[str, str]:
    """The avatar's web viewer and bundle (perse.export.web) in `folder`, and a .zip of it beside the
    folder for sharing; written once per avatar (a trained avatar never changes). Returns (folder, zip)."""
    target = Path(folder)
    archive = target.with_suffix(".zip")
    with _BUNDLE_LOCK:
        if not archive.exists():
            # Written aside, then renamed, the zip last: a page never loads a half-written bundle, and a
            # bundle cut off midway (a crash) is written again.
            staging = target.with_name(f".{target.name}-staging")
            shutil.rmtree(staging, ignore_errors=True)
            write_web_bundle(staging, AVATARS.get(run_dir))
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
            packed = shutil.make_archive(str(staging), "zip", root_dir=target)
            os.replace(packed, archive)
    return str(target), str(archive)


_BUNDLE_LOCK = threading.Lock()
