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
    return array if array.dtype == np.uint8 else np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)


def save_png(path: Path | str, array: np.ndarray) -> None:
    """uint8 or [0, 1] float image (H, W[, C]) -> PNG, atomically."""
    array = to_uint8(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    with atomic_path(path, ".png") as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=1)


def load_png(path: Path | str, gray: bool = False) -> np.ndarray:
    """PNG -> float32 in [0, 1]: (H, W, 3), or (H, W) when gray."""
    with Image.open(path) as image:
        image = image.convert("L" if gray else "RGB")
        return np.asarray(image, dtype=np.float32) / 255.0


def save_npz(path: Path | str, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
