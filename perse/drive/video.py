"""Driving videos in and performances out, one frame at a time through imageio-ffmpeg's ffmpeg binary,
so memory stays flat however long the clip is.

Reading: mp4, mov, webm and gif, each checked before any work (a readable video, at least one frame,
not longer than the drive.max_seconds limit). Writing: H.264 MP4 with the encoder settings of
perse.export.video, the source's audio muxed in when asked, and GIF made from that MP4 with one
palette in two ffmpeg passes (a GIF encoder holding every frame would defeat the streaming).
"""
from __future__ import annotations

import math
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from perse.core.io import atomic_path, to_uint8
from perse.errors import PerseError
from perse.export.video import H264_PARAMS

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".gif")
OUTPUT_SUFFIXES = (".mp4", ".gif")
CONVERT_ADVICE = "convert it to MP4, e.g. `ffmpeg -i INPUT -c:v libx264 -pix_fmt yuv420p clip.mp4`"
# A browser's MediaRecorder (the app's webcam) writes webm without a frame rate, which ffmpeg then
# reports as the container's time base (1000 fps); such clips are resampled to a steady rate.
MAX_INPUT_FPS = 60.0
RESAMPLED_FPS = 30.0
# Frames are tracked at most this large: mediapipe looks at 192-512 px crops, and a 4K frame would
# only cost decoding, copying to the tracking workers and memory.
MAX_TRACK_SIDE = 1280


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float  # of the frames `frames` yields (after any resampling)
    size: tuple[int, int]  # (width, height) of the frames `frames` yields
    duration: float | None  # seconds, when the container says
    audio: bool
    filters: tuple[str, ...] = ()  # ffmpeg filters applied while reading

    @property
    def expected_frames(self) -> int | None:
        return None if self.duration is None else max(1, round(self.duration * self.fps))


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg_reason(exc: BaseException) -> str:
    """The useful last line of ffmpeg's complaint (imageio-ffmpeg puts the whole log in the message)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def probe(path: Path | str, max_seconds: float) -> VideoInfo:
    """Check a driving video before any work: exists, a supported format, decodable, within the limit."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise PerseError(f"{path} {what}; give the path of a video file ({', '.join(VIDEO_SUFFIXES)})")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise PerseError(f"{path}: '{path.suffix or 'no extension'}' is not a supported video format; use "
                         f"{', '.join(VIDEO_SUFFIXES)}, or {CONVERT_ADVICE}")
    if path.stat().st_size == 0:
        raise PerseError(f"{path} is empty (0 bytes); record or export the clip again")
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    except (RuntimeError, OSError, StopIteration) as exc:
        # ffmpeg's log (in the message) lists the streams it found: sound alone is a clearer error.
        if "Audio:" in str(exc) and "Video:" not in str(exc):
            raise PerseError(f"{path} has no video stream (sound only); give a clip that shows a face") from None
        raise PerseError(f"{path} cannot be read as a video ({_ffmpeg_reason(exc)}); the file may be damaged or "
                         f"not a video: {CONVERT_ADVICE}") from None
    finally:
        reader.close()
    width, height = (int(v) for v in meta.get("size") or (0, 0))
    if width <= 0 or height <= 0:
        raise PerseError(f"{path} has no picture (its video stream has no size); record or export the clip again")
    duration = float(meta.get("duration") or 0.0) or None
    if duration is not None and duration > max_seconds:
        raise PerseError(f"{path} is {duration:.1f} s long; the limit is {max_seconds:g} s (drive.max_seconds): trim "
                         f"it (e.g. `ffmpeg -i {path.name} -t {max_seconds:g} short{path.suffix}`) or raise the limit "
                         f"with --override drive.max_seconds=SECONDS")
    fps = float(meta.get("fps") or 0.0)
    filters = []
    if not (0 < fps <= MAX_INPUT_FPS) or not math.isfinite(fps):
        fps = RESAMPLED_FPS
        filters.append(f"fps={RESAMPLED_FPS:g}")
    scale = MAX_TRACK_SIDE / max(width, height)
    if scale < 1:
        # Even sides keep every later resize and the H.264 encoder simple.
        width, height = 2 * round(width * scale / 2), 2 * round(height * scale / 2)
        filters.append(f"scale={width}:{height}:flags=area")
    return VideoInfo(path, fps, (width, height), duration, bool(meta.get("audio_codec")), tuple(filters))


def frames(info: VideoInfo, max_seconds: float) -> Iterator[np.ndarray]:
    """The video's frames, (H, W, 3) uint8 RGB, one at a time. Raises when it has none, or when it runs
    past the limit (a container may not say how long it is)."""
    import imageio_ffmpeg

    limit = math.floor(max_seconds * info.fps) + 1
    params = ["-vf", ",".join(info.filters)] if info.filters else None
    reader = imageio_ffmpeg.read_frames(str(info.path), output_params=params)
    width, height = info.size
    count = 0
    try:
        next(reader)
        for raw in reader:
            count += 1
            if count > limit:
                raise PerseError(f"{info.path} runs past {max_seconds:g} s, the limit (drive.max_seconds): trim it or "
                                 f"raise the limit with --override drive.max_seconds=SECONDS")
            yield np.frombuffer(raw, np.uint8).reshape(height, width, 3)
    except RuntimeError as exc:
        raise PerseError(f"{info.path}: decoding stopped after {count} frames ({_ffmpeg_reason(exc)}); the file "
                         f"may be damaged: {CONVERT_ADVICE}") from None
    finally:
        reader.close()
    if count == 0:
        raise PerseError(f"{info.path} has no video frames; record or export the clip again")


class Mp4Writer:
    """Frames streamed into an H.264 MP4 (yuv420p, what browsers and phones play); sides padded to even."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float):
        import imageio_ffmpeg

        width, height = size
        self.pad = (height % 2, width % 2)
        self.size = (width + self.pad[1], height + self.pad[0])
        self.frames = 0
        self._writer = imageio_ffmpeg.write_frames(str(path), self.size, fps=fps, codec="libx264", quality=None,
                                                   pix_fmt_out="yuv420p", macro_block_size=1,
                                                   output_params=H264_PARAMS, ffmpeg_log_level="error")
        self._writer.send(None)

    def write(self, frame: np.ndarray) -> None:
        frame = to_uint8(frame)
        if any(self.pad):
            frame = np.pad(frame, ((0, self.pad[0]), (0, self.pad[1]), (0, 0)), mode="edge")
        self._writer.send(np.ascontiguousarray(frame))
        self.frames += 1

    def close(self) -> None:
        self._writer.close()


def _run_ffmpeg(args: list[str], what: str, out: Path) -> None:
    result = subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *args], capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise PerseError(f"{out}: ffmpeg could not {what} ({reason})")


def mux_audio(video: Path, source: Path, out: Path, seconds: float) -> None:
    """`video`'s picture with `source`'s first audio track (AAC: every MP4 player has it), cut to the
    picture's `seconds` (ffmpeg's -shortest cuts a copied video stream at the last whole audio packet
    it buffered, losing frames)."""
    _run_ffmpeg(["-i", str(video), "-i", str(source), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
                 "-c:a", "aac", "-b:a", "160k", "-t", f"{seconds:.3f}", "-movflags", "+faststart", str(out)],
                f"add the audio of {source}", out)


def mp4_to_gif(video: Path, out: Path, max_height: int) -> None:
    """A looping GIF of `video` at most `max_height` tall: one palette for the whole clip (steady colours,
    small files, as perse.export.video's GIFs), computed in a first pass so no frame is held in memory."""
    scale = f"scale=-2:'min({max_height},ih)':flags=lanczos"
    palette = out.with_name(out.stem + "-palette.png")
    try:
        _run_ffmpeg(["-i", str(video), "-vf", f"{scale},palettegen=stats_mode=diff", str(palette)],
                    "compute the GIF palette", out)
        _run_ffmpeg(["-i", str(video), "-i", str(palette), "-lavfi", f"{scale}[x];[x][1:v]paletteuse=dither=none",
                     "-loop", "0", "-f", "gif", str(out)], "write the GIF", out)
    finally:
        palette.unlink(missing_ok=True)


@contextmanager
def performance_writer(out: Path, size: tuple[int, int], fps: float, audio_from: Path | None,
                       gif_height: int) -> Iterator[Mp4Writer]:
    """A writer for `out` (.mp4 or .gif); the file appears, complete, only when the block succeeds.
    (`out`'s temporary name is unique, so the names derived from it are too.)"""
    suffix = out.suffix.lower()
    with atomic_path(out, suffix) as final:
        plain = final.with_name(final.stem + "-picture.mp4") if (audio_from or suffix == ".gif") else final
        try:
            writer = Mp4Writer(plain, size, fps)
            try:
                yield writer
            finally:
                writer.close()
            if suffix == ".gif":
                mp4_to_gif(plain, final, gif_height)
            elif audio_from is not None:
                mux_audio(plain, audio_from, final, writer.frames / fps)
        finally:
            if plain != final:
                plain.unlink(missing_ok=True)


def side_by_side(driving: np.ndarray, render: np.ndarray) -> np.ndarray:
    """The driving frame scaled to the render's height (box filter: no aliasing when shrinking a large
    frame), then the render, on one row."""
    from PIL import Image

    height = render.shape[0]
    width = max(1, round(driving.shape[1] * height / driving.shape[0]))
    scaled = np.asarray(Image.fromarray(driving).resize((width, height), Image.BOX))
    return np.concatenate([scaled, to_uint8(render)], axis=1)
