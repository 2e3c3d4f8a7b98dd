"""The standard 3D Gaussian Splatting .ply layout (Kerbl et al. 2023), which common splat viewers open:
x, y, z, nx, ny, nz, f_dc_0..2 (degree-0 spherical harmonics), opacity (logit), scale_0..2 (log),
rot_0..3 (quaternion wxyz). Our Gaussians carry plain RGB, so colour = 0.5 + SH_C0 * f_dc."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from perse.core.gaussians import Gaussians
from perse.core.io import atomic_path
from perse.errors import PerseError

SH_C0 = 0.28209479177387814
FIELDS = ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
          "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")


def _logit(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 1e-6, 1 - 1e-6)
    return np.log(x / (1 - x))


def write_ply(path: Path | str, gaussians: Gaussians, max_gaussians: int | None = None) -> Path:
    """Write Gaussians (any device, detached or not) to a binary 3DGS .ply, atomically.

    With `max_gaussians`, keeps the most opaque ones (lighter files for web viewers)."""
    from plyfile import PlyData, PlyElement

    g = gaussians.detach().to("cpu")
    if max_gaussians is not None and len(g) > max_gaussians:
        g = g.select(torch.argsort(g.opacities, descending=True)[:max_gaussians])
    quats = g.quats / g.quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    columns = [g.means.numpy(), np.zeros((len(g), 3), np.float32), ((g.colors.numpy() - 0.5) / SH_C0),
               _logit(g.opacities.numpy())[:, None], np.log(np.maximum(g.scales.numpy(), 1e-12)), quats.numpy()]
    data = np.concatenate(columns, axis=1).astype(np.float32)
    records = np.empty(len(g), dtype=[(name, "f4") for name in FIELDS])
    for i, name in enumerate(FIELDS):
        records[name] = data[:, i]
    path = Path(path)
    with atomic_path(path, ".ply") as tmp:
        PlyData([PlyElement.describe(records, "vertex")]).write(str(tmp))
    return path


def read_ply(path: Path | str) -> Gaussians:
    """Read a 3DGS .ply (ours or another tool's; higher SH bands are ignored) back into Gaussians."""
    from plyfile import PlyData, PlyParseError

    try:
        vertex = PlyData.read(str(path))["vertex"]
    except (OSError, KeyError, ValueError, PlyParseError) as exc:
        raise PerseError(f"{path}: not a readable Gaussian-splat .ply ({exc})") from exc
    missing = [name for name in FIELDS[:3] + FIELDS[6:] if name not in vertex.data.dtype.names]
    if missing:
        raise PerseError(f"{path}: missing 3DGS fields {missing}; expected {', '.join(FIELDS)}")
    column = lambda *names: torch.tensor(np.stack([vertex[n] for n in names], 1), dtype=torch.float32)  # noqa: E731
    return Gaussians(
        means=column("x", "y", "z"),
        quats=column("rot_0", "rot_1", "rot_2", "rot_3"),
        scales=torch.exp(column("scale_0", "scale_1", "scale_2")),
        opacities=torch.sigmoid(column("opacity")[:, 0]),
        colors=(0.5 + SH_C0 * column("f_dc_0", "f_dc_1", "f_dc_2")).clamp(0, 1),
    )
