"""The app's "Drive it" tab: a visitor's clip (uploaded, or recorded with the webcam) drives their avatar
at the look the studio shows, into an MP4 to play and download (perse.drive).

`DriveTab.drive` is the handler app.py wires: it tracks the clip in this process, on the tracking workers
the app started at launch (tracking needs no GPU), then calls `drive_events`, the GPU call (a generator of
Progress events, like the pipeline's), to render it; it streams the progress into a status line and ends
with the video.
"""
from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any, Generator, Iterator

import gradio as gr
import spaces
import torch

from perse.app.builds import shorten_paths
from perse.app.handlers import NO_AVATAR, Handlers, file_size
from perse.app.session import Session
from perse.app.studio import AVATARS
from perse.config import DriveConfig
from perse.drive import drive, track_events
from perse.drive.retarget import Track
from perse.drive.video import probe
from perse.errors import PerseError
from perse.events import Progress

log = logging.getLogger("perse.app")

# A visitor's clip on a shared machine: long enough for a sentence or two, short enough to wait for.
MAX_SECONDS = 30.0
# ZeroGPU's reservation for one clip: loading the avatar, then rendering (tracked before the call) at
# several times real time.
DRIVE_SECONDS_BASE = 30
DRIVE_SECONDS_PER_CLIP_SECOND = 1
# The tracking settings: the drive defaults, as the tracking workers app.py starts at launch.
TRACKING = DriveConfig(max_seconds=MAX_SECONDS)


def drive_seconds(run_dir: str, latent: torch.Tensor, video: str, tracked: Track, out: str, side_by_side: bool,
                  keep_audio: bool) -> int:
    try:
        length = probe(video, MAX_SECONDS).duration or MAX_SECONDS
    except PerseError:
        length = 0.0  # drive_events fails at once with the message
    return int(DRIVE_SECONDS_BASE + DRIVE_SECONDS_PER_CLIP_SECOND * math.ceil(length))


@spaces.GPU(duration=drive_seconds)
def drive_events(run_dir: str, latent: torch.Tensor, video: str, tracked: Track, out: str, side_by_side: bool,
                 keep_audio: bool) -> Iterator[Progress]:
    avatar = AVATARS.get(run_dir)
    config = copy.deepcopy(avatar.config)
    config.drive.max_seconds = min(config.drive.max_seconds, MAX_SECONDS)
    yield from drive(avatar, video, out, latent, config=config, side_by_side=side_by_side, keep_audio=keep_audio,
                     tracked=tracked)


class DriveTab:
    """The tab's handler; outputs: drive_status (Markdown), drive_video (Video), drive_download (DownloadButton)."""

    def __init__(self, handlers: Handlers):
        self.root = handlers.root

    def drive(self, session: Session | None, video: str | None, side_by_side: bool,
              keep_audio: bool) -> Iterator[dict[str, Any]]:
        if session is None or session.closed or session.current is None:
            gr.Info(NO_AVATAR)
            yield {}
            return
        if not video:
            gr.Warning("Upload a clip of a face, or record one with the webcam, first.")
            yield {"drive_status": "Waiting for a clip."}
            return
        out = session.output_path("drive", ".mp4")
        yield {"drive_status": "Starting…", "drive_video": None, "drive_download": gr.update(visible=False)}
        try:
            with session.in_use():
                # A page that goes away closes this generator, and with it the drive at its next frame.
                tracked = yield from self._shown(session, track_events(video, TRACKING))
                yield from self._shown(session, drive_events(str(session.run_dir), session.latent, video, tracked,
                                                             str(out), bool(side_by_side), bool(keep_audio)))
        except PerseError as exc:
            message = shorten_paths(str(exc), video)
            gr.Warning(message)
            yield {"drive_status": f"**This clip cannot drive the avatar.** {message}"}
        except Exception as exc:
            log.exception("drive failed")
            raise gr.Error("Something went wrong on the server; the details are in its log. Please try again.") from exc
        finally:
            self.root.touch(session)

    def _shown(self, session: Session,
               events: Generator[Progress, None, Any]) -> Generator[dict[str, Any], None, Any]:
        """`events` streamed into the status line (the last, carrying the clip, as the result); returns what
        their generator returns (tracking's Track)."""
        while True:
            try:
                event = next(events)
            except StopIteration as done:
                return done.value
            self.root.touch(session)
            yield self._finished(event) if event.clip else {"drive_status": f"{event.fraction:.0%} · {event.message}"}

    @staticmethod
    def _finished(event: Progress) -> dict[str, Any]:
        path, metrics = event.clip, event.metrics
        notes = "".join(f"  \nNote: {note}." for note in metrics["notes"])
        return {"drive_status": f"**Done:** {metrics['frames']} frames at {metrics['fps']:g} fps "
                                f"(measured from frame {metrics['neutral_frame']}, the calmest).{notes}",
                "drive_video": path,
                "drive_download": gr.update(value=path, visible=True,
                                            label=f"Download {Path(path).name} ({file_size(path)})")}
