"""Tiny video files for the drive tests: frames that differ from each other, written in every input
format (optionally with a sound track), and read back with what ffmpeg says about them."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

FPS = 10.0


def pattern_frames(count: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Frames that differ from each other (a moving gradient), as uint8 RGB."""
    y, x = np.mgrid[0:height, 0:width]
    return [np.stack([(x * 4 + 20 * i) % 256, (y * 5) % 256, np.full_like(x, 40 * (i % 6))], -1).astype(np.uint8)
            for i in range(count)]


def write_clip(path: Path, frames: list[np.ndarray], fps: float = FPS, audio_seconds: float | None = None) -> Path:
    """`frames` into `path` by its suffix (mp4/mov: H.264, webm: VP9, gif), optionally with a sine tone."""
    import imageio.v2 as iio
    import imageio_ffmpeg

    if path.suffix == ".gif":
        iio.mimwrite(path, frames, format="GIF", duration=1000 / fps, loop=0)
        return path
    codec = "libvpx-vp9" if path.suffix == ".webm" else "libx264"
    picture = path.with_name(path.stem + "-picture" + path.suffix) if audio_seconds else path
    iio.mimwrite(picture, frames, format="FFMPEG", fps=fps, codec=codec, macro_block_size=1,
                 pixelformat="yuv420p", output_params=["-loglevel", "error"])
    if audio_seconds:
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(picture), "-f", "lavfi",
                        "-i", f"sine=frequency=440:duration={audio_seconds}", "-c:v", "copy", "-c:a", "aac",
                        "-shortest", str(path)], check=True)
        picture.unlink()
    return path


def read_back(path: Path) -> tuple[dict, list[np.ndarray]]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return meta, [np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader]
