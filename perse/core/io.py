"""File I/O every stage shares: atomic writes (temporary file in the target folder, then rename, so a
crash or a full disk never leaves a half-written file under the real name), PNG and NPZ.

A write that the storage refuses (full disk, read-only file system, no permission, a folder in the way)
raises a PerseError naming the file and what to do, after removing the temporary file."""
from __future__ import annotations

import errno
import io
import json
import os
import tempfile
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from perse.errors import PerseError

# What the user can do about each way storage refuses a write.
STORAGE_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space or write elsewhere, then retry",
    errno.EDQUOT: "the disk quota is used up; free some space or write elsewhere, then retry",
    errno.EFBIG: "the file is too large for this file system; write elsewhere",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.EACCES: "permission denied; choose a folder you can write to, or fix its permissions",
    errno.EPERM: "permission denied; choose a folder you can write to, or fix its permissions",
    errno.EISDIR: "a folder has that name; give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.ENOENT: "its folder does not exist; create it or choose another path",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
}


# The errors that mean the storage refused a write, whatever was being written.
WRITE_REFUSED = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


def storage_error(path: Path | str, exc: OSError) -> PerseError:
    advice = STORAGE_ADVICE.get(exc.errno, "check the path and the disk")
    return PerseError(f"{path}: cannot write it ({exc.strerror or exc}); {advice}")


@contextmanager
def atomic_path(path: Path | str, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` when the block succeeds and is removed
    when it fails. `suffix` keeps the extension writers that pick a format by name need."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or "")
        os.close(fd)
    except OSError as exc:
        raise storage_error(path, exc) from exc
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        # Only errors about this file are storage errors: a writer may also fail reading something else.
        if isinstance(exc, OSError) and exc.errno in STORAGE_ADVICE and exc.filename in (None, tmp, str(path)):
            raise storage_error(path, exc) from exc
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: Path | str, data: Any) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())


def to_uint8(array: np.ndarray) -> np.ndarray:
    """uint8 unchanged; float [0, 1] rounded to uint8."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    # One scratch array, rounded and clipped in place: a 512 px frame is converted ~2,000 times a run.
    scaled = array * 255.0
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


class WrittenImages:
    """PNGs this process wrote, kept decoded (uint8, least recently used dropped past `budget_bytes`).

    A run's later stages read back what synthesis wrote: ~2,000 PNGs at `fast`, whose decoding was a
    fifth of training's time and a third of the metrics'. An entry is served only while the file on
    disk is the one written (same size and modification time), so a file changed or replaced since is
    read from disk."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[str, tuple[tuple[int, int], np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def _stamp(path: str) -> tuple[int, int] | None:
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def put(self, path: Path | str, array: np.ndarray) -> None:
        key = os.path.realpath(path)
        stamp = self._stamp(key)
        if stamp is None or array.nbytes > self.budget_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += array.nbytes - (old[1].nbytes if old else 0)
            self._items[key] = (stamp, array)
            while self._bytes > self.budget_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped.nbytes

    def get(self, path: Path | str) -> np.ndarray | None:
        key = os.path.realpath(path)
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
        if item is None or self._stamp(key) != item[0]:
            return None
        return item[1]


# The cache of the runs under way in this process (None when none is): shared by their threads.
_written: WrittenImages | None = None
_written_users = 0
_written_lock = threading.Lock()
WRITTEN_IMAGES_ENV = "PERSE_IMAGE_CACHE_MB"
WRITTEN_IMAGES_MB = 2048


@contextmanager
def keep_written_images() -> Iterator[None]:
    """While inside, PNGs written by save_png are served decoded to load_png (see WrittenImages); the
    memory goes when the last user leaves. Budget: PERSE_IMAGE_CACHE_MB (0 turns it off)."""
    global _written, _written_users
    megabytes = float(os.environ.get(WRITTEN_IMAGES_ENV) or WRITTEN_IMAGES_MB)
    with _written_lock:
        _written_users += 1
        if _written is None and megabytes > 0:
            _written = WrittenImages(int(megabytes * 1e6))
    try:
        yield
    finally:
        with _written_lock:
            _written_users -= 1
            if _written_users == 0:
                _written = None


def save_png(path: Path | str, array: np.ndarray) -> None:
    """uint8 or [0, 1] float image (H, W[, C]) -> PNG, atomically."""
    array = to_uint8(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    with atomic_path(path, ".png") as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=1)
    cache = _written
    if cache is not None and (array.ndim == 2 or array.shape[2] == 3):
        cache.put(path, np.array(array))  # a copy: the caller may reuse its buffer


def load_png(path: Path | str, gray: bool = False) -> np.ndarray:
    """PNG -> float32 in [0, 1]: (H, W, 3), or (H, W) when gray."""
    cache = _written
    kept = cache.get(path) if cache is not None else None
    if kept is not None and (kept.ndim == 2) == gray:
        return kept.astype(np.float32) / 255.0
    with Image.open(path) as image:
        image = image.convert("L" if gray else "RGB")
        return np.asarray(image, dtype=np.float32) / 255.0


def save_npz(path: Path | str, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
