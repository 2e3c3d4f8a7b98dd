"""CPU renderer sanity: geometry, compositing order, background, batching and gradients."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perse.core.camera import Camera, project
from perse.core.gaussians import Gaussians
from perse.core.render import render, render_batch, stack_gaussians
from perse.errors import PerseError


def one(mean, color=(1.0, 0.5, 0.25), scale=0.02, opacity=0.9):
    return Gaussians(torch.tensor([mean], dtype=torch.float32), torch.tensor([[1.0, 0, 0, 0]]),
                     torch.full((1, 3), scale), torch.tensor([opacity]), torch.tensor([color]))


@pytest.mark.parametrize("yaw,pitch,mean", [(0, 0, (0.0, 0.0, 0.0)), (20, -10, (0.3, -0.2, 0.1)),
                                            (-25, 8, (-0.4, 0.35, 0.3))])
def test_single_gaussian_lands_where_the_camera_projects_it(yaw, pitch, mean):
    camera = Camera.frontal(64, 14.0, yaw_deg=yaw, pitch_deg=pitch)
    out = render(one(mean, scale=0.1), camera, return_depth=True)
    expected = project(np.array([mean]), camera.viewmat, camera.K)[0]
    alpha = out.alpha.numpy()
    # Alpha-weighted centroid of the splat = the projected mean (pixel centres at +0.5).
    ys, xs = np.mgrid[0:64, 0:64] + 0.5
    centroid = np.array([(alpha * xs).sum(), (alpha * ys).sum()]) / alpha.sum()
    np.testing.assert_allclose(centroid, expected[:2], atol=0.05)
    peak = np.unravel_index(alpha.argmax(), alpha.shape)
    assert alpha.max() == pytest.approx(0.9, abs=0.05)
    assert float(out.depth[peak]) == pytest.approx(expected[2], rel=1e-5)
    np.testing.assert_allclose(out.rgb.numpy()[peak], np.array([1.0, 0.5, 0.25]) * alpha.max(), atol=1e-5)


def test_front_gaussian_occludes_and_background_fills_the_rest():
    camera = Camera.frontal(32, 14.0)
    front, back = one((0, 0, -0.2), (1, 0, 0), 0.3, 0.99), one((0, 0, 0.3), (0, 0, 1), 0.3, 0.99)
    # Given back-to-front, the renderer still sorts by depth.
    scene = Gaussians(*(torch.cat([b, f]) for b, f in zip(back.tensors(), front.tensors())))
    out = render(scene, camera, background=(0.0, 1.0, 0.0))
    centre = out.rgb[16, 16].numpy()
    assert centre[0] > 0.95 and centre[2] < 0.02
    np.testing.assert_allclose(out.rgb[0, 0].numpy(), [0, 1, 0], atol=1e-6)


def test_batch_matches_single_renders():
    cameras = [Camera.frontal(40, 14.0, yaw_deg=y) for y in (-15, 0, 15)]
    g = torch.Generator().manual_seed(0)
    scenes = [Gaussians(torch.randn(300, 3, generator=g) * 0.3, torch.randn(300, 4, generator=g),
                        torch.rand(300, 3, generator=g) * 0.05 + 0.005, torch.rand(300, generator=g),
                        torch.rand(300, 3, generator=g)) for _ in cameras]
    batch = render_batch(stack_gaussians(scenes), torch.tensor(np.stack([c.viewmat for c in cameras])).float(),
                         torch.tensor(cameras[0].K).float(), 40, 40)
    for i, (scene, camera) in enumerate(zip(scenes, cameras)):
        single = render(scene, camera)
        torch.testing.assert_close(batch.rgb[i], single.rgb, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batch.alpha[i], single.alpha, atol=1e-5, rtol=1e-5)


def test_gradients_match_finite_differences():
    camera = Camera.frontal(24, 14.0, yaw_deg=10)
    g = torch.Generator().manual_seed(1)
    base = [torch.randn(20, 3, generator=g).double() * 0.2, torch.randn(20, 4, generator=g).double(),
            (torch.rand(20, 3, generator=g).double() * 0.04 + 0.03), torch.rand(20, generator=g).double() * 0.6,
            torch.rand(20, 3, generator=g).double()]
    weights = torch.rand(24, 24, 3, generator=g).double()

    def loss(*tensors):
        return (render(Gaussians(*tensors), camera).rgb * weights).sum()

    params = [t.clone().requires_grad_(True) for t in base]
    loss(*params).backward()
    for k, name in ((0, "means"), (2, "scales"), (3, "opacities"), (4, "colors")):
        for index in [(3, 0), (7, 1)] if base[k].dim() == 2 else [(3,), (7,)]:
            eps = 1e-6
            plus = [t.clone() for t in base]
            minus = [t.clone() for t in base]
            plus[k][index] += eps
            minus[k][index] -= eps
            numeric = (loss(*plus) - loss(*minus)) / (2 * eps)
            assert float(params[k].grad[index]) == pytest.approx(float(numeric), rel=1e-3, abs=1e-6), name


def test_bad_background_is_a_clear_error():
    with pytest.raises(PerseError, match="background must be 3 values"):
        render(one((0, 0, 0)), Camera.frontal(16, 14.0), background=(1, 0))


@pytest.mark.parametrize("n,z", [(0, 0.0), (5, -20.0)])
def test_empty_or_unseen_scene_renders_the_background(n, z):
    scene = Gaussians(torch.zeros(n, 3) + torch.tensor([0.0, 0.0, z]), torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                      torch.full((n, 3), 0.05), torch.full((n,), 0.9), torch.rand(n, 3))
    out = render(scene, Camera.frontal(16, 14.0), (0.2, 0.4, 0.6), return_depth=True)
    assert float(out.alpha.abs().max()) == 0.0 and float(out.depth.abs().max()) == 0.0
    torch.testing.assert_close(out.rgb, torch.tensor([0.2, 0.4, 0.6]).expand(16, 16, 3))
