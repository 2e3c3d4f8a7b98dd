"""Per-visitor work folders for the app.

Every browser session (or gradio_client connection) owns one folder under a temporary root; nothing
in it is ever shared with another session. A folder is removed when its session ends: on page unload
(gradio's heartbeat notices the closed tab), when its gr.State expires (API clients never unload), and
for whatever is left, when the process exits.
"""
from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perse.events import CancelToken


class FileCancelToken(CancelToken):
    """A cancel flag stored as a file, so it also reaches a pipeline running in another process
    (ZeroGPU runs each @spaces.GPU call in a forked worker, where a threading.Event set here is invisible)."""

    def __init__(self, flag: Path):
        super().__init__()
        self.flag = Path(flag)

    def cancel(self) -> None:
        self.flag.parent.mkdir(parents=True, exist_ok=True)
        self.flag.touch()
        super().cancel()

    def reset(self) -> None:
        self.flag.unlink(missing_ok=True)
        self._event.clear()

    @property
    def cancelled(self) -> bool:
        if self.flag.exists():
            self._event.set()
        return self._event.is_set()

    def check(self) -> None:
        if self.cancelled:
            super().check()

    # Pickled into a ZeroGPU worker: only the path travels; the Event is rebuilt there.
    def __getstate__(self) -> dict[str, Any]:
        return {"flag": str(self.flag)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(Path(state["flag"]))


@dataclass(eq=False)
class Session:
    """One visitor's workspace: the run folder, the cancel flag and the avatar controls' state."""

    id: str
    folder: Path
    # The trained avatar's description (studio.AvatarInfo) and the latent currently shown, which
    # sliders, random buttons and attribute transfer edit; None until a run has finished.
    avatar: Any = None
    latent: Any = None
    closed: bool = False
    _counter: Any = field(default_factory=itertools.count, repr=False)

    def __post_init__(self) -> None:
        # One token object per session: a run in this process sees cancel() even after the folder is gone.
        self.cancel = FileCancelToken(self.folder / "cancel.flag")
        # Held while a build writes into run_dir: a second Run from the same session (an API client, a
        # double submit) must not write the same folder concurrently.
        self.building = threading.Lock()

    @property
    def run_dir(self) -> Path:
        return self.folder / "run"

    def output_path(self, stem: str, suffix: str) -> Path:
        """A fresh file name per export, so a download link handed out earlier never changes under the user."""
        out = self.folder / "exports"
        out.mkdir(parents=True, exist_ok=True)
        return out / f"{stem}-{next(self._counter):03d}{suffix}"

    def upload_path(self, suffix: str) -> Path:
        up = self.folder / "uploads"
        up.mkdir(parents=True, exist_ok=True)
        return up / f"photo-{next(self._counter):03d}{suffix}"


class SessionRoot:
    """Creates, finds and removes session folders under one temporary root."""

    def __init__(self, root: str | Path | None = None):
        if root is None:
            self.root = Path(tempfile.mkdtemp(prefix="perse-studio-"))
            self._owns_root = True
        else:
            self.root = Path(root)
            self.root.mkdir(parents=True, exist_ok=True)
            self._owns_root = False
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        atexit.register(self.close_all)

    def open(self, key: str | None = None) -> Session:
        """The session for `key` (gradio's session hash), created on first use."""
        with self._lock:
            if key is not None and key in self._sessions and not self._sessions[key].closed:
                return self._sessions[key]
            # The folder name is ours, never the client-supplied key, so no key can reach outside the root.
            session_id = uuid.uuid4().hex
            folder = self.root / session_id
            folder.mkdir(parents=True)
            session = Session(id=session_id, folder=folder)
            self._sessions[key or session_id] = session
            return session

    def close(self, session: Session | None) -> None:
        if session is None:
            return
        with self._lock:
            for key in [k for k, s in self._sessions.items() if s is session]:
                del self._sessions[key]
        session.closed = True
        # A run still writing into the folder stops at its next cancel check; then the folder goes.
        session.cancel.cancel()
        shutil.rmtree(session.folder, ignore_errors=True)

    def find(self, key: str) -> Session | None:
        return self._sessions.get(key)

    def __len__(self) -> int:
        return len(self._sessions)

    def close_all(self) -> None:
        for session in list(self._sessions.values()):
            self.close(session)
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)


def default_root() -> SessionRoot:
    """PERSE_WORK_ROOT picks the parent folder (e.g. a Space's ephemeral disk); default: the system temp dir."""
    return SessionRoot(os.environ.get("PERSE_WORK_ROOT") or None)
