"""The standard 3DGS .ply round-trips and is capped by opacity."""
from __future__ import annotations

import pytest
import torch

from perse.core.gaussians import Gaussians
from perse.core.ply import FIELDS, read_ply, write_ply
from perse.errors import PerseError


def random_gaussians(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    quats = torch.randn(n, 4, generator=g)
    return Gaussians(torch.randn(n, 3, generator=g), quats / quats.norm(dim=1, keepdim=True),
                     torch.rand(n, 3, generator=g) * 0.05 + 1e-3, torch.rand(n, generator=g) * 0.98 + 0.01,
                     torch.rand(n, 3, generator=g))


def test_ply_round_trip(tmp_path):
    from plyfile import PlyData

    g = random_gaussians()
    path = write_ply(tmp_path / "a.ply", g)
    names = PlyData.read(str(path))["vertex"].data.dtype.names
    assert tuple(names) == FIELDS
    back = read_ply(path)
    for name in ("means", "quats", "scales", "opacities", "colors"):
        torch.testing.assert_close(getattr(back, name), getattr(g, name), rtol=1e-5, atol=1e-6, msg=name)


def test_ply_keeps_the_most_opaque_when_capped(tmp_path):
    g = random_gaussians()
    back = read_ply(write_ply(tmp_path / "small.ply", g, max_gaussians=50))
    assert len(back) == 50
    assert back.opacities.min() >= torch.sort(g.opacities, descending=True).values[49] - 1e-6


def test_not_a_ply_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_text("hello")
    with pytest.raises(PerseError, match="bad.ply"):
        read_ply(bad)
