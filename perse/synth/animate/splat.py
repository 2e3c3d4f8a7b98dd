"""A fast forward splatter for lifted portraits, the lift animator's CPU renderer.

The general Gaussian compositor (perse.core.render on CPU) costs ~0.3 s per 128 px frame for a
one-splat-per-pixel portrait, too slow for hundreds of frames on a laptop. A lifted portrait is a
special scene: a dense grid of pixel-sized, nearly opaque splats on one surface. Here each splat is
drawn bilinearly into the 2 x 2 pixels around its projection; a per-pixel depth buffer keeps only the
nearest surface that opaque splats form (splats within `thickness` of it blend; faint fringe
splats far in front of it are skipped); holes opened where turning
the head stretches the surface are filled from their covered neighbours, but only where most
neighbours are covered, so the silhouette does not grow. At the frontal camera every
splat lands exactly on its own pixel, so frame 0 reproduces the input.

It runs on the device its inputs are on: the parametric editor draws its 3D accessories with it on the
run's GPU, which leaves the CPU to the editing threads' other work (on the CPU, every thread's torch ops
start a team of threads per core).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# A contribution needs this much bilinear weight to claim a pixel's depth: a neighbour's faint
# corner must not decide what is in front.
CLAIM_WEIGHT = 0.25
CLAIM_OPACITY = 0.5
# A pixel needs this much accumulated splat weight, and this mean opacity, to count as covered.
MIN_WEIGHT = 0.1
OPAQUE = 0.5
# A hole is filled when at least this many of its 8 neighbours are covered.
MIN_NEIGHBOURS = 5
FILL_PASSES = 2


def splat(means: torch.Tensor, colors: torch.Tensor, opacities: torch.Tensor, viewmats: torch.Tensor,
          K: torch.Tensor, size: int, background: torch.Tensor, thickness: float,
          surfaces: torch.Tensor | None = None, overlay: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """means (B, N, 3) world, colors (N, 3), opacities (N,), viewmats (B, 4, 4) -> rgb (B, S, S, 3), alpha (B, S, S).

    `surfaces` (N,) small ints: splats blend only with splats of their own surface, and at each pixel the
    nearest surface wins, however close behind it another one lies (an accessory a few pixels in front of
    the lifted head at a small image size). `overlay` (N,) bool: see-through splats (lenses), composited
    over the opaque result where they lie in front of the nearest opaque surface."""
    batch, n = means.shape[:2]
    device = means.device
    cam = means @ viewmats[:, :3, :3].transpose(1, 2) + viewmats[:, None, :3, 3]
    z = cam[..., 2].clamp_min(1e-6)
    u = K[0, 0] * cam[..., 0] / z + K[0, 2] - 0.5  # pixel-centre coordinates: pixel i is at u = i
    v = K[1, 1] * cam[..., 1] / z + K[1, 2] - 0.5
    u0, v0 = torch.floor(u), torch.floor(v)
    fu, fv = u - u0, v - v0
    pixels, weights = [], []
    for du, dv, w in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)), (0, 1, (1 - fu) * fv), (1, 1, fu * fv)):
        px, py = u0 + du, v0 + dv
        valid = (px >= 0) & (px < size) & (py >= 0) & (py < size) & (cam[..., 2] > 1e-3)
        row = torch.arange(batch, device=device)[:, None] * size + py.clamp(0, size - 1).long()
        index = row * size + px.clamp(0, size - 1).long()
        pixels.append(index)
        weights.append(w * valid)
    pixel = torch.stack(pixels, -1).reshape(-1)
    weight = torch.stack(weights, -1).reshape(-1)
    depth = z[..., None].expand(batch, n, 4).reshape(-1)
    total = batch * size * size
    per_splat = lambda x: x[None, :, None].expand(batch, n, 4).reshape(-1)  # noqa: E731
    see_through = per_splat(overlay) if overlay is not None else torch.zeros_like(weight, dtype=torch.bool)
    surface = per_splat(surfaces.long()) if surfaces is not None else torch.zeros_like(pixel)
    # Only nearly opaque splats decide the surface: a faint fringe (soft matte edges of hair) swinging
    # in front of the face must not punch see-through holes into it.
    opaque = per_splat(opacities >= CLAIM_OPACITY) & ~see_through
    inf = torch.full_like(depth, float("inf"))
    claimed, reached = [], []
    for index in range(int(surface.max()) + 1 if len(surface) else 1):
        mine = (surface == index) & ~see_through
        claim = torch.where((weight >= CLAIM_WEIGHT) & opaque & mine, depth, inf)
        far = torch.full((total,), float("inf"), device=device)
        claimed.append(far.scatter_reduce(0, pixel, claim, reduce="amin"))
        reached.append(far.scatter_reduce(0, pixel, torch.where((weight > 0) & mine, depth, inf),
                                          reduce="amin"))
    claimed_front, claimed_surface = torch.stack(claimed).min(0)
    reached_front, reached_surface = torch.stack(reached).min(0)
    # Pixels that no surface claims (reached only by faint corners) take their nearest contribution.
    unclaimed = torch.isinf(claimed_front)
    front = torch.where(unclaimed, reached_front, claimed_front)
    front_surface = torch.where(unclaimed, reached_surface, claimed_surface)
    on_front = (surface == front_surface[pixel]) & ((depth - front[pixel]).abs() <= thickness)
    visible = weight * (on_front & ~see_through)
    # Premultiplied colour, opacity and 1 (the weight itself) per splat, broadcast over its four pixels.
    rgba1 = torch.cat([colors * opacities[:, None], opacities[:, None], torch.ones(n, 1, device=device)], 1)[:, None]
    accum = _accumulate(pixel, visible, rgba1, batch, n, total).reshape(batch, size, size, 5).permute(0, 3, 1, 2)
    accum = _fill_holes(accum)
    coverage = accum[:, 4:5].clamp_min(1e-8)
    premultiplied = accum[:, :3] / coverage
    alpha = (accum[:, 3:4] / coverage).clamp(0, 1) * (accum[:, 4:5] > 1e-6)
    rgb = premultiplied + (1 - alpha) * background.view(1, 3, 1, 1)
    if overlay is not None and bool(overlay.any()):
        # See-through splats in front of the opaque surface: their normalised premultiplied colour
        # and coverage go over it.
        shown = weight * (see_through & (depth < front[pixel]))
        layer = _accumulate(pixel, shown, rgba1, batch, n, total).reshape(batch, size, size, 5).permute(0, 3, 1, 2)
        cover = layer[:, 4:5].clamp_min(1e-8)
        over_alpha = (layer[:, 3:4] / cover).clamp(0, 1) * (layer[:, 4:5] > 1e-6)
        rgb = layer[:, :3] / cover * (layer[:, 4:5] > 1e-6) + (1 - over_alpha) * rgb
        alpha = over_alpha + (1 - over_alpha) * alpha
    return rgb.permute(0, 2, 3, 1).clamp(0, 1), alpha[:, 0]


def _accumulate(pixel: torch.Tensor, weight: torch.Tensor, values: torch.Tensor, batch: int, n: int,
                total: int) -> torch.Tensor:
    """Sum over the (B * N * 4) splat corners of weight x the splat's values (N, 1, 5) at each pixel."""
    channels = values.shape[-1]
    weighted = (weight.view(batch, n, 4, 1) * values).view(-1, channels)
    return torch.zeros(total, channels, device=values.device).index_add_(0, pixel, weighted)


def _fill_holes(accum: torch.Tensor) -> torch.Tensor:
    """Holes are pixels with little weight whose neighbourhood is mostly covered (a stretched surface);
    they take the normalised average of their covered neighbours. Pixels just outside a silhouette
    have at most about half their neighbours covered, so the outline does not grow."""
    for _ in range(FILL_PASSES):
        weight = accum[:, 4:5]
        # A pixel is covered when some splat weight reached it (its colour is then the normalised
        # average) and what reached it is opaque: one reached only by faint fringe splats is a hole.
        covered = ((weight >= MIN_WEIGHT) & (accum[:, 3:4] >= OPAQUE * weight)).float()
        neighbours = _box3(covered) - covered
        hole = (covered == 0) & (neighbours >= MIN_NEIGHBOURS)
        if not hole.any():
            break
        normalised = accum / weight.clamp_min(1e-8) * covered
        average = _box3(normalised) / neighbours.clamp_min(1.0)
        accum = torch.where(hole, average, accum)
    return accum


def _box3(x: torch.Tensor) -> torch.Tensor:
    """Sum over each pixel's 3 x 3 neighbourhood (zero outside the image): rows, then columns (a third of
    avg_pool2d's time on the CPU)."""
    x = F.pad(x, (1, 1, 1, 1))
    rows = x[..., :-2] + x[..., 1:-1] + x[..., 2:]
    return rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]
