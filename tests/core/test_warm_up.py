"""warm_up: a server's start-up render through gsplat on a GPU, and nothing at all on a CPU."""
import pytest
import torch

from perse.core import render as render_module
from perse.core.render import warm_up


def spy_on_render(monkeypatch) -> list:
    """(Gaussians, result) of every render call, the real renderer still doing the work."""
    calls = []
    real = render_module.render

    def spy(gaussians, *args, **kwargs):
        calls.append((gaussians, real(gaussians, *args, **kwargs)))
        return calls[-1][1]

    monkeypatch.setattr(render_module, "render", spy)
    return calls


def test_warm_up_does_nothing_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    calls = spy_on_render(monkeypatch)
    monkeypatch.setattr(render_module, "load_gsplat", lambda: pytest.fail("warm_up loaded gsplat without CUDA"))
    assert warm_up() is None
    assert calls == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_warm_up_renders_through_gsplat_with_gradients(monkeypatch):
    calls = spy_on_render(monkeypatch)
    seconds = warm_up()
    assert isinstance(seconds, float) and seconds > 0
    from gsplat.cuda._backend import _C

    assert _C is not None
    ((scene, result),) = calls
    assert result.rgb.is_cuda and result.rgb.shape == (64, 64, 3)
    assert torch.isfinite(result.rgb).all()
    # The scene covers a visible part of the frame, and the gradients reached every Gaussian field.
    assert 0.05 < float((result.alpha > 0.5).float().mean()) < 0.95
    for name in ("means", "quats", "scales", "opacities", "colors"):
        grad = getattr(scene, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
