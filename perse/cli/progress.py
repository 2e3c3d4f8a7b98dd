"""The CLI's one progress voice and its Ctrl-C handling, shared by every long command.

A terminal gets one live bar per stage (redrawn in place, kept when the stage ends); a pipe or a log
file gets one plain line per event, so logs hold no carriage returns. Ctrl-C asks the running stage to
stop at its next check (training saves a checkpoint first); a second Ctrl-C stops at once.
"""
from __future__ import annotations

import shutil
import signal
import sys
from contextlib import contextmanager
from typing import IO, Iterable, Iterator

from perse.events import CancelToken, Progress

BAR_WIDTH = 24


class ProgressPrinter:
    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.stage: str | None = None

    def __call__(self, event: Progress) -> None:
        percent = f"{event.fraction:4.0%}"
        note = f"  ({event.image})" if event.image and event.fraction >= 1.0 else ""
        if not self.live:
            print(f"[{event.stage} {percent}] {event.message}{note}", file=self.stream, flush=True)
            return
        if self.stage is not None and event.stage != self.stage:
            self.stream.write("\n")
        self.stage = event.stage
        filled = int(round(event.fraction * BAR_WIDTH))
        bar = f"{event.stage:>7} {percent} |{'#' * filled}{'.' * (BAR_WIDTH - filled)}| "
        width = shutil.get_terminal_size((100, 20)).columns
        message = (event.message + note)[: max(10, width - len(bar) - 1)]
        # \x1b[K clears what a longer previous message left on the line.
        self.stream.write(f"\r{bar}{message}\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self.live and self.stage is not None:
            self.stream.write("\n")
            self.stream.flush()
        self.stage = None

    def show(self, events: Iterable[Progress]) -> None:
        """Print every event of a stage generator; the bar line is closed even when the stage fails."""
        try:
            for event in events:
                self(event)
        finally:
            self.close()


@contextmanager
def stop_on_ctrl_c() -> Iterator[CancelToken]:
    """A token that the first Ctrl-C cancels (the stage stops cleanly at its next check); the second
    raises KeyboardInterrupt for someone who cannot wait."""
    token = CancelToken()

    def interrupt(signum, frame) -> None:
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        print("\nstopping after the current step (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield token
    finally:
        signal.signal(signal.SIGINT, previous)
