"""Typed progress events shared by every long-running stage; the CLI and the app consume the same stream.

Stages are generators that yield `Progress` events. Cancellation is cooperative: a stage checks its
`CancelToken` between units of work and raises `Cancelled`, leaving only complete results on disk.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from perse.errors import Cancelled


@dataclass
class Progress:
    stage: str  # "ingest" | "draft" | "synth" | "train" | "export" | "metrics"
    fraction: float  # of this stage, 0..1
    message: str = ""
    image: str | None = None  # path of a preview image written by the stage
    clip: str | None = None  # path of a clip (video/gif/folder) written by the stage
    # A run folder whose avatar opens now (perse.avatar.Avatar.load): the draft, then each training checkpoint.
    avatar: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


class CancelToken:
    """Thread-safe flag a UI sets to stop long work at the next check."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("stopped on request; finished results are kept and a re-run resumes from them")


NEVER = CancelToken()
