"""The app's storage: one folder per visitor, found again by its token, kept for the grace period,
swept when it expires, when the process ends and at the next start-up."""
import json
import os
import pickle
import subprocess
import sys
import threading
import time

import pytest
from appfakes import install

from perse.app.builds import Build
from perse.app.progress import CPU_WEIGHTS
from perse.app.session import FileCancelToken, SessionRoot, process_start
from perse.config import build_config
from perse.errors import Cancelled


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


def _finished(build, timeout=20.0):
    deadline = time.monotonic() + timeout
    while build.active and time.monotonic() < deadline:
        build.wait(build.version, 0.1)
    return not build.active


def test_a_token_finds_its_session_again_and_nothing_else(tmp_path):
    root = SessionRoot(tmp_path)
    a, b = root.open(None), root.open(None)
    assert a.folder != b.folder and a.key != b.key and len(a.key) >= 32
    assert root.open(a.key) is a, "a reload with the browser's token reattaches"
    assert a.folder.parent == b.folder.parent == root.sessions_dir
    stranger = root.open("../../escape")
    assert stranger not in (a, b) and stranger.key != "../../escape", "an unknown token gets a new session"
    assert stranger.folder.parent == root.sessions_dir and not (tmp_path / "escape").exists()
    api = root.open("api:hash-1")
    assert root.open("api:hash-1") is api and api.key == "api:hash-1"


def test_idle_sessions_expire_after_the_grace_period(tmp_path, clock):
    root = SessionRoot(tmp_path, ttl_s=3600, clock=clock)
    kept, idle = root.open(None), root.open(None)
    (idle.folder / "builds" / "001").mkdir(parents=True)
    clock.now += 3000
    root.touch(kept)
    assert root.sweep(orphan_s=60) == [] and idle.folder.exists()
    clock.now += 700
    with idle.in_use():  # a long export under way
        assert root.sweep(orphan_s=60) == []
    assert root.sweep(orphan_s=60) == [idle]
    assert not idle.folder.exists() and root.find(idle.key) is None and idle.closed
    assert kept.folder.exists() and root.open(kept.key) is kept
    assert root.open(idle.key) is not idle, "an expired token starts over"


def test_a_build_nobody_watches_is_cancelled_and_its_session_then_expires(tmp_path, clock, monkeypatch):
    fake = install(monkeypatch)
    fake.gate.clear()  # the build runs until something stops it
    root = SessionRoot(tmp_path, ttl_s=100, clock=clock)
    session = root.open(None)
    config = build_config("tiny", overrides=["device=cpu", "synth.categories=hair"])
    build = Build(1, session.folder / "builds" / "001", str(tmp_path / "me.png"), config, weights=CPU_WEIGHTS,
                  clock=clock)
    session.builds.append(build)
    build.start(threading.BoundedSemaphore(1), on_avatar=lambda b: None, on_end=lambda b: None)
    assert fake.started.wait(10)
    clock.now += 1000
    build.watched_at = clock.now - 30  # watched half a minute ago: the page may be reloading
    assert root.sweep(orphan_s=60) == [] and not build.cancel.cancelled
    assert session.folder.exists(), "a running build keeps its session"
    build.watched_at = clock.now - 61
    root.sweep(orphan_s=60)
    assert build.cancel.cancelled and _finished(build) and build.state == "stopped"
    assert "/" not in build.outcome and "perse " not in build.outcome, "no server path, no CLI command"
    assert root.sweep(orphan_s=60) == [session] and not session.folder.exists()


def test_start_up_sweeps_the_roots_of_processes_that_are_gone(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    stale = tmp_path / "perse-studio-old"
    (stale / "sessions" / "abc").mkdir(parents=True)
    (stale / "owner.json").write_text(json.dumps({"pid": int(dead.stdout), "start": None}))
    live = tmp_path / "perse-studio-live"  # another app process, still running, shares the parent
    (live / "sessions" / "keep").mkdir(parents=True)
    (live / "owner.json").write_text(json.dumps({"pid": os.getppid(), "start": process_start(os.getppid())}))
    unrelated = tmp_path / "photos"
    unrelated.mkdir()
    root = SessionRoot(tmp_path)
    assert root.swept == [stale] and not stale.exists()
    assert live.exists() and unrelated.exists()
    assert json.loads((root.root / "owner.json").read_text())["pid"] > 0


def test_close_all_removes_the_whole_root_with_gradios_cache(tmp_path):
    root = SessionRoot(tmp_path)
    session = root.open(None)
    (root.cache_dir / "0123" / "upload.png").parent.mkdir()
    (root.cache_dir / "0123" / "upload.png").write_bytes(b"x")
    root.close_all()
    assert not root.root.exists() and not session.folder.exists() and list(tmp_path.iterdir()) == []


def test_output_paths_never_repeat(tmp_path):
    session = SessionRoot(tmp_path).open(None)
    paths = {session.output_path("clip", ".gif") for _ in range(5)}
    assert len(paths) == 5 and all(p.parent == session.folder / "exports" for p in paths)


def test_file_cancel_token_crosses_process_boundaries(tmp_path):
    token = FileCancelToken(tmp_path / "cancel.flag")
    token.check()  # not cancelled: no exception
    # What a forked ZeroGPU worker receives: a pickled copy that shares only the flag file.
    remote = pickle.loads(pickle.dumps(token))
    assert not remote.cancelled
    token.cancel()
    assert remote.cancelled
    with pytest.raises(Cancelled):
        remote.check()
    token.reset()
    assert not token.cancelled and not pickle.loads(pickle.dumps(token)).cancelled
