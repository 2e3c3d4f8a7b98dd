"""The embedded animator: lift the portrait to 3D Gaussians and render the motion script.

Geometry (built once per portrait, shared by every clip):
- Depth: inside the face hull, the mediapipe landmarks' z interpolated linearly over their
  triangulation; elsewhere a head ellipsoid fitted to the face oval (its front cap inside its outline,
  flattened to a paraboloid; its centre depth beyond it: hair, ears, neck and clothes); the two blend
  over a band inside the hull so the surface has no step.
- Every pixel (or block of `stride` x `stride` pixels) becomes one Gaussian on that surface, placed by
  unprojecting through the frontal camera so frame 0 sees it where the portrait shows it. Each is a
  surfel whose covariance spans the 3D distance to its grid neighbours, so turning the head stretches
  splats instead of opening holes; opacity is the matte.
- Layers of extra Gaussians sit behind the surface, hidden at rest: the mouth interior (a dark
  cavity and the upper teeth fixed to the skull, the lower teeth and tongue riding the jaw), revealed
  when the jaw opens; and closed upper eyelids coloured from the clip's own lid skin with a lash line,
  which a blink slides down over the eyes.
- Expressions are displacement fields, linear in the expression vector: jaw open rotates the region
  below the lip seam about the jaw hinge; smile and brow raise move control landmarks and spread that
  motion to nearby pixels with normalised Gaussian weights anchored by the landmarks that stay; blink
  moves the eyelid layer.

Per clip only colours and opacities change (the edited portrait and its matte). Frames render many
per call through perse.core.render (`gaussians`, the default on CUDA: gsplat), whose colours are
corrected so the frontal neutral render reproduces the input (a few residual iterations: each pixel's
splat also bleeds into its neighbours), or through the forward splatter in splat.py (`splat`, the
default on CPU, where the general compositor is ~50x slower for this scene).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from perse.core import camera as cam
from perse.dataset import EXPRESSION_NAMES
from perse.errors import PerseError
from perse.synth import face as F
from perse.synth.animate import ClipFrames
from perse.synth.animate.motion import MotionScript
from perse.synth.animate.splat import splat

RENDERERS = ("gaussians", "splat")

# Surfel standard deviation as a fraction of the spacing to the neighbouring splat. The renderer adds a
# 0.3 px^2 low-pass, which already covers a frontal grid; below 0.245 every splat's footprint stays
# within 5x5 pixels, which keeps the CPU compositor's work per splat small.
SURFEL_SIGMA = 0.24
# Longest splat axis, in frontal pixel spacings: a rubber sheet over depth steps, not a smear across the image.
MAX_STRETCH = 6.0
# World depth spread that breaks ties between neighbouring splats (far below a pixel, above float noise).
TIE_BREAK = 1e-4
# Splats below this matte value are not created (they would be invisible).
MIN_ALPHA = 0.02
# Residual iterations that sharpen colours against the frontal render.
COLOR_FIT_ITERATIONS = 3
FIT_STEP = 0.6

FOREHEAD = (10, 109, 67, 103, 338, 297, 332, 151, 108, 69, 337, 299)


def _quat_from_matrix(R: np.ndarray) -> np.ndarray:
    """(N, 3, 3) proper rotations -> (N, 4) wxyz quaternions."""
    m = R
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    candidates = np.stack([
        np.stack([1 + trace, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], 1),
        np.stack([m[:, 2, 1] - m[:, 1, 2], 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], m[:, 0, 1] + m[:, 1, 0],
                  m[:, 0, 2] + m[:, 2, 0]], 1),
        np.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2],
                  m[:, 1, 2] + m[:, 2, 1]], 1),
        np.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1],
                  1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], 1),
    ], axis=1)  # (N, 4 candidates, 4)
    # Each candidate is 4 q_k * q; the one with the largest norm is numerically safest.
    best = np.argmax(np.linalg.norm(candidates, axis=2), axis=1)
    q = candidates[np.arange(len(m)), best]
    return q / np.linalg.norm(q, axis=1, keepdims=True)


@dataclass
class Layer:
    """Gaussians besides the per-pixel surface. Each takes a fixed colour (`colors`), or the mean colour
    of a few pixels of the clip's image (`sources`: (M, K) flat pixel indices) times `shade`, so that
    an edit of the skin recolours the eyelids too."""

    points: np.ndarray  # (M, 3) world positions at rest
    scales: np.ndarray  # (M, 3)
    fields: np.ndarray  # (E, M, 3)
    colors: np.ndarray | None = None  # (M, 3)
    sources: np.ndarray | None = None  # (M, K)
    shade: np.ndarray | None = None  # (M,)

    def colors_for(self, image: np.ndarray) -> np.ndarray:
        if self.colors is not None:
            return self.colors
        return image.reshape(-1, 3)[self.sources].mean(axis=1) * self.shade[:, None]


@dataclass
class HeadGeometry:
    """Per-pixel 3D surface and expression fields of one portrait (grid of `grid` x `grid` splats)."""

    grid: int
    stride: int
    points: np.ndarray  # (G*G, 3) world positions at rest
    quats: np.ndarray  # (G*G, 4)
    scales: np.ndarray  # (G*G, 3)
    fields: np.ndarray  # (E, G*G, 3) world displacement per unit of each expression
    layers: list["Layer"]  # hidden-at-rest Gaussians: mouth interior, eyelids
    landmarks: np.ndarray  # (478, 3) world positions at rest
    landmark_fields: np.ndarray  # (E, 478, 3)
    pivot: np.ndarray  # (3,) head centre


def _pixels_to_world(u: np.ndarray, v: np.ndarray, z_px: np.ndarray, size: int, fov_deg: float) -> np.ndarray:
    """Crop pixel coordinates with a depth offset in pixels (mediapipe units) -> world points."""
    return cam.crop_points_to_world(np.stack([u, v, z_px], 1), size, fov_deg)


def _interpolate_triangulated(xy: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Piecewise-linear interpolation of scattered values over their Delaunay triangulation, at pixel
    centres; NaN outside the hull. (scipy's LinearNDInterpolator takes seconds on the face mesh.)"""
    from scipy.spatial import Delaunay

    out = np.full((size, size), np.nan)
    for a, b, c in Delaunay(xy).simplices:
        (xa, ya), (xb, yb), (xc, yc) = xy[a], xy[b], xy[c]
        det = (yb - yc) * (xa - xc) + (xc - xb) * (ya - yc)
        if abs(det) < 1e-12:
            continue
        x0, x1 = max(int(np.floor(min(xa, xb, xc) - 0.5)), 0), min(int(np.ceil(max(xa, xb, xc) - 0.5)), size - 1)
        y0, y1 = max(int(np.floor(min(ya, yb, yc) - 0.5)), 0), min(int(np.ceil(max(ya, yb, yc) - 0.5)), size - 1)
        if x1 < x0 or y1 < y0:
            continue
        px, py = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        wa = ((yb - yc) * (px - xc) + (xc - xb) * (py - yc)) / det
        wb = ((yc - ya) * (px - xc) + (xa - xc) * (py - yc)) / det
        wc = 1 - wa - wb
        inside = (wa >= -1e-9) & (wb >= -1e-9) & (wc >= -1e-9)
        block = out[y0:y1 + 1, x0:x1 + 1]
        block[inside] = (wa * values[a] + wb * values[b] + wc * values[c])[inside]
    return out


def _depth_map(landmarks: np.ndarray, size: int, face: F.FaceFrame) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Depth offsets in pixels (S, S), the face-hull mask, and the fitted ellipsoid (cx, cy, cz, a, b, c)."""
    xy, z = landmarks[:, :2], landmarks[:, 2] - landmarks[:468, 2].mean()
    coords = np.arange(size, dtype=np.float64) + 0.5
    uu, vv = np.meshgrid(coords, coords)
    face_z = _interpolate_triangulated(xy, z, size)
    hull = np.isfinite(face_z)
    oval = np.asarray(F.FACE_OVAL)
    cx = float(xy[oval, 0].mean())
    a = 0.55 * face.face_width
    b = 0.68 * face.face_height
    # The skull's centre sits well above the chin: the chin lies on the cap's front, not its rim.
    cy = float(xy[F.CHIN, 1]) - 0.7 * b
    c = 1.2 * a
    rr = ((xy[oval, 0] - cx) / a) ** 2 + ((xy[oval, 1] - cy) / b) ** 2
    # A paraboloid cap rather than a true ellipsoid: its slope stays finite at the outline, so turning
    # the head stretches the splats there by a bounded factor instead of tearing them apart.
    cz = float(np.median(z[oval] + c * np.clip(1 - rr, 0, 1)))
    r2 = ((uu - cx) / a) ** 2 + ((vv - cy) / b) ** 2
    ellipsoid = cz - c * np.clip(1 - r2, 0, 1)
    inside = cv2.distanceTransform(hull.astype(np.uint8), cv2.DIST_L2, 5)
    blend = np.clip(inside / max(0.08 * face.face_height, 1.0), 0, 1)
    blend = blend * blend * (3 - 2 * blend)
    depth = np.where(hull, blend * np.nan_to_num(face_z) + (1 - blend) * ellipsoid, ellipsoid)
    return depth, hull, (cx, cy, cz, a, b, c)


def _rbf_field(size: int, landmarks_xy: np.ndarray, moves: dict[int, np.ndarray], sigma: float,
               work: int = 96) -> np.ndarray:
    """Dense (S, S, 3) displacement spreading `moves` (landmark -> dx, dy, dz px); every other landmark
    anchors its neighbourhood at zero, and far from all landmarks the field fades out."""
    scale = work / size
    coords = (np.arange(work, dtype=np.float32) + 0.5) / scale
    uu, vv = np.meshgrid(coords, coords)
    displacement = np.zeros((len(landmarks_xy), 3), np.float32)
    for index, move in moves.items():
        displacement[index] = move
    # Beyond 4 sigma of every landmark the background weight wins by > 300x: compute only near the face.
    lo, hi = landmarks_xy.min(0) - 4 * sigma, landmarks_xy.max(0) + 4 * sigma
    near = (uu >= lo[0]) & (uu <= hi[0]) & (vv >= lo[1]) & (vv <= hi[1])
    points = np.stack([uu[near], vv[near]], 1)
    anchors = landmarks_xy.astype(np.float32)
    d2 = (points[:, None, 0] - anchors[None, :, 0]) ** 2 + (points[:, None, 1] - anchors[None, :, 1]) ** 2
    weights = np.exp(-d2 / np.float32(2 * sigma ** 2))
    # A constant "background" weight equal to a landmark 2 sigma away: far from the face nothing moves.
    field = np.zeros((work, work, 3), np.float32)
    field[near] = weights @ displacement / (weights.sum(1, keepdims=True) + math.exp(-2.0))
    return cv2.resize(field, (size, size), interpolation=cv2.INTER_LINEAR)


def _blink_field(size: int, landmarks: np.ndarray, face: F.FaceFrame) -> np.ndarray:
    """Closing both eyes: the upper-lid skin, a band as tall as the eye opening, slides down over the eye
    and comes slightly forward (so it covers the eyeball); the skin above it stretches, fading out
    towards the brow."""
    xy = landmarks[:, :2]
    coords = np.arange(size, dtype=np.float64) + 0.5
    uu, vv = np.meshgrid(coords, coords)
    field = np.zeros((size, size, 3), np.float32)
    for upper_ids, lower_ids in ((F.RIGHT_EYE_UPPER, F.RIGHT_EYE_LOWER), (F.LEFT_EYE_UPPER, F.LEFT_EYE_LOWER)):
        upper, lower = xy[list(upper_ids)], xy[list(lower_ids)]
        corners = np.concatenate([upper[:, 0], lower[:, 0]])
        order_u, order_l = np.argsort(upper[:, 0]), np.argsort(lower[:, 0])
        top = np.interp(uu, upper[order_u, 0], upper[order_u, 1])
        bottom = np.interp(uu, lower[order_l, 0], lower[order_l, 1])
        inside = (uu > corners.min()) & (uu < corners.max())
        # The eye opening fades to zero at the corners.
        span = max(float(corners.max() - corners.min()), 1.0)
        taper = np.clip(np.sin(np.pi * (uu - corners.min()) / span), 0, 1) ** 0.5
        opening = np.clip(bottom - top, 0, None) * inside * taper
        height = np.maximum(opening, 1.0)
        above = top - vv  # > 0 above the lid line
        weight = np.where(above < 0, 0.0, np.where(above <= height, 1.0, np.clip(1 - (above - height) / (2 * height), 0, 1)))
        field[..., 1] += (weight * opening).astype(np.float32)
        field[..., 2] -= (weight * 0.5 * opening).astype(np.float32)
    return field


def _jaw_field(size: int, landmarks: np.ndarray, depth_px: np.ndarray, face: F.FaceFrame, angle: float) -> np.ndarray:
    """Jaw opening by `angle` radians: pixels below the lip seam rotate about the jaw hinge."""
    xy = landmarks[:, :2]
    upper, lower = xy[list(F.LIPS_INNER_UPPER)], xy[list(F.LIPS_INNER_LOWER)]
    seam = (upper + lower) / 2
    # Lower face: below the lip seam and inside the jaw line (hinge to hinge through the chin).
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(np.concatenate([seam, xy[list(F.JAW[::-1])]])).astype(np.int32)], 1)
    # Soft falloff below and beside the jaw (chin tissue, a beard), none above the seam.
    outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5)
    weight = np.where(mask > 0, 1.0, np.exp(-(outside / max(0.06 * face.face_height, 1.0)) ** 2))
    coords = np.arange(size, dtype=np.float64) + 0.5
    uu, vv = np.meshgrid(coords, coords)
    order = np.argsort(seam[:, 0])
    seam_y = np.interp(uu, seam[order, 0], seam[order, 1])
    within = (uu >= seam[:, 0].min()) & (uu <= seam[:, 0].max())
    # The lips part along the seam (a real opening); beside the mouth the cheeks stretch smoothly.
    weight = np.where(within & (vv < seam_y), 0.0, weight)
    nose_y, corner_y = float(xy[F.SUBNASALE, 1]), float(seam[:, 1].min())
    weight = weight * np.clip((vv - nose_y) / max(corner_y - nose_y, 1.0), 0, 1) ** 2
    # The hinge sits below the ears, about half a face width behind the face's centre line.
    hinge_y = float(xy[[F.RIGHT_FACE_EDGE, F.LEFT_FACE_EDGE], 1].mean())
    row, column = int(np.clip(hinge_y, 0, size - 1)), int(np.clip(face.center_x, 0, size - 1))
    hinge_z = float(depth_px[row, column]) + 0.45 * face.face_width
    dy, dz = vv - hinge_y, depth_px - hinge_z
    field = np.zeros((size, size, 3), np.float32)
    field[..., 1] = weight * angle * (-dz)
    field[..., 2] = weight * angle * dy
    return field


class LiftAnimator:
    name = "lift"
    background = (1.0, 1.0, 1.0)

    def __init__(self, portrait, device: str = "cpu", renderer: str = "auto", stride: int = 1, batch: int | None = None):
        self.size = portrait.size
        self.fov_deg = float(portrait.fov_deg)
        self.device = torch.device(device)
        if renderer == "auto":
            renderer = "gaussians" if self.device.type == "cuda" else "splat"
        if renderer not in RENDERERS:
            raise PerseError(f"lift animator: unknown renderer '{renderer}' (synth.lift_renderer); choose auto, "
                             f"{', '.join(RENDERERS)}")
        self.renderer = renderer
        self.stride = stride
        if self.size % self.stride:
            raise PerseError(f"lift animator: image size {self.size} is not a multiple of the splat stride {self.stride}")
        self.batch = batch or (32 if self.device.type == "cuda" or renderer == "splat" else 4)
        F.validate_landmarks(portrait.landmarks, self.size, f"portrait {portrait.source or '(in memory)'}")
        self.geometry = build_geometry(np.asarray(portrait.landmarks, np.float64), self.size, self.fov_deg, self.stride)
        self.K = cam.intrinsics(self.size, self.fov_deg)

    @classmethod
    def from_config(cls, portrait, config) -> "LiftAnimator":
        return cls(portrait, device=config.resolved_device(), renderer=config.synth.lift_renderer)

    @property
    def pivot(self) -> np.ndarray:
        return self.geometry.pivot

    def splats(self, image: np.ndarray, matte: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-splat colours, opacities and the indices of the grid splats that exist (matte > MIN_ALPHA)."""
        g, s = self.geometry.grid, self.stride
        colors = image.reshape(g, s, g, s, 3).mean(axis=(1, 3)).reshape(-1, 3)
        alpha = matte.reshape(g, s, g, s).mean(axis=(1, 3)).reshape(-1)
        keep = np.flatnonzero(alpha > MIN_ALPHA)
        return colors[keep], np.clip(alpha[keep], 0, 0.999), keep

    def point_cloud(self, image: np.ndarray, matte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The surface's and the layers' Gaussians: the avatar starts with Gaussians wherever an open
        mouth or a blink will show something."""
        colors, _, keep = self.splats(image, matte)
        layers = self.geometry.layers
        points = np.concatenate([self.geometry.points[keep]] + [layer.points for layer in layers])
        colors = np.concatenate([colors] + [layer.colors_for(image) for layer in layers])
        return points.astype(np.float32), colors.astype(np.float32)

    def _tensors(self, image: np.ndarray, matte: np.ndarray):
        geo = self.geometry
        colors, opacity, keep = self.splats(image, matte)
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=self.device)  # noqa: E731
        n_layers = sum(len(layer.points) for layer in geo.layers)
        means = t(np.concatenate([geo.points[keep]] + [layer.points for layer in geo.layers]))
        fields = t(np.concatenate([geo.fields[:, keep]] + [layer.fields for layer in geo.layers], axis=1))
        quats = t(np.concatenate([geo.quats[keep], np.tile([1.0, 0, 0, 0], (n_layers, 1))]))
        scales = t(np.concatenate([geo.scales[keep]] + [layer.scales for layer in geo.layers]))
        opacities = t(np.concatenate([opacity, np.full(n_layers, 0.999)]))
        colors_t = t(np.concatenate([colors] + [layer.colors_for(image) for layer in geo.layers]))
        return means, fields, quats, scales, opacities, colors_t, len(keep)

    def _render(self, means, fields, quats, scales, opacities, colors, viewmats, expressions):
        from perse.core.gaussians import Gaussians
        from perse.core.render import RenderResult, render_batch

        b = len(viewmats)
        expr = torch.as_tensor(expressions, dtype=torch.float32, device=self.device)
        moved = means[None] + torch.einsum("be,enc->bnc", expr, fields)
        vm = torch.as_tensor(viewmats, dtype=torch.float32, device=self.device)
        K = torch.as_tensor(self.K, dtype=torch.float32, device=self.device)
        background = torch.tensor(self.background, device=self.device)
        if self.renderer == "splat":
            # Neighbouring splats on one surface differ in depth by about a splat spacing (or its
            # stretch); anything further behind is another surface (the mouth cavity, the far cheek).
            thickness = 1.5 * 2.0 * self.stride / self.size
            rgb, alpha = splat(moved, colors, opacities, vm, K, self.size, background, thickness)
            return RenderResult(rgb, alpha, None)
        batched = Gaussians(moved, quats.expand(b, -1, -1), scales.expand(b, -1, -1), opacities.expand(b, -1),
                            colors.expand(b, -1, -1))
        return render_batch(batched, vm, K, self.size, self.size, background)

    def _fit_colors(self, means, fields, quats, scales, opacities, colors, n_grid, image, matte):
        """Residual iterations so the frontal neutral render matches the input where the person is."""
        g, s = self.geometry.grid, self.stride
        target = torch.as_tensor(image * matte[..., None] + (1 - matte[..., None]) * np.asarray(self.background),
                                 dtype=torch.float32, device=self.device)
        _, _, keep = self.splats(image, matte)
        rows, cols = np.divmod(keep, g)
        rows_t = torch.as_tensor(rows * s + s // 2, device=self.device)
        cols_t = torch.as_tensor(cols * s + s // 2, device=self.device)
        frontal = cam.head_pose_viewmat(self.fov_deg, 0.0, 0.0, 0.0, self.pivot)[None]
        neutral = np.zeros((1, len(EXPRESSION_NAMES)))
        weight = opacities[:n_grid, None]
        for _ in range(COLOR_FIT_ITERATIONS):
            out = self._render(means, fields, quats, scales, opacities, colors, frontal, neutral).rgb[0]
            residual = (target - out)[rows_t, cols_t]
            colors = colors.clone()
            colors[:n_grid] = (colors[:n_grid] + FIT_STEP * residual * weight).clamp(0, 1)
        return colors

    @torch.no_grad()
    def animate(self, image: np.ndarray, matte: np.ndarray, script: MotionScript) -> ClipFrames:
        image = np.asarray(image, np.float32)
        matte = np.asarray(matte, np.float32)
        if image.shape != (self.size, self.size, 3) or matte.shape != (self.size, self.size):
            raise PerseError(f"lift animator: expected an image ({self.size}, {self.size}, 3) and matte "
                             f"({self.size}, {self.size}), got {image.shape} and {matte.shape}")
        means, fields, quats, scales, opacities, colors, n_grid = self._tensors(image, matte)
        if COLOR_FIT_ITERATIONS and self.renderer == "gaussians":
            colors = self._fit_colors(means, fields, quats, scales, opacities, colors, n_grid, image, matte)
        viewmats = script.viewmats()
        images, alphas = [], []
        for start in range(0, len(script), self.batch):
            part = slice(start, start + self.batch)
            out = self._render(means, fields, quats, scales, opacities, colors, viewmats[part],
                               script.expressions[part])
            images.append(out.rgb.clamp(0, 1).cpu().numpy())
            alphas.append(out.alpha.clamp(0, 1).cpu().numpy())
        return ClipFrames(np.concatenate(images), np.concatenate(alphas), viewmats, script.expressions.copy(),
                          self.project_landmarks(viewmats, script.expressions))

    def project_landmarks(self, viewmats: np.ndarray, expressions: np.ndarray) -> np.ndarray:
        geo = self.geometry
        moved = geo.landmarks[None] + np.einsum("te,enc->tnc", expressions, geo.landmark_fields)
        return np.stack([cam.project(points, vm, self.K)[:, :2] for points, vm in zip(moved, viewmats)])


def build_geometry(landmarks: np.ndarray, size: int, fov_deg: float, stride: int = 1) -> HeadGeometry:
    face = F.FaceFrame(landmarks)
    depth_px, hull, (cx, cy, cz, a, b, c) = _depth_map(landmarks, size, face)
    grid = size // stride
    centre = (np.arange(grid, dtype=np.float64) + 0.5) * stride
    uu, vv = np.meshgrid(centre, centre)
    # Block-average depth for strided grids so each splat sits on its block's mean surface.
    depth = depth_px.reshape(grid, stride, grid, stride).mean(axis=(1, 3))
    # Splats on flat stretches (beyond the head's outline) would share one depth, and the renderer's
    # depth sort may order ties differently on every call, so a frame would flicker wherever anything
    # else moved. A sub-pixel depth pattern makes every neighbour's order fixed.
    rows, cols = np.mgrid[0:grid, 0:grid]
    depth = depth + TIE_BREAK * ((rows * 7 + cols * 13) % 17) / 17 * (size / 2)
    points = _pixels_to_world(uu.ravel(), vv.ravel(), depth.ravel(), size, fov_deg).reshape(grid, grid, 3)

    # Surfel frames from neighbour differences; the shorter one-sided difference avoids stretching
    # across depth steps, and a cap keeps silhouette splats from smearing.
    def tangent(axis: int) -> np.ndarray:
        forward = np.diff(points, axis=axis, append=np.take(points, [-1], axis=axis))
        backward = np.diff(points, axis=axis, prepend=np.take(points, [0], axis=axis))
        pick = np.linalg.norm(forward, axis=-1, keepdims=True) <= np.linalg.norm(backward, axis=-1, keepdims=True)
        step = np.where(pick, forward, backward)
        step = np.where(np.linalg.norm(step, axis=-1, keepdims=True) < 1e-9, np.where(pick, backward, forward), step)
        # Standard deviation along this tangent: SURFEL_SIGMA of the spacing for a frontal grid, rising
        # towards half the spacing where turning the head stretches the grid, so stretched splats
        # still overlap their neighbours instead of leaving stripes of background.
        spacing = 2.0 * stride / size
        length = np.maximum(np.linalg.norm(step, axis=-1, keepdims=True), 1e-12)
        sigma = np.maximum(SURFEL_SIGMA * length, 0.5 * length - (0.5 - SURFEL_SIGMA) * spacing)
        return step / length * np.minimum(sigma, MAX_STRETCH * spacing)

    du, dv = tangent(1).reshape(-1, 3), tangent(0).reshape(-1, 3)
    cov = du[:, :, None] * du[:, None, :] + dv[:, :, None] * dv[:, None, :]
    values, vectors = np.linalg.eigh(cov)
    floor = (0.05 * SURFEL_SIGMA * 2.0 * stride / size) ** 2
    scales = np.sqrt(np.maximum(values, floor))
    vectors = vectors * np.where(np.linalg.det(vectors) < 0, -1.0, 1.0)[:, None, None]
    quats = _quat_from_matrix(vectors)

    # Expression fields in pixel units (dx, dy, dz), converted to world displacements.
    unit = face.face_height
    xy = landmarks[:, :2]
    fields_px = np.zeros((len(EXPRESSION_NAMES), size, size, 3), np.float32)
    fields_px[EXPRESSION_NAMES.index("jaw_open")] = _jaw_field(size, landmarks, depth_px, face, angle=0.22)
    # Smile: the whole mouth widens and its corners rise (more the further from the centre), the
    # cheeks lift a little.
    mouth_x = xy[[F.MOUTH_RIGHT, F.MOUTH_LEFT], 0].mean()
    mouth_y = xy[[F.MOUTH_RIGHT, F.MOUTH_LEFT, 13, 14], 1].mean()
    half = max(0.5 * abs(xy[F.MOUTH_LEFT, 0] - xy[F.MOUTH_RIGHT, 0]), 1.0)
    corners = {}
    for index in range(len(xy)):
        u = (xy[index, 0] - mouth_x) / half
        reach = 1 - (u / 1.6) ** 2 - ((xy[index, 1] - mouth_y) / (0.9 * half)) ** 2
        if reach > 0:
            u = np.clip(u, -1, 1)
            corners[index] = np.array([0.045 * u, -0.04 * u * u, 0.0]) * min(1.0, 2 * reach)
    for index, sign in ((205, -1), (425, 1), (50, -1), (280, 1), (187, -1), (411, 1)):
        corners[index] = np.array([0.01 * sign, -0.025, -0.005])
    fields_px[EXPRESSION_NAMES.index("smile")] = _rbf_field(size, xy, {k: v * unit for k, v in corners.items()},
                                                            0.05 * unit)
    fields_px[EXPRESSION_NAMES.index("blink")] = _blink_field(size, landmarks, face)
    raise_moves = {i: np.array([0.0, -0.07 * unit, 0.0]) for i in
                   F.RIGHT_BROW_UPPER + F.RIGHT_BROW_LOWER + F.LEFT_BROW_UPPER + F.LEFT_BROW_LOWER}
    for index in FOREHEAD:
        raise_moves[index] = np.array([0.0, -0.03 * unit, 0.0])
    fields_px[EXPRESSION_NAMES.index("brow_raise")] = _rbf_field(size, xy, raise_moves, 0.06 * unit)

    distance = cam.camera_distance(fov_deg)
    focal = cam.focal_length(size, fov_deg)

    def to_world(field_px: np.ndarray, depth_at: np.ndarray) -> np.ndarray:
        z = (distance + depth_at / (size / 2))[..., None]
        return np.concatenate([field_px[..., :2] * z / focal, field_px[..., 2:] / (size / 2)], axis=-1)

    block = lambda f: f.reshape(grid, stride, grid, stride, 3).mean(axis=(1, 3)).reshape(-1, 3)  # noqa: E731
    fields = np.stack([block(to_world(f, depth_px)) for f in fields_px])

    # Landmarks: their own depth on the same surface; fields sampled at their pixels.
    lm_px = np.clip(np.round(xy - 0.5).astype(int), 0, size - 1)
    lm_depth = depth_px[lm_px[:, 1], lm_px[:, 0]]
    lm_world = _pixels_to_world(xy[:, 0], xy[:, 1], lm_depth, size, fov_deg)
    lm_fields = np.stack([to_world(f[lm_px[:, 1], lm_px[:, 0]], lm_depth) for f in fields_px])

    cavity = _mouth_cavity(landmarks, size, fov_deg, depth_px, face, stride)
    cavity_fields = np.stack([to_world(f[cavity[3][:, 1], cavity[3][:, 0]], cavity[4]) for f in fields_px])
    # Only the lower half of the cavity (lower teeth row, tongue) follows the jaw.
    lower = cavity[5]
    cavity_fields[EXPRESSION_NAMES.index("jaw_open")] *= lower[:, None]
    for name in ("blink", "brow_raise"):
        cavity_fields[EXPRESSION_NAMES.index(name)] = 0.0

    pivot = _pixels_to_world(np.array([cx]), np.array([cy]), np.array([cz]), size, fov_deg)[0]
    return HeadGeometry(grid, stride, points.reshape(-1, 3), quats, scales, fields, cavity[0], cavity[1], cavity[2],
                        cavity_fields, lm_world, lm_fields, pivot)


def _mouth_cavity(landmarks: np.ndarray, size: int, fov_deg: float, depth_px: np.ndarray, face: F.FaceFrame,
                  stride: int):
    """Splats of a dark mouth interior with an upper teeth row, just behind the lips."""
    xy = landmarks[:, :2]
    unit = face.face_height
    left, right = xy[F.MOUTH_LEFT], xy[F.MOUTH_RIGHT]
    top = float(xy[list(F.LIPS_INNER_UPPER), 1].min())
    bottom = float(xy[list(F.LIPS_INNER_LOWER), 1].max()) + 0.16 * unit
    step = max(1.0, float(stride))
    xs = np.arange(right[0] + 0.1 * (left[0] - right[0]), left[0] - 0.1 * (left[0] - right[0]), step)
    ys = np.arange(top, bottom, step)
    uu, vv = np.meshgrid(xs + 0.5 * step, ys + 0.5 * step)
    u, v = uu.ravel(), vv.ravel()
    centre_x = 0.5 * (left[0] + right[0])
    half = 0.5 * (left[0] - right[0])
    # An ellipse: the mouth opening is narrower than the lips at its top and bottom.
    keep = ((u - centre_x) / (0.9 * half)) ** 2 + ((v - top) / (bottom - top)) ** 2 <= 1.0
    u, v = u[keep], v[keep]
    pixels = np.clip(np.round(np.stack([u, v], 1) - 0.5).astype(int), 0, size - 1)
    # Behind whatever surface covers it (lips, teeth, chin), so it shows only through an open mouth.
    depth = depth_px[pixels[:, 1], pixels[:, 0]] + max(0.05 * unit, 3.0 * stride)
    colors = np.tile(np.array([0.16, 0.05, 0.06]), (len(u), 1))
    teeth = v < top + 0.045 * unit
    colors[teeth] = np.array([0.86, 0.83, 0.78])
    colors = colors * (1 - 0.35 * ((u - centre_x) / max(half, 1.0)) ** 2)[:, None]
    points = _pixels_to_world(u, v, depth, size, fov_deg)
    spacing = 2.0 * step / size * SURFEL_SIGMA * 1.6
    scales = np.tile([spacing, spacing, spacing * 0.2], (len(u), 1))
    lower = (v > float(xy[list(F.LIPS_INNER_LOWER), 1].mean())).astype(np.float64)
    return points, colors, scales, pixels, depth, lower
