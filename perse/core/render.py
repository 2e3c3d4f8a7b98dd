"""Differentiable rendering of 3D Gaussians: one entry point, two backends.

On CUDA tensors `render` calls gsplat's fused rasterizer. On CPU (and when asked, on CUDA, to compare)
it uses the pure-torch compositor below, which mirrors gsplat 1.5's conventions so both give the same
image: EWA projection with a 0.3 px^2 low-pass (`eps2d`), an opacity-aware 3.33 sigma footprint,
per-pair alpha = min(0.999, opacity * exp(-d^2 / 2)) with pairs below 1/255 skipped, pixel centres at
+0.5, and front-to-back compositing that stops before transmittance falls to 1e-4.

The torch compositor is fully vectorised: every (Gaussian, pixel) pair inside a footprint becomes one
row, rows are sorted by (pixel, depth), and each pixel's transmittance is a segmented exclusive cumsum
of log(1 - alpha), so autograd differentiates the whole thing with no Python loop over pixels.
"""
from __future__ import annotations

import importlib.util
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from perse.core.camera import Camera
from perse.core.gaussians import Gaussians
from perse.core.registry import Registry
from perse.errors import PerseError

EPS2D = 0.3
NEAR_PLANE = 0.01
ALPHA_MAX = 0.999
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4
# Footprint in standard deviations: where alpha of an opacity-1 Gaussian drops to 1/255.
MAX_EXTENT = 3.33


@dataclass
class RenderResult:
    rgb: torch.Tensor  # (H, W, 3), or (B, H, W, 3) from render_batch
    alpha: torch.Tensor  # (H, W), or (B, H, W)
    depth: torch.Tensor | None  # expected camera z where alpha > 0 (0 elsewhere), like alpha's shape


def _background(background, batch: int, device, dtype) -> torch.Tensor:
    if background is None:
        return torch.zeros(batch, 3, device=device, dtype=dtype)
    bg = torch.as_tensor(background, device=device, dtype=dtype)
    if bg.shape == (3,):
        return bg.expand(batch, 3)
    if bg.shape == (batch, 3):
        return bg
    raise PerseError(f"render: background must be 3 values (RGB in [0, 1]) or one per image, got shape "
                     f"{tuple(bg.shape)}")


def render(gaussians: Gaussians, camera: Camera, background=None, *, return_depth: bool = False,
           backend: str = "auto") -> RenderResult:
    """Render world-space Gaussians seen by `camera` into rgb (H, W, 3), alpha (H, W), optional depth.

    `background` is an RGB triple composited under the splats (default black). Differentiable with
    respect to every Gaussian tensor. `backend` names one of RENDERERS; "auto" is gsplat on CUDA
    tensors and torch on CPU.
    """
    device = gaussians.means.device
    dtype = gaussians.means.dtype
    viewmat = torch.as_tensor(camera.viewmat, device=device, dtype=dtype)[None]
    K = torch.as_tensor(camera.K, device=device, dtype=dtype)[None]
    batched = gaussians.map(lambda t: t[None])
    result = render_batch(batched, viewmat, K, camera.width, camera.height, background,
                          return_depth=return_depth, backend=backend)
    return RenderResult(result.rgb[0], result.alpha[0], None if result.depth is None else result.depth[0])


def render_batch(gaussians: Gaussians, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
                 background=None, *, return_depth: bool = False, backend: str = "auto") -> RenderResult:
    """Render B scenes, each seen by its own camera, in one call (training renders several frames).

    `gaussians` holds batched tensors: means (B, N, 3), quats (B, N, 4), scales (B, N, 3),
    opacities (B, N), colors (B, N, 3); `viewmats` (B, 4, 4) world-to-camera; `Ks` (B, 3, 3) or (3, 3).
    Returns rgb (B, H, W, 3), alpha (B, H, W), depth (B, H, W) or None.
    """
    means = gaussians.means
    if means.dim() != 3:
        raise PerseError(f"render_batch: means must be (B, N, 3), got {tuple(means.shape)}; use render() for "
                         "a single scene")
    batch = means.shape[0]
    Ks = Ks.to(means) if Ks.dim() == 3 else Ks.to(means).expand(batch, 3, 3)
    viewmats = viewmats.to(means)
    bg = _background(background, batch, means.device, means.dtype)
    rasterize = RENDERERS.load(backend, means.device.type)
    return rasterize(gaussians, viewmats, Ks, width, height, bg, return_depth)


def render_gsplat(g: Gaussians, viewmats, Ks, width, height, bg, return_depth) -> RenderResult:
    if not g.means.is_cuda:
        raise PerseError("render: the gsplat backend needs CUDA tensors; move the Gaussians to 'cuda' or use "
                         "the torch renderer (avatar.renderer=torch)")
    rasterization = load_gsplat().rasterization
    out, alpha, _ = rasterization(
        *g.tensors(), viewmats[:, None], Ks[:, None], width, height,
        near_plane=NEAR_PLANE, eps2d=EPS2D, render_mode="RGB+ED" if return_depth else "RGB",
    )
    out, alpha = out[:, 0], alpha[:, 0, ..., 0]
    depth = out[..., 3] if return_depth else None
    # Background composited here, as the torch path does (gsplat's own backgrounds argument trips
    # over batched cameras in 1.5.3).
    return RenderResult(out[..., :3] + (1 - alpha[..., None]) * bg[:, None, None, :], alpha, depth)


def load_gsplat():
    """The gsplat package with its CUDA extension loaded. gsplat JIT-builds the extension on first import
    (~80 s); where PERSE_GSPLAT_PREBUILT names one built earlier for the same torch and GPU
    (gsplat_cuda.so), that one is loaded instead."""
    prebuilt = os.environ.get("PERSE_GSPLAT_PREBUILT")
    if prebuilt and "gsplat.csrc" not in sys.modules:
        if not Path(prebuilt).is_file():
            raise PerseError(f"PERSE_GSPLAT_PREBUILT={prebuilt}: no such file; unset it to let gsplat build itself")
        spec = importlib.util.spec_from_file_location("gsplat_cuda", prebuilt)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        # gsplat imports `gsplat.csrc` first and only JIT-builds when that fails.
        sys.modules["gsplat.csrc"] = module
    try:
        import gsplat
        import gsplat.strategy
    except ImportError as exc:
        raise PerseError(f"the CUDA renderer needs gsplat ({exc}); install requirements.txt, or render on CPU") from exc
    return gsplat


def warm_up(size: int = 64, count: int = 256) -> float | None:
    """Render a small random scene through gsplat on the GPU, forward and backward, and return the seconds
    it took; without CUDA, do nothing and return None.

    A server calls it at start so that its first visitor does not pay for what the first CUDA render
    costs: loading gsplat's extension (building it, where no prebuilt one was found), creating the CUDA
    context and the first launch of the rasterizer's kernels and their gradients, which training uses,
    and the first optimizer step (torch imports its compiler stack on the first optimizer: 2 s, an
    eighth of a draft avatar's time).
    """
    if not torch.cuda.is_available():
        return None
    start = time.perf_counter()
    load_gsplat()
    from gsplat.cuda._backend import _C

    if _C is None:
        raise PerseError("gsplat's CUDA extension is not available and could not be built (gsplat needs nvcc, "
                         "a CUDA toolkit, to build it); install one, or render on CPU")
    g = torch.Generator().manual_seed(0)
    # A cloud in front of the frontal camera, each Gaussian a few pixels across and elongated (so that
    # its rotation has a gradient too).
    scene = Gaussians(torch.rand(count, 3, generator=g) - 0.5, torch.randn(count, 4, generator=g),
                      torch.rand(count, 3, generator=g) * 0.06 + 0.02, torch.full((count,), 0.8),
                      torch.rand(count, 3, generator=g))
    scene = scene.map(lambda t: t.cuda().requires_grad_(True))
    result = render(scene, Camera.frontal(size, 14.0), backend="gsplat")
    (result.rgb.sum() + result.alpha.sum()).backward()
    torch.optim.Adam(scene.tensors()).step()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """(..., 4) wxyz quaternions, any norm -> (..., 3, 3) rotation matrices."""
    w, x, y, z = torch.unbind(quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12), dim=-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(quats.shape[:-1] + (3, 3))


def project(g: Gaussians, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int):
    """EWA projection (B, N) -> means2d (B, N, 2), conics (a, b, c) (B, N, 3), depths (B, N),
    radii (B, N, 2) in pixels (0 = culled), matching gsplat's fused projection."""
    R, t = viewmats[:, None, :3, :3], viewmats[:, None, :3, 3]
    mc = (R @ g.means[..., None])[..., 0] + t
    M = quat_to_rotmat(g.quats) * g.scales[..., None, :]
    cov_c = R @ (M @ M.transpose(-1, -2)) @ R.transpose(-1, -2)
    tx, ty, tz = mc.unbind(-1)
    fx, fy = Ks[:, None, 0, 0], Ks[:, None, 1, 1]
    cx, cy = Ks[:, None, 0, 2], Ks[:, None, 1, 2]
    # Like gsplat, the Jacobian is evaluated at a point clamped to 1.3x the view frustum, which keeps
    # off-screen Gaussians from exploding into huge footprints.
    tz_safe = torch.where(tz.abs() > 1e-6, tz, torch.full_like(tz, 1e-6))
    lim_x = 0.3 * 0.5 * width / fx
    lim_y = 0.3 * 0.5 * height / fy
    jx = tz_safe * torch.minimum(torch.maximum(tx / tz_safe, -(cx / fx + lim_x)), (width - cx) / fx + lim_x)
    jy = tz_safe * torch.minimum(torch.maximum(ty / tz_safe, -(cy / fy + lim_y)), (height - cy) / fy + lim_y)
    zero = torch.zeros_like(tz)
    J = torch.stack([fx / tz_safe, zero, -fx * jx / tz_safe ** 2,
                     zero, fy / tz_safe, -fy * jy / tz_safe ** 2], dim=-1).reshape(tz.shape + (2, 3))
    cov2d = J @ cov_c @ J.transpose(-1, -2)
    a = cov2d[..., 0, 0] + EPS2D
    c = cov2d[..., 1, 1] + EPS2D
    b = 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0])
    det = (a * c - b * b).clamp_min(1e-10)
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)
    means2d = torch.stack([fx * tx / tz_safe + cx, fy * ty / tz_safe + cy], dim=-1)
    with torch.no_grad():
        opacity = g.opacities.clamp_min(1e-12)
        extent = torch.sqrt(2.0 * torch.log(opacity / ALPHA_MIN).clamp_min(0.0)).clamp_max(MAX_EXTENT)
        radii = torch.stack([torch.ceil(extent * a.sqrt()), torch.ceil(extent * c.sqrt())], dim=-1)
        mx, my = means2d.unbind(-1)
        valid = ((a * c - b * b) > 0) & (tz > NEAR_PLANE) & (opacity >= ALPHA_MIN)
        valid &= (radii[..., 0] > 0) | (radii[..., 1] > 0)
        valid &= (mx + radii[..., 0] > 0) & (mx - radii[..., 0] < width)
        valid &= (my + radii[..., 1] > 0) & (my - radii[..., 1] < height)
        radii = radii * valid[..., None]
    return means2d, conics, tz, radii


def _pairs(means2d: torch.Tensor, radii: torch.Tensor, width: int, height: int):
    """Every (Gaussian, pixel) pair whose pixel centre lies inside the Gaussian's footprint box.

    Returns flat Gaussian indices into (B*N) and flat pixel indices into (B*H*W), one row per pair.
    """
    n = means2d.shape[1]
    flat_means = means2d.detach().reshape(-1, 2)
    flat_radii = radii.reshape(-1, 2)
    keep = (flat_radii > 0).any(-1).nonzero()[:, 0]
    centre, r = flat_means[keep], flat_radii[keep]
    # Pixel px's centre is px + 0.5; take every pixel whose centre is within the box.
    x0 = torch.ceil(centre[:, 0] - r[:, 0] - 0.5).clamp(0, width - 1).long()
    x1 = torch.floor(centre[:, 0] + r[:, 0] - 0.5).clamp(0, width - 1).long()
    y0 = torch.ceil(centre[:, 1] - r[:, 1] - 0.5).clamp(0, height - 1).long()
    y1 = torch.floor(centre[:, 1] + r[:, 1] - 0.5).clamp(0, height - 1).long()
    w = (x1 - x0 + 1).clamp_min(0)
    counts = w * (y1 - y0 + 1).clamp_min(0)
    total = int(counts.sum())
    row = torch.repeat_interleave(torch.arange(len(keep), device=keep.device), counts, output_size=total)
    # First pixel of each box, its width and its first row: one gather instead of several.
    origin = (torch.div(keep, n, rounding_mode="floor") * height + y0) * width + x0
    per_row = torch.stack([keep, origin, w, torch.cumsum(counts, 0) - counts], dim=1)[row]
    local = torch.arange(total, device=keep.device) - per_row[:, 3]
    box_y = torch.div(local, per_row[:, 2], rounding_mode="floor")
    pixel = per_row[:, 1] + box_y * width + (local - box_y * per_row[:, 2])
    return per_row[:, 0], pixel


def render_torch(g: Gaussians, viewmats, Ks, width, height, bg, return_depth) -> RenderResult:
    batch, n = g.means.shape[:2]
    means2d, conics, depths, radii = project(g, viewmats, Ks, width, height)
    gid, pixel = _pairs(means2d, radii, width, height)
    # Per-Gaussian attributes packed in one table so each pass gathers once per pair:
    # mean (2), conic (3), opacity, colour (3), depth.
    table = torch.cat([means2d.reshape(-1, 2), conics.reshape(-1, 3), g.opacities.reshape(-1, 1),
                       g.colors.reshape(-1, 3), depths.reshape(-1, 1)], dim=1)

    def pair_alpha(rows: torch.Tensor, pixel: torch.Tensor):
        px = (pixel % width).to(rows.dtype)
        py = (torch.div(pixel, width, rounding_mode="floor") % height).to(rows.dtype)
        dx = px + 0.5 - rows[:, 0]
        dy = py + 0.5 - rows[:, 1]
        sigma = 0.5 * (rows[:, 2] * dx * dx + rows[:, 4] * dy * dy) + rows[:, 3] * dx * dy
        return sigma, (rows[:, 5] * torch.exp(-sigma)).clamp_max(ALPHA_MAX)

    with torch.no_grad():
        sigma, alpha = pair_alpha(table.detach()[gid, :6], pixel)
        kept = ((sigma >= 0) & (alpha >= ALPHA_MIN)).nonzero()[:, 0]
        gid, pixel = gid[kept], pixel[kept]
        # Order rows by pixel, then front to back: the depth rank of each Gaussian within its image
        # breaks ties, so one integer sort does both.
        rank = torch.empty(batch * n, dtype=torch.long, device=gid.device)
        by_depth = torch.argsort(depths.detach(), dim=1) + torch.arange(batch, device=gid.device)[:, None] * n
        rank[by_depth.reshape(-1)] = torch.arange(n, device=gid.device).repeat(batch)
        order = torch.argsort(pixel * n + rank[gid])
        gid, pixel = gid[order], pixel[order]
        first = torch.ones_like(pixel, dtype=torch.bool)
        first[1:] = pixel[1:] != pixel[:-1]
        segment = torch.cumsum(first, 0) - 1
        starts = first.nonzero()[:, 0]
    # index_select (not fancy indexing): its backward is index_add, which is reproducible on CPU, where
    # the accumulating index_put behind `table[gid]` is not.
    rows = table.index_select(0, gid)
    _, alpha = pair_alpha(rows, pixel)
    # Double precision: the running sum spans every pair of the image, and pixels read differences of it.
    log_t = torch.log1p(-alpha.double())
    exclusive = torch.cumsum(log_t, 0) - log_t
    before = (exclusive - exclusive.index_select(0, starts).index_select(0, segment)).to(alpha.dtype)
    with torch.no_grad():
        # gsplat stops a pixel before the Gaussian that would bring transmittance to T_MIN or below.
        live = (before + torch.log1p(-alpha.detach())) > math.log(T_MIN)
    weight = alpha * torch.exp(before) * live
    pixels = batch * height * width
    values = weight[:, None] * torch.cat([rows[:, 6:9], torch.ones_like(weight)[:, None]]
                                         + ([rows[:, 9:10]] if return_depth else []), dim=1)
    out = torch.zeros(pixels, values.shape[1], dtype=values.dtype, device=values.device).index_add(0, pixel, values)
    out = out.reshape(batch, height, width, -1)
    acc = out[..., 3]
    rgb = out[..., :3] + (1 - acc)[..., None] * bg[:, None, None, :]
    depth = out[..., 4] / acc.clamp_min(1e-10) if return_depth else None
    return RenderResult(rgb, acc, depth)


def stack_gaussians(items: Sequence[Gaussians]) -> Gaussians:
    """Batch several equally sized Gaussian sets for render_batch."""
    return Gaussians(*(torch.stack(parts) for parts in zip(*(g.tensors() for g in items))))


# Both rasterizers take (batched Gaussians, viewmats, Ks, width, height, background (B, 3), return_depth).
RENDERERS = Registry("renderer", "avatar.renderer", {
    "gsplat": "perse.core.render:render_gsplat",
    "torch": "perse.core.render:render_torch",
}, auto=lambda device: "gsplat" if device == "cuda" else "torch")
