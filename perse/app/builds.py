"""One avatar build of a session: the pipeline runs in a thread of its own, not in the request that
started it, so that a page reload (which ends that request) can reattach to the build's progress.

Pages watch a build: each watcher waits for new events (or a heartbeat) and stamps `watched_at`; the
session sweeper cancels a build that no page has watched for a while (its client is gone).
"""
from __future__ import annotations

import contextvars
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from perse.app import studio
from perse.app.progress import RunView
from perse.app.session import FileCancelToken
from perse.config import PipelineConfig
from perse.errors import Cancelled, PerseError
from perse.events import Progress

log = logging.getLogger("perse.app")

STOPPED = ("**Stopped.** What was finished is kept: press Run with the same photo and settings to continue "
           "from there.")
SERVER_ERROR = "**Something went wrong on the server.** The details are in its log; please try again."


def shorten_paths(text: str, *paths: str | Path | None) -> str:
    """`text` with these server-side paths shortened to their file names, for the visitor to read."""
    for path in paths:
        if path:
            text = text.replace(str(path), Path(path).name)
    return text


class Build:
    """A pipeline run into `folder`, from `photo`, with its progress and outcome.

    state: "queued" (waiting for a free build slot), "running", then "ready", "failed" or "stopped".
    """

    def __init__(self, number: int, folder: Path, photo: str, config: PipelineConfig, *,
                 weights: dict[str, float], clock: Callable[[], float] = time.time):
        self.number, self.folder, self.photo, self.config = number, Path(folder), photo, config
        self.photo_name = Path(photo).name
        self.categories = list(config.synth.categories)
        self.clock = clock
        self.state = "queued"
        self.view = RunView(weights=dict(weights))
        self.outcome = ""  # the status once done
        self.warning: str | None = None  # what to tell the visitor once, as a toast, when it ends
        self.info: studio.AvatarInfo | None = None
        self.source: Any = None  # the avatar's own latent (the photo's look)
        self.look: Any = None  # the latent the studio shows for this avatar
        self.image: Any = None  # the first render
        # While it runs, a build already has an avatar to play with: the draft, then each training
        # checkpoint (perse.pipeline.run), then the finished one. `avatar_folder` is the run folder
        # the studio loads it from; `layout` counts changes of its categories and looks (a slider's
        # meaning), after which the studio's controls are rebuilt.
        self.avatar_folder: Path | None = None
        self.avatar_name = ""
        self.layout = 0
        self.took_studio = False  # its first avatar has been shown in the studio
        self.replaced: Any = None  # the build the studio showed before that
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cancel = FileCancelToken(self.folder / "cancel.flag")
        self.cancel.reset()  # a stopped build's folder is reused by the next Run
        self.started_at = self.watched_at = clock()
        self.finished_at: float | None = None
        self.statuses: list[str] = []  # each event's status line, in order
        self.version = 0
        self._changed = threading.Condition()

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    @property
    def elapsed(self) -> float:
        return (self.finished_at or self.clock()) - self.started_at

    def label(self) -> str:
        return f"#{self.number}: {self.photo_name} ({', '.join(self.categories)})"

    def start(self, slots: threading.Semaphore, on_avatar: Callable[["Build"], None],
              on_end: Callable[["Build"], None]) -> threading.Thread:
        """Run in a thread; `on_avatar` is called each time the build has a new avatar to show (a draft, a
        checkpoint, the finished one), `on_end` once it has ended, however it ended."""
        # The request's context goes along: on ZeroGPU, @spaces.GPU reads the visitor from it.
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(self._work, slots, on_avatar, on_end), daemon=True,
                                  name=f"perse-build-{self.folder.parent.parent.name[:8]}-{self.number}")
        thread.start()
        return thread

    def wait(self, seen: int, timeout: float) -> int:
        """Block until the build has changed since version `seen` (or `timeout` passes); the version now."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != seen, timeout=timeout)
            return self.version

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of what a page shows, taken while the worker may be updating it."""
        with self._changed:
            view = self.view
            return {"state": self.state, "status": self._public(view.status_markdown()) if view.stage else "",
                    "ingest": view.ingest_image, "gallery": list(view.gallery), "losses": list(view.losses),
                    "preview": view.preview, "report": view.report, "outcome": self.outcome,
                    "statuses": list(self.statuses), "layout": self.layout, "avatar_name": self.avatar_name}

    def _public(self, text: str) -> str:
        """A stage's message as a visitor may read it: paths inside the build folder relative to it,
        the photo by its name (no server paths)."""
        return shorten_paths(text.replace(f"{self.folder}/", ""), self.folder, self.photo)

    def _changed_now(self, **fields: Any) -> None:
        with self._changed:
            for name, value in fields.items():
                setattr(self, name, value)
            self.version += 1
            self._changed.notify_all()

    def _work(self, slots: threading.Semaphore, on_avatar: Callable[["Build"], None],
              on_end: Callable[["Build"], None]) -> None:
        try:
            # Waits for a slot here rather than in gradio's queue: a reloaded page's build keeps its slot,
            # and PERSE_RUN_CONCURRENCY bounds the builds actually running.
            while not slots.acquire(timeout=0.5):
                if self.cancel.cancelled:
                    self._finish("stopped", STOPPED)
                    return
            try:
                self._changed_now(state="running", started_at=self.clock())
                self._run(on_avatar)
            finally:
                slots.release()
        finally:
            on_end(self)

    def _open(self, folder: Path, name: str, on_avatar: Callable[["Build"], None]) -> None:
        """Make the avatar in `folder` this build's, and say so."""
        info, source, image = studio.open_avatar(str(folder), studio.View())
        with self._changed:
            layout_changed = self.info is None or info.categories != self.info.categories
            self.info, self.source, self.image, self.avatar_folder, self.avatar_name = info, source, image, folder, name
            if layout_changed or self.look is None:
                self.look = source
                self.layout += 1
            self.version += 1
            self._changed.notify_all()
        on_avatar(self)

    def _open_early(self, event: Progress, on_avatar: Callable[["Build"], None]) -> None:
        """The draft or a training checkpoint, opened at once, while the pipeline waits (a checkpoint in
        the run's workspace moves into the run folder when the run ends). One that cannot be opened is
        skipped: the build goes on and the studio keeps what it had."""
        name = "draft" if event.stage == "draft" else f"training step {event.metrics.get('step', '?')}"
        try:
            self._open(Path(event.avatar), name, on_avatar)
        except PerseError as exc:
            log.warning("build %s: could not open its %s avatar: %s", self.number, name, exc)

    def _run(self, on_avatar: Callable[["Build"], None]) -> None:
        try:
            for event in studio.pipeline_events(self.photo, str(self.folder), self.config, self.cancel):
                with self._changed:
                    self.view.update(event)
                    self.statuses.append(self._public(self.view.status_markdown()))
                    self.version += 1
                    self._changed.notify_all()
                if event.avatar:
                    self._open_early(event, on_avatar)
            self._open(self.folder, "finished", on_avatar)
        except Cancelled:
            self._finish("stopped", STOPPED)
            return
        except PerseError as exc:
            message = shorten_paths(str(exc), self.photo)
            self._finish("failed", f"**Could not build an avatar from this photo.** {message}", warning=message)
            return
        except Exception:
            log.exception("build %s in %s failed", self.number, self.folder)
            self._finish("failed", SERVER_ERROR, warning="Something went wrong on the server; the details are in its log.")
            return
        self._finish("ready", *self._ready_message())

    def _ready_message(self) -> tuple[str, str | None]:
        info, view = self.info, self.view
        counts = f"({info.num_gaussians} Gaussians, {len(info.categories)} editable categories)"
        if view.identity_low:
            identity = view.identity
            warning = (f"This avatar may not look like the person: identity {identity['mean']:.2f}, while the same "
                       f"person scores above {identity['threshold']:g} ({identity['backend']}). A sharp, frontal, "
                       f"evenly lit photo helps" + ("" if self.config.preset == "quality" else
                                                   ", and so does a larger preset where one is offered") + ".")
            return (f"**Avatar ready, with a warning** after {self.elapsed:.0f} s {counts}.  \n⚠ {warning}  \n"
                    f"{view.summary}"), warning
        return f"**Avatar ready** in {self.elapsed:.0f} s {counts}. {view.summary}", None

    def _finish(self, state: str, outcome: str, warning: str | None = None) -> None:
        self._changed_now(state=state, outcome=outcome, warning=warning, finished_at=self.clock())

