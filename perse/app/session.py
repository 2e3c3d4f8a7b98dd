"""Where the app keeps a visitor's work, and for how long (the policy is stated in docs/storage.md).

One root folder per app process holds everything the app writes: `sessions/<id>/` (one folder per
visitor, named by us, never by anything a client sends) and `cache/` (gradio's upload and output cache,
GRADIO_TEMP_DIR). A browser keeps a random token (gr.BrowserState) that finds its session again after a
reload; an API client's session is found by gradio's session hash. A session lives until it has been
idle for `ttl_s` (its builds and avatars survive reloads, closed tabs and failed later runs until then);
gradio removes its cached copies once they are `ttl_s` old (app.py's delete_cache), never later than
their session. The whole root goes when the process exits (atexit; app.py turns SIGTERM into a normal
exit) or, if the process was killed, at the next start-up, which sweeps roots whose owning process is gone.
"""
from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from perse.events import CancelToken

ROOT_PREFIX = "perse-studio-"
OWNER_FILE = "owner.json"
# A root with no owner file yet may belong to a process that is starting right now; only one this old is a leftover.
UNOWNED_GRACE_S = 60.0


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
    """One visitor's workspace: its builds (perse.app.builds.Build, oldest first) and which one the studio shows."""

    id: str
    key: str  # the browser's token, or "api:<session hash>"
    folder: Path
    last_seen: float
    builds: list[Any] = field(default_factory=list)
    current: Any = None  # the Build whose avatar the studio shows: a ready one, or one under way with a draft
    closed: bool = False
    calls: int = 0  # requests on its avatar under way (a long export must not let it expire)
    _counter: Any = field(default_factory=itertools.count, repr=False)

    def __post_init__(self) -> None:
        # Guards `builds` and `current`: a build's worker thread marks it ready while handlers read them.
        self.lock = threading.RLock()

    # The studio's view of the current avatar; handlers edit `latent` (the look shown).
    @property
    def avatar(self) -> Any:
        return None if self.current is None else self.current.info

    @property
    def latent(self) -> Any:
        return None if self.current is None else self.current.look

    @latent.setter
    def latent(self, value: Any) -> None:
        self.current.look = value

    @property
    def run_dir(self) -> Path:
        """Where the studio's avatar is loaded from: a build under way shows its draft or latest checkpoint."""
        return self.current.avatar_folder or self.current.folder

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        with self.lock:
            self.calls += 1
        try:
            yield
        finally:
            with self.lock:
                self.calls -= 1

    def running(self) -> Any:
        with self.lock:
            return next((build for build in self.builds if build.active), None)

    def ready(self) -> list[Any]:
        with self.lock:
            return [build for build in self.builds if build.state == "ready"]

    def find_build(self, number: Any) -> Any:
        with self.lock:
            return next((b for b in self.builds if b.state == "ready" and str(b.number) == str(number)), None)

    def next_build(self) -> tuple[int, Path]:
        """Number and folder for the next build: the last one's when it never finished (so Run after Cancel
        resumes it), else a new folder, so that a later Run never overwrites a finished avatar."""
        with self.lock:
            last = self.builds[-1] if self.builds else None
            if last is not None and last.state in ("stopped", "failed"):
                self.builds.pop()
                return last.number, last.folder
            number = last.number + 1 if last is not None else 1
            return number, self.folder / "builds" / f"{number:03d}"

    def output_path(self, stem: str, suffix: str) -> Path:
        """A fresh file name per export, so a download link handed out earlier never changes under the user."""
        out = self.folder / "exports"
        out.mkdir(parents=True, exist_ok=True)
        return out / f"{stem}-{next(self._counter):03d}{suffix}"


def process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (Linux), so that a recycled pid is not taken for the old process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner_alive(root: Path) -> bool:
    try:
        owner = json.loads((root / OWNER_FILE).read_text())
        pid = int(owner["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return time.time() - root.stat().st_mtime < UNOWNED_GRACE_S
        except OSError:
            return False
    if pid == os.getpid():
        return False  # a previous process with our pid (a container restart): we have not written ours yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    start = process_start(pid)
    return start is None or owner.get("start") in (None, start)


def sweep_stale_roots(parent: Path) -> list[Path]:
    """Remove the roots of app processes that are gone (killed, crashed, or a host restart); returns them."""
    removed = []
    for root in sorted(parent.glob(ROOT_PREFIX + "*")):
        if root.is_dir() and not _owner_alive(root):
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root)
    return removed


class SessionRoot:
    """Creates, finds, expires and removes session folders under this process's root."""

    def __init__(self, parent: str | Path | None = None, ttl_s: float = 24 * 3600,
                 clock: Callable[[], float] = time.time):
        parent = Path(parent) if parent else Path(tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        self.swept = sweep_stale_roots(parent)
        self.root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX, dir=parent))
        (self.root / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "start": process_start(os.getpid())}))
        self.sessions_dir = self.root / "sessions"
        self.cache_dir = self.root / "cache"
        self.sessions_dir.mkdir()
        self.cache_dir.mkdir()
        self.ttl_s = ttl_s
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        atexit.register(self.close_all)

    def open(self, key: str | None = None) -> Session:
        """The live session for `key` (a browser token or "api:<hash>"), touched; else a new one with a new
        token. An unknown or expired token never names a folder: it just gets a fresh session."""
        with self._lock:
            session = self._sessions.get(key) if key else None
            if session is not None and not session.closed:
                session.last_seen = self.clock()
                return session
            session_id = uuid.uuid4().hex
            folder = self.sessions_dir / session_id
            folder.mkdir(parents=True)
            key = key if key and key.startswith("api:") else secrets.token_urlsafe(32)
            session = Session(id=session_id, key=key, folder=folder, last_seen=self.clock())
            self._sessions[key] = session
            return session

    def find(self, key: str) -> Session | None:
        return self._sessions.get(key)

    def touch(self, session: Session) -> None:
        session.last_seen = self.clock()

    def __len__(self) -> int:
        return len(self._sessions)

    def close(self, session: Session | None) -> None:
        if session is None:
            return
        with self._lock:
            self._sessions.pop(session.key, None)
        session.closed = True
        # A run still writing into the folder stops at its next cancel check; then the folder goes.
        for build in list(session.builds):
            build.cancel.cancel()
        shutil.rmtree(session.folder, ignore_errors=True)

    def sweep(self, orphan_s: float) -> list[Session]:
        """Close sessions idle for longer than ttl_s, and cancel builds nobody has watched for orphan_s
        (their page is gone: a closed tab or a killed client). Returns the sessions closed."""
        now = self.clock()
        closed = []
        for session in list(self._sessions.values()):
            for build in list(session.builds):
                if build.active and now - build.watched_at > orphan_s:
                    build.cancel.cancel()
            if session.running() is None and not session.calls and now - session.last_seen > self.ttl_s:
                self.close(session)
                closed.append(session)
        return closed

    def start_sweeper(self, interval_s: float, orphan_s: float) -> threading.Thread:
        def loop() -> None:
            while not self._stop.wait(interval_s):
                self.sweep(orphan_s)

        thread = threading.Thread(target=loop, name="perse-sweeper", daemon=True)
        thread.start()
        return thread

    def close_all(self) -> None:
        self._stop.set()
        for session in list(self._sessions.values()):
            self.close(session)
        shutil.rmtree(self.root, ignore_errors=True)
