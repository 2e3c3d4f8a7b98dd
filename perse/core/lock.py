"""One writer per run folder.

`<run>/.lock` names its holder (pid, host, command, start time) and is held with an exclusive
`flock`: the kernel releases it when the holder's process ends in any way (a crash or `kill -9`
included), so a dead holder's lock is stale by construction and the next writer simply takes it.
A second writer while the holder lives gets a RunBusy error naming it.
"""
from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from perse.core.io import storage_error
from perse.core.paths import RunPaths
from perse.errors import PerseError


class RunBusy(PerseError):
    """Another live process is writing this run folder."""


def describe_holder(run: Path, holder: dict[str, Any]) -> str:
    if not holder.get("pid"):
        return f"{run} is being written by another process; wait for it to finish, then re-run"
    where = "" if holder.get("host") == socket.gethostname() else f" on {holder.get('host')}"
    return (f"{run} is being written by pid {holder['pid']}{where} ({holder.get('command', '?')}, started "
            f"{holder.get('started', '?')}); wait for it to finish, or stop it (Ctrl-C in its terminal, or "
            f"`kill {holder['pid']}`) and re-run; a crashed writer releases the folder by itself")


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _acquire(run: Path, command: str) -> int:
    path = RunPaths(run).lock
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error(path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunBusy(describe_holder(run, holder)) from None
        # A holder releasing unlinks the file while still locking it: if we locked that unlinked file,
        # nobody else sees our lock, so start again on the file now at the path.
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
              "argv": shlex.join(sys.argv)[:300], "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
    except OSError as exc:
        _release(path, fd)
        raise storage_error(path, exc) from exc
    return fd


def _release(path: Path, fd: int) -> None:
    # Unlinked while still held, so that a writer that opened it meanwhile sees a stale inode and retries.
    path.unlink(missing_ok=True)
    os.close(fd)


@contextmanager
def run_lock(run: Path | str, command: str, create: bool = True) -> Iterator[None]:
    """Hold `<run>/.lock` for the block (creating the folder unless `create` is False, for commands
    that need an existing run); RunBusy if a live process holds it."""
    run = Path(run)
    if run.exists() and not run.is_dir():
        raise PerseError(f"{run} is a file, not a run folder; choose another folder")
    if not create and not run.is_dir():
        raise PerseError(f"{run}: no such run folder; check the path (`perse run` or `perse ingest` creates one)")
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(run, exc) from exc
    fd = _acquire(run, command)
    try:
        yield
    finally:
        _release(RunPaths(run).lock, fd)
