"""Drive an avatar with a face video (docs/drive.md): track each frame's expression and head pose,
retarget them to the video's own neutral frame, render the performance at any look.

    for event in drive("runs/me", "clip.mp4", "out.mp4", look={"hair": 2}, keep_audio=True):
        print(f"{event.fraction:.0%} {event.message}")

`drive`, `track_events` and `track_video` load the renderer (torch) on first use, so that the face-tracking
worker processes, which import perse.drive.track, start without it.
"""
from __future__ import annotations

from typing import Any

__all__ = ["drive", "track_events", "track_video"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from perse.drive import run

        return getattr(run, name)
    raise AttributeError(f"module 'perse.drive' has no attribute '{name}'")
