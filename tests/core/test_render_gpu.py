"""The CUDA backend (gsplat) and the torch compositor agree on random scenes, images and gradients."""
import json
import os

import pytest
import torch

from perse.core.camera import Camera, head_pose_viewmat, intrinsics
from perse.core.gaussians import Gaussians
from perse.core.render import render

pytestmark = pytest.mark.gpu


def random_scene(n: int, seed: int) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g) * torch.tensor([1.6, 1.6, 0.8]) - torch.tensor([0.8, 0.8, 0.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.rand(n, 3, generator=g) * 2.5 - 5.0)
    opacities = torch.rand(n, generator=g) * 0.9 + 0.05
    colors = torch.rand(n, 3, generator=g)
    return Gaussians(*(t.cuda().requires_grad_(True) for t in (means, quats, scales, opacities, colors)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gsplat_and_torch_agree(seed):
    size = 96
    camera = Camera(intrinsics(size, 14.0), head_pose_viewmat(14.0, yaw_deg=10.0 * seed, pitch_deg=-5.0), size, size)
    report = {}
    results = {}
    for backend in ("gsplat", "torch"):
        scene = random_scene(3000, seed)
        out = render(scene, camera, (0.2, 0.3, 0.4), return_depth=True, backend=backend)
        weights = torch.linspace(0, 1, size * size * 3, device="cuda").reshape(size, size, 3)
        ((out.rgb * weights).sum() + out.alpha.sum()).backward()
        results[backend] = (out, {name: getattr(scene, name).grad for name in
                                  ("means", "quats", "scales", "opacities", "colors")})
    (a, grads_a), (b, grads_b) = results["gsplat"], results["torch"]
    report["rgb_max_abs"] = float((a.rgb - b.rgb).abs().max().detach())
    report["alpha_max_abs"] = float((a.alpha - b.alpha).abs().max())
    covered = (a.alpha > 0.5) & (b.alpha > 0.5)
    report["depth_max_rel"] = float(((a.depth - b.depth).abs() / b.depth.clamp_min(1e-6))[covered].max())
    for name in grads_a:
        ga, gb = grads_a[name].flatten(), grads_b[name].flatten()
        report[f"grad_{name}_cosine"] = float(torch.nn.functional.cosine_similarity(ga, gb, dim=0))
        report[f"grad_{name}_rel_err"] = float((ga - gb).norm() / gb.norm().clamp_min(1e-12))
    print(json.dumps(report))
    if os.environ.get("PERSE_REPORT_DIR"):
        with open(os.path.join(os.environ["PERSE_REPORT_DIR"], f"render_agreement_{seed}.json"), "w") as f:
            json.dump(report, f, indent=1)
    assert report["rgb_max_abs"] < 2e-3 and report["alpha_max_abs"] < 2e-3
    assert report["depth_max_rel"] < 1e-3
    for name in grads_a:
        assert report[f"grad_{name}_cosine"] > 0.999, name
        assert report[f"grad_{name}_rel_err"] < 0.03, name
