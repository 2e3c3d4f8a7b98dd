"""What runs on a Ray worker for one portrait: the pipeline into its run folder, its progress posted to
the driver's hub, and the batch's cancellation passed to the pipeline's CancelToken. Ray itself is
imported inside the functions that run on a worker, so importing this module does not load it."""
from __future__ import annotations

import threading
import time
import traceback
from typing import Any

from perse.config import PipelineConfig
from perse.errors import Cancelled, PerseError
from perse.events import CancelToken

# Training yields an event per step: posting at most this often keeps the hub's inbox small while the
# batch's progress still moves several times a second.
POST_INTERVAL_S = 0.25
CANCEL_POLL_S = 0.5
# The stage a worker posts when it picks a portrait up, before the pipeline's first event.
STARTED = "started"


class Hub:
    """A Ray actor between the driver and the workers: workers post progress and read whether the
    batch was cancelled; the driver takes the posted events and cancels."""

    def __init__(self) -> None:
        self.inbox: list[tuple[str, str, float, str]] = []
        self.cancelled = False

    def post(self, name: str, stage: str, fraction: float, message: str) -> None:
        self.inbox.append((name, stage, fraction, message))

    def take(self) -> list[tuple[str, str, float, str]]:
        taken, self.inbox = self.inbox, []
        return taken

    def cancel(self) -> None:
        self.cancelled = True

    def is_cancelled(self) -> bool:
        return self.cancelled


def _watch_cancel(hub: Any, token: CancelToken, finished: threading.Event) -> None:
    import ray

    while not finished.wait(CANCEL_POLL_S):
        try:
            if ray.get(hub.is_cancelled.remote()):
                token.cancel()
                return
        except ray.exceptions.RayError:
            # The driver is gone (it crashed or was killed): stop at the next check, as Ctrl-C would.
            token.cancel()
            return


def run_portrait(name: str, photo: str, run_dir: str, config: PipelineConfig, threads: int | None,
                 hub: Any) -> dict[str, Any]:
    """Run (or resume) one portrait; never raises for a portrait's own failure: returns its state
    ("done", "failed" or "cancelled") and message for the summary."""
    from perse.pipeline import run

    if threads:
        import torch

        torch.set_num_threads(threads)
    token, finished = CancelToken(), threading.Event()
    watcher = threading.Thread(target=_watch_cancel, args=(hub, token, finished), daemon=True)
    watcher.start()
    hub.post.remote(name, STARTED, 0.0, "")
    stage, last_post, message = "", 0.0, ""
    start = time.perf_counter()
    try:
        for event in run(photo, run_dir, config, cancel=token):
            message = event.message
            now = time.perf_counter()
            if event.stage != stage or event.fraction >= 1.0 or now - last_post >= POST_INTERVAL_S:
                stage, last_post = event.stage, now
                hub.post.remote(name, event.stage, float(event.fraction), event.message)
        state = "done"
    except Cancelled as exc:
        state, message = "cancelled", str(exc)
    except PerseError as exc:
        state, message = "failed", str(exc)
    except Exception as exc:  # a bug or an environment fault: reported with its traceback, the batch goes on
        state, message = "failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    finally:
        finished.set()
    return {"name": name, "state": state, "stage": stage, "message": message,
            "seconds": time.perf_counter() - start}
