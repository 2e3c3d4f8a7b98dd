"""The `.splat` format of antimatter15/splat, which most web splat viewers open: 32 bytes a Gaussian,
position float32 x3, scale float32 x3 (standard deviations, not log), RGBA uint8 x4 (alpha = opacity),
rotation uint8 x4 (wxyz, each q * 128 + 128), no header. Viewers stream the file and draw what has
arrived, so the Gaussians are written most visible first (opacity times ellipsoid volume, as
antimatter15's own converter orders them)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from perse.core.gaussians import Gaussians
from perse.core.io import atomic_write_bytes
from perse.errors import PerseError

RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rotation", "u1", 4)])
assert RECORD.itemsize == 32


def _to_byte(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def splat_records(gaussians: Gaussians, max_gaussians: int | None = None) -> np.ndarray:
    """Gaussians -> structured array of RECORD, most visible first (at most `max_gaussians` of them)."""
    g = gaussians.detach().to("cpu").map(lambda t: t.float())
    importance = g.opacities * g.scales.prod(dim=-1)
    order = torch.argsort(importance, descending=True, stable=True)
    if max_gaussians is not None:
        order = order[:max_gaussians]
    g = g.select(order)
    quats = g.quats / g.quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    records = np.empty(len(g), dtype=RECORD)
    records["position"] = g.means.numpy()
    records["scale"] = g.scales.numpy()
    records["rgba"] = _to_byte(torch.cat([g.colors, g.opacities[:, None]], dim=1).numpy() * 255)
    records["rotation"] = _to_byte(quats.numpy() * 128 + 128)
    return records


def write_splat(path: Path | str, gaussians: Gaussians, max_gaussians: int | None = None) -> Path:
    """Write Gaussians (any device) to a .splat file, atomically; see the module docstring for the layout."""
    path = Path(path)
    records = splat_records(gaussians, max_gaussians)
    atomic_write_bytes(path, records.tobytes())
    return path


def read_splat(path: Path | str) -> Gaussians:
    """Read a .splat file back (ours or another tool's) into Gaussians."""
    data = Path(path).read_bytes()
    if len(data) % RECORD.itemsize:
        raise PerseError(f"{path}: {len(data)} bytes is not a whole number of 32-byte .splat records; the file "
                         "is truncated or not a .splat")
    records = np.frombuffer(data, dtype=RECORD)
    rgba = torch.tensor(records["rgba"], dtype=torch.float32) / 255
    return Gaussians(
        means=torch.tensor(records["position"]),
        quats=(torch.tensor(records["rotation"], dtype=torch.float32) - 128) / 128,
        scales=torch.tensor(records["scale"]),
        opacities=rgba[:, 3],
        colors=rgba[:, :3],
    )
