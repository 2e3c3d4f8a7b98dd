""".splat export: 32 bytes a Gaussian, read back within its quantization, most visible first."""
from __future__ import annotations

import pytest
import torch

from perse.core.gaussians import Gaussians
from perse.errors import PerseError
from perse.export.splat import read_splat, write_splat


def _gaussians(n: int = 500) -> Gaussians:
    generator = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    return Gaussians(means=rand(n, 3) * 2 - 1, quats=torch.randn(n, 4, generator=generator) * 3,
                     scales=rand(n, 3) * 0.05 + 1e-3, opacities=rand(n), colors=rand(n, 3))


def _rotation(quats: torch.Tensor) -> torch.Tensor:
    """q and -q are the same rotation: compare with the first component made non-negative."""
    q = quats / quats.norm(dim=-1, keepdim=True)
    return q * torch.where(q[:, :1] < 0, -1.0, 1.0)


def test_splat_round_trip_within_quantization(tmp_path):
    g = _gaussians()
    path = write_splat(tmp_path / "look.splat", g)
    assert path.stat().st_size == 32 * len(g)
    back = read_splat(path)
    # Written most visible first: match each record to its source by position (float32, exact).
    order = torch.cdist(back.means, g.means).argmin(dim=1)
    assert sorted(order.tolist()) == list(range(len(g)))
    src = g.select(order)
    torch.testing.assert_close(back.means, src.means)
    torch.testing.assert_close(back.scales, src.scales)
    assert (back.colors - src.colors).abs().max() <= 0.5 / 255 + 1e-6
    assert (back.opacities - src.opacities).abs().max() <= 0.5 / 255 + 1e-6
    # Each component is rounded to 1/128 (and 1.0 saturates at 255/128 - 1).
    assert (_rotation(back.quats) - _rotation(src.quats)).abs().max() <= 1.0 / 128 + 1e-6
    importance = src.opacities * src.scales.prod(dim=-1)
    assert torch.all(importance[:-1] >= importance[1:])


def test_splat_keeps_the_most_visible_and_refuses_a_truncated_file(tmp_path):
    g = _gaussians()
    kept = read_splat(write_splat(tmp_path / "light.splat", g, max_gaussians=100))
    assert len(kept) == 100
    importance = g.opacities * g.scales.prod(dim=-1)
    assert kept.means.tolist() == g.means[torch.argsort(importance, descending=True)[:100]].tolist()
    broken = tmp_path / "broken.splat"
    broken.write_bytes((tmp_path / "light.splat").read_bytes()[:-5])
    with pytest.raises(PerseError, match="not a whole number of 32-byte"):
        read_splat(broken)
