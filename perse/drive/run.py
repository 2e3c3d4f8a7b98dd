"""`drive`: a face video drives a trained avatar, at any look, into an MP4 or GIF (docs/drive.md).

Two streaming passes: the first tracks every frame of the video (face mesh, head pose, blendshapes)
and keeps only a few numbers per frame; the performance is then retargeted to the video's neutral
frame; the second renders each frame and encodes it at once (decoding the video again when the driving
frame is shown beside it). Memory therefore does not grow with the video's length.
"""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Generator, Iterator

import numpy as np

from perse.avatar.avatar import Avatar, Selection
from perse.config import DriveConfig, PipelineConfig
from perse.drive import video as videos
from perse.drive.retarget import Track, retarget
from perse.drive.track import FrameTrack, track, worker_count
from perse.errors import PerseError
from perse.events import NEVER, CancelToken, Progress
from perse.synth.animate.motion import MAX_PITCH, MAX_YAW

STAGE = "drive"
# Share of the progress bar for tracking; rendering and encoding have the rest. (Tracking is the
# slower half on a GPU, where a render takes a few milliseconds; on a CPU they are alike.)
TRACK_SHARE = 0.5
# Progress events per pass: enough for a smooth bar, few enough not to flood a log.
PROGRESS_STEPS = 50
# Frames rendered in one batch on a GPU: there a batch costs little more than one frame (the CPU renderer
# gains nothing and renders one at a time).
RENDER_BATCH = 16
# Rendered batches waiting for the encoder, at most: it keeps up, and memory stays flat.
WRITE_AHEAD = 2
NO_FACE_ADVICE = ("use a clip where one face is clearly visible, roughly frontal and well lit (hands, masks and "
                  "strong backlight prevent detection)")


def check_output(out: Path) -> None:
    """Refuse an output that cannot be written before any work is done."""
    if out.is_dir():
        raise PerseError(f"{out} is a folder; give a file name ending in .mp4 or .gif, e.g. {out / 'drive.mp4'}")
    if out.suffix.lower() not in videos.OUTPUT_SUFFIXES:
        raise PerseError(f"{out}: the output must be an .mp4 or a .gif file")
    if not out.parent.is_dir():
        raise PerseError(f"{out}: its folder {out.parent} does not exist; create it first or choose another path")


def _tracked(info: videos.VideoInfo, config: DriveConfig) -> Iterator[FrameTrack]:
    workers = worker_count(config, info.expected_frames)
    return track(videos.frames(info, config.max_seconds), config, workers)


def _every(total: int | None) -> int:
    return max(1, (total or 300) // PROGRESS_STEPS)


def _tracking(info: videos.VideoInfo, config: DriveConfig, cancel: CancelToken) -> Generator[Progress, None, Track]:
    """Track every frame, yielding progress over the tracking share of the bar; returns the Track."""
    kept = []
    expected = info.expected_frames
    for index, frame in enumerate(_tracked(info, config)):
        cancel.check()
        kept.append(_kept(frame))
        if index % _every(expected) == 0:
            of = f"/{expected}" if expected else ""
            yield Progress(STAGE, TRACK_SHARE * min(1.0, index / (expected or index + 100)),
                           f"tracking the face: frame {index + 1}{of}")
    return _track(kept, info, config)


def track_events(video: Path | str, config: DriveConfig,
                 cancel: CancelToken = NEVER) -> Generator[Progress, None, Track]:
    """Track every frame of a video (no rendering), yielding Progress over the tracking share of drive()'s
    bar; returns the Track, which drive(tracked=...) renders. (Tracking needs no GPU: the app tracks
    before its GPU call.)"""
    return (yield from _tracking(videos.probe(video, config.max_seconds), config, cancel))


def track_video(video: Path | str, config: DriveConfig, cancel: CancelToken = NEVER) -> Track:
    """Track every frame of a video (no rendering): what the bench compares driving and rendered clips with."""
    tracking = track_events(video, config, cancel)
    while True:
        try:
            next(tracking)
        except StopIteration as done:
            return done.value


def _kept(frame: FrameTrack) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the performance needs of a frame (a few hundred numbers, not the image or the whole mesh)."""
    return frame.features, frame.pose, frame.rigid.astype(np.float32)


def _track(frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]], info: videos.VideoInfo,
           config: DriveConfig) -> Track:
    features, pose, rigid = (np.array(column) for column in zip(*frames))
    return Track(info.fps, features, pose, rigid.astype(np.float64), info.size, config.blendshapes)


def drive(avatar: Avatar | Path | str, video: Path | str, out: Path | str, look: Selection = None, *,
          config: PipelineConfig | None = None, neutral: int | None = None, side_by_side: bool = False,
          keep_audio: bool = False, size: int | None = None, device: str | None = None,
          tracked: Track | None = None, cancel: CancelToken = NEVER) -> Iterator[Progress]:
    """Render `avatar` (an Avatar or a run folder) performing `video` into `out` (.mp4 or .gif), yielding
    Progress events; the last one names the clip and carries the numbers (frames, neutral frame, timings).

    `look` is a latent or {category: value} (unnamed categories keep the photo's look); `neutral` the
    frame the performance is measured from (default: a calm frontal frame found in the video); `size`
    the render's side in pixels (default drive.size, else the avatar's training size); `keep_audio`
    copies the video's sound into an MP4; `side_by_side` shows the driving frame left of the render.
    `config` defaults to the avatar's own (its drive and export sections are used). `tracked`: the video's
    Track (track_events), when it was tracked before (elsewhere), so only the rendering runs here.
    """
    out = Path(out)
    check_output(out)
    if isinstance(avatar, (str, Path)):
        avatar = Avatar.load(avatar, device)
    config = config or avatar.config
    settings = config.drive
    info = videos.probe(video, settings.max_seconds)
    latent = avatar.latent(look)
    size = size or settings.size or avatar.image_size

    start = time.perf_counter()
    if tracked is None:
        tracked = yield from _tracking(info, settings, cancel)
    track_seconds = time.perf_counter() - start
    if not tracked.found.any():
        raise PerseError(f"{info.path}: no face found in any of its {len(tracked)} frames; {NO_FACE_ADVICE}")
    performance = retarget(tracked, settings.smoothing_min_cutoff, settings.smoothing_beta, MAX_YAW, MAX_PITCH,
                           config.ingest.fov_deg, neutral)
    # The controls in perse.core.expressions' order, which every loadable avatar learned (load_checkpoint).
    expressions, notes = np.clip(performance.controls, 0.0, 1.0), []
    if performance.bridged:
        notes.append(f"no face in {performance.bridged} of {len(tracked)} frames: bridged from their neighbours")
    yield Progress(STAGE, TRACK_SHARE, f"neutral frame {performance.neutral}; rendering {len(tracked)} frames "
                                       f"at {size} px")

    audio_from = None
    if keep_audio:
        if out.suffix.lower() == ".gif":
            notes.append("a GIF has no sound: the audio was not kept (write an .mp4 to keep it)")
        elif not info.audio:
            notes.append(f"{info.path.name} has no audio track: the result is silent")
        else:
            audio_from = info.path
    start = time.perf_counter()
    frame_size = _frame_size(info, size, side_by_side)
    # The video is decoded a second time only to be shown beside the render (a fifth of a frame's time).
    driving_frames = videos.frames(info, settings.max_seconds) if side_by_side else None
    batch = RENDER_BATCH if avatar.device.type == "cuda" else 1
    every = _every(len(tracked))

    def write(images: np.ndarray) -> None:
        for image in images:
            writer.write(image if driving_frames is None else videos.side_by_side(next(driving_frames), image))

    # Frames are encoded on a thread of their own while the next batch renders: on the H200 each took
    # about as long as the other (500 frames at 512 px: 0.25 s rendering, 0.45 s encoding).
    with (videos.performance_writer(out, frame_size, info.fps, audio_from, config.export.gif_size) as writer,
          ThreadPoolExecutor(1) as encoder):
        writing: deque = deque()
        for first in range(0, len(tracked), batch):
            cancel.check()
            part = slice(first, first + batch)
            images = avatar.render_frames(latent, performance.yaw[part], performance.pitch[part], expressions[part],
                                          size=size, uint8=True)
            writing.append(encoder.submit(write, images))
            while len(writing) > WRITE_AHEAD:
                writing.popleft().result()
            if first // every != (first + len(images)) // every:
                yield Progress(STAGE, TRACK_SHARE + (1 - TRACK_SHARE) * first / len(tracked),
                               f"rendering frame {first + 1}/{len(tracked)}")
        while writing:
            writing.popleft().result()
    render_seconds = time.perf_counter() - start
    metrics = {"frames": writer.frames, "fps": info.fps, "size": list(frame_size), "neutral_frame": performance.neutral,
               "frames_without_face": performance.bridged, "track_seconds": round(track_seconds, 3),
               "render_seconds": round(render_seconds, 3), "audio": audio_from is not None, "notes": notes}
    message = f"{writer.frames} frames written to {out}" + "".join(f"; {note}" for note in notes)
    yield Progress(STAGE, 1.0, message, clip=str(out), metrics=metrics)


def _frame_size(info: videos.VideoInfo, size: int, side_by_side: bool) -> tuple[int, int]:
    if not side_by_side:
        return size, size
    width, height = info.size
    return max(1, round(width * size / height)) + size, size

