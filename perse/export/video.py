"""Turntables and latent interpolations of an avatar, as frame lists and MP4/GIF files (imageio)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from perse.avatar.avatar import Avatar, Selection
from perse.core.io import atomic_path, to_uint8
from perse.errors import PerseError


def turntable_frames(avatar: Avatar, selection: Selection = None, frames: int = 48, yaw_deg: float = 30.0,
                     pitch_deg: float = 5.0, size: int | None = None, expression=None) -> list[np.ndarray]:
    """One smooth loop: yaw sweeps +-yaw_deg (sinusoidally) while pitch nods by pitch_deg."""
    latent = avatar.latent(selection)
    return [avatar.render(latent, yaw=yaw_deg * math.sin(2 * math.pi * i / frames),
                          pitch=pitch_deg * math.sin(4 * math.pi * i / frames), expression=expression, size=size)
            for i in range(frames)]


def interpolation_frames(avatar: Avatar, category: str, a, b, frames: int = 24, base: Selection = None,
                         yaw: float = 0.0, size: int | None = None, bounce: bool = True, pitch: float = 0.0,
                         expression=None) -> list[np.ndarray]:
    """Renders along (1 - t) code(a) + t code(b) for t in [0, 1], at one head pose and expression;
    with `bounce`, back again (loops)."""
    ts = np.linspace(0.0, 1.0, frames)
    images = [avatar.render(avatar.interpolate(category, a, b, float(t), base), yaw=yaw, pitch=pitch,
                            expression=expression, size=size) for t in ts]
    return images + images[-2:0:-1] if bounce else images


def write_video(path: Path | str, frames: Sequence[np.ndarray], fps: int = 24) -> Path:
    """Write float [0, 1] or uint8 frames to .mp4 (H.264 via imageio-ffmpeg) or .gif, atomically."""
    import imageio.v3 as iio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".mp4", ".gif"}:
        raise PerseError(f"{path}: choose a .mp4 or .gif file name")
    if not frames:
        raise PerseError(f"{path}: no frames to write")
    data = np.stack([to_uint8(f) for f in frames])
    with atomic_path(path, suffix) as tmp:
        if suffix == ".gif":
            iio.imwrite(tmp, data, duration=1000 / fps, loop=0)
        else:
            # H.264 wants even sides; yuv420p is what browsers and phones play.
            h, w = data.shape[1:3]
            data = np.pad(data, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            import imageio.v2 as iio2

            iio2.mimwrite(tmp, data, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                          macro_block_size=1)
    return path

