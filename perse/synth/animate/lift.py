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
  when the jaw opens or the lips funnel; closed upper eyelids coloured from the clip's own lid skin
  with a lash line, which a blink slides down over its eye; and the top of each eyeball (iris and
  white, coloured from the eye's own pixels), which eyeWide uncovers.
- Expressions are displacement fields, linear in the expression vector (perse.synth.animate.fields:
  the jaw's rotation, landmark moves spread over nearby pixels, cuts where the lips or a lid open);
  the layers take their own share of each (the interior follows the lips' reshaping and the jaw,
  the lids their blink, the eyeballs nothing).

Per clip only colours and opacities change (the edited portrait and its matte). Frames render many
per call through perse.core.render (`gaussians`, the default on CUDA: gsplat), whose colours are
corrected so the frontal neutral render reproduces the input (a few residual iterations: each pixel's
splat also bleeds into its neighbours), or through the forward splatter in splat.py (`splat`, the
default on CPU, where the general compositor is ~50x slower for this scene).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from perse.core import camera as cam
from perse.dataset import EXPRESSION_NAMES
from perse.errors import PerseError
from perse.synth import face as F
from perse.synth.animate import ClipFrames
from perse.synth.animate.fields import (
    EYE_WIDE,
    JAW_ANGLE,
    JAW_OPENINGS,
    LIP_SHAPES,
    eye_openings,
    jaw_hinge,
    jaw_rotation,
    surface_fields,
)
from perse.synth.animate.motion import MotionScript
from perse.synth.animate.splat import FILL_PASSES, splat

if TYPE_CHECKING:
    from perse.synth.edit.accessories import Accessory

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

# Neighbouring splats further apart than this many frontal spacings (at rest, or once an expression at
# full strength has moved them) get a gap filler between them.
GAP_STRETCH = 1.3
# Neighbours that an expression pulls further apart than this many spacings lie on two sides of a cut
# the face opens along (the lips, an upper lid lifting off the eyeball): a filler there would draw a
# line of skin across the opening.
SPLIT_PULL = 2.0


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
    # Gap fillers serve the CPU splatter, whose splats cover a fixed 2 x 2 pixels; the Gaussian
    # renderer's surfels stretch over the same gaps, and extra splats there only blur the frontal frame.
    fills_gaps: bool = False

    def colors_for(self, image: np.ndarray) -> np.ndarray:
        if self.colors is not None:
            return self.colors
        return image.reshape(-1, 3)[self.sources].mean(axis=1) * self.shade[:, None]

    def opacities_for(self, matte: np.ndarray) -> np.ndarray:
        """Layers coloured from the clip follow its matte (a gap filler on the silhouette is as soft
        as its pixels); fixed-colour layers are solid."""
        if self.sources is None:
            return np.full(len(self.points), 0.999)
        return np.clip(matte.reshape(-1)[self.sources].mean(axis=1), 0, 0.999)


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


@dataclass
class _HeadTensors:
    """Every Gaussian of a lifted portrait (the grid's, then each layer's) on the animator's device."""

    means: torch.Tensor  # (N, 3)
    quats: torch.Tensor  # (N, 4)
    scales: torch.Tensor  # (N, 3)
    fields: torch.Tensor  # (E, N, 3)
    starts: np.ndarray  # (layers,) where each layer's Gaussians begin
    pixels: np.ndarray  # (N, 2) each one's frontal pixel (LiftAnimator._frontal_pixels)


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
        self.geometry = build_geometry(np.asarray(portrait.landmarks, np.float64), portrait.image, self.fov_deg,
                                       self.stride)
        self.K = cam.intrinsics(self.size, self.fov_deg)
        # Every clip and accessory look of a face selects from the same Gaussians, converted to tensors
        # once (`_head_tensors`); the parametric editor draws accessory looks with one animator from
        # several threads, so that first conversion holds this animator's lock.
        self._head: _HeadTensors | None = None
        self._building = threading.Lock()

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
        layers = [(layer, layer.opacities_for(matte) > MIN_ALPHA) for layer in self.geometry.layers]
        points = np.concatenate([self.geometry.points[keep]] + [layer.points[shown] for layer, shown in layers])
        colors = np.concatenate([colors] + [layer.colors_for(image)[shown] for layer, shown in layers])
        return points.astype(np.float32), colors.astype(np.float32)

    def _float(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=self.device)

    def _frontal(self) -> np.ndarray:
        return cam.head_pose_viewmat(self.fov_deg, 0.0, 0.0, 0.0, self.pivot)

    def _frontal_pixels(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) for each world point the top-left (column, row) of the 2 x 2 pixels the splatter draws it
        into at the frontal neutral frame, clipped to the image."""
        uv = cam.project(np.asarray(points, np.float64), self._frontal(), self.K)[:, :2]
        return np.clip(np.floor(uv - 0.5), 0, self.size - 1).astype(np.int64)

    def _head_tensors(self) -> _HeadTensors:
        with self._building:
            if self._head is None:
                geo = self.geometry
                points = np.concatenate([geo.points] + [layer.points for layer in geo.layers])
                layer_quats = np.tile([1.0, 0, 0, 0], (len(points) - len(geo.points), 1))
                self._head = _HeadTensors(
                    self._float(points), self._float(np.concatenate([geo.quats, layer_quats])),
                    self._float(np.concatenate([geo.scales] + [layer.scales for layer in geo.layers])),
                    self._float(np.concatenate([geo.fields] + [layer.fields for layer in geo.layers], axis=1)),
                    np.cumsum([len(geo.points)] + [len(layer.points) for layer in geo.layers])[:-1],
                    self._frontal_pixels(points))
            return self._head

    def _selection(self, image: np.ndarray, matte: np.ndarray):
        """The Gaussians that exist under `matte`: their indices into `_head_tensors()` (the grid's, then
        each drawn layer's) and opacities, the grid splats' colours from `image`, and each drawn layer
        with its members shown."""
        starts = self._head_tensors().starts
        colors, opacity, keep = self.splats(image, matte)
        drawn = [(layer, start) for layer, start in zip(self.geometry.layers, starts)
                 if self.renderer == "splat" or not layer.fills_gaps]
        layer_opacities = [layer.opacities_for(matte) for layer, _ in drawn]
        shown = [np.flatnonzero(o > MIN_ALPHA) for o in layer_opacities]
        index = np.concatenate([keep] + [start + members for (_, start), members in zip(drawn, shown)])
        opacities = np.concatenate([opacity] + [o[members] for o, members in zip(layer_opacities, shown)])
        return index, opacities, colors, [(layer, members) for (layer, _), members in zip(drawn, shown)]

    def _tensors(self, image: np.ndarray, matte: np.ndarray):
        head = self._head_tensors()
        index, opacities, grid_colors, layers = self._selection(image, matte)
        colors = np.concatenate([grid_colors] + [layer.colors_for(image)[members] for layer, members in layers])
        at = torch.as_tensor(index, device=self.device)
        return (head.means[at], head.fields[:, at], head.quats[at], head.scales[at], self._float(opacities),
                self._float(colors), len(grid_colors))

    def _render(self, means, fields, quats, scales, opacities, colors, viewmats, expressions, surfaces=None,
                overlay=None):
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
            rgb, alpha = splat(moved, colors, opacities, vm, K, self.size, background, thickness, surfaces, overlay)
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
        frontal = self._frontal()[None]
        neutral = np.zeros((1, len(EXPRESSION_NAMES)))
        weight = opacities[:n_grid, None]
        for _ in range(COLOR_FIT_ITERATIONS):
            out = self._render(means, fields, quats, scales, opacities, colors, frontal, neutral).rgb[0]
            residual = (target - out)[rows_t, cols_t]
            colors = colors.clone()
            colors[:n_grid] = (colors[:n_grid] + FIT_STEP * residual * weight).clamp(0, 1)
        return colors

    def _with_accessory(self, means, fields, quats, scales, opacities, colors, accessory: "Accessory | None"):
        """The lifted head plus the accessory's Gaussians, rigidly attached (no expression field), as the
        splatter's second surface; lenses are its see-through overlay."""
        head = torch.zeros(len(means), dtype=torch.long, device=self.device)
        if accessory is None or not len(accessory):
            return means, fields, quats, scales, opacities, colors, None, None
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=self.device)  # noqa: E731
        n = len(accessory)
        return (torch.cat([means, t(accessory.means)]),
                torch.cat([fields, torch.zeros(fields.shape[0], n, 3, device=self.device)], 1),
                torch.cat([quats, t(accessory.quats)]), torch.cat([scales, t(accessory.scales)]),
                torch.cat([opacities, t(accessory.opacities).clamp(0, 0.999)]), torch.cat([colors, t(accessory.colors)]),
                torch.cat([head, torch.ones(n, dtype=torch.long, device=self.device)]),
                torch.cat([torch.zeros_like(head, dtype=torch.bool),
                           torch.as_tensor(accessory.translucent, dtype=torch.bool, device=self.device)]))

    @torch.no_grad()
    def animate(self, image: np.ndarray, matte: np.ndarray, script: MotionScript,
                accessory: "Accessory | None" = None) -> ClipFrames:
        """With an `accessory` (perse.synth.edit.accessories) the head is lifted from the portrait under
        it (`accessory.under_image`, `under_matte`) and the accessory drawn with it in one scene;
        `image` is then what frame 0 shows, head and accessory together."""
        image = np.asarray(image, np.float32)
        matte = np.asarray(matte, np.float32)
        if image.shape != (self.size, self.size, 3) or matte.shape != (self.size, self.size):
            raise PerseError(f"lift animator: expected an image ({self.size}, {self.size}, 3) and matte "
                             f"({self.size}, {self.size}), got {image.shape} and {matte.shape}")
        if accessory is not None:
            image, matte = accessory.under_image, accessory.under_matte
        means, fields, quats, scales, opacities, colors, n_grid = self._tensors(image, matte)
        if COLOR_FIT_ITERATIONS and self.renderer == "gaussians":
            colors = self._fit_colors(means, fields, quats, scales, opacities, colors, n_grid, image, matte)
        *scene, surfaces, overlay = self._with_accessory(means, fields, quats, scales, opacities, colors, accessory)
        viewmats = script.viewmats()
        images, alphas = [], []
        for start in range(0, len(script), self.batch):
            part = slice(start, start + self.batch)
            out = self._render(*scene, viewmats[part], script.expressions[part], surfaces, overlay)
            images.append(out.rgb.clamp(0, 1).cpu().numpy())
            alphas.append(out.alpha.clamp(0, 1).cpu().numpy())
        return ClipFrames(np.concatenate(images), np.concatenate(alphas), viewmats, script.expressions.copy(),
                          self.project_landmarks(viewmats, script.expressions))

    @torch.no_grad()
    def accessory_part(self, accessory: "Accessory") -> tuple[np.ndarray, np.ndarray]:
        """The accessory's part of the frontal neutral frame it is drawn in with the head lifted from
        `accessory.under_image` / `under_matte`: its premultiplied colour (S, S, 3) and the share of each
        pixel it covers (S, S). The render is linear in the colours, so drawing every head Gaussian black
        leaves the accessory's contribution alone (the head still hides what lies behind it), and drawing
        the accessory white as well measures its share. The splatter draws only the head Gaussians near
        the accessory (`_near`): the others would add black where its part is zero."""
        head = self._head_tensors()
        index, opacities, _, _ = self._selection(accessory.under_image, accessory.under_matte)
        if self.renderer == "splat":
            pixels = head.pixels[index]
            near = self._near(accessory)[pixels[:, 1], pixels[:, 0]]
            index, opacities = index[near], opacities[near]
        at, n = torch.as_tensor(index, device=self.device), len(index)
        # The frontal neutral frame moves nothing: no expression controls, so no fields to gather.
        still = torch.zeros(0, n, 3, device=self.device)
        black = torch.zeros(n, 3, device=self.device)
        *scene, colors, surfaces, overlay = self._with_accessory(head.means[at], still, head.quats[at], head.scales[at],
                                                                 self._float(opacities), black, accessory)
        viewmats = self._frontal()[None]
        background = torch.tensor(self.background, device=self.device)

        def draw(all_colors: torch.Tensor) -> torch.Tensor:
            out = self._render(*scene, all_colors, viewmats, np.zeros((1, 0)), surfaces, overlay)
            return out.rgb[0] - (1 - out.alpha[0, ..., None]) * background

        own, share = draw(colors), draw(torch.cat([colors[:n], torch.ones_like(colors[n:])])).mean(-1)
        return own.cpu().numpy(), share.clamp(0, 1).cpu().numpy()

    def _near(self, accessory: "Accessory") -> np.ndarray:
        """(S, S) bool: the frontal pixels (`_frontal_pixels`) from which a head Gaussian can change the
        accessory's part. The splatter draws a Gaussian into the 2 x 2 pixels from that one, then fills
        holes from their 3 x 3 neighbourhood FILL_PASSES times: the accessory shows up to FILL_PASSES
        pixels beyond its own, and what it shows there depends on the pixels up to FILL_PASSES further,
        which the Gaussians one pixel further still reach. One more pixel for the accessory's projection
        here and one for the head's cover their rounding against the splatter's."""
        reach = 2 * FILL_PASSES + 3
        pixels = self._frontal_pixels(accessory.means)
        footprint = np.zeros((self.size, self.size), np.uint8)
        footprint[pixels[:, 1], pixels[:, 0]] = 1
        return cv2.dilate(footprint, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0

    def project_landmarks(self, viewmats: np.ndarray, expressions: np.ndarray) -> np.ndarray:
        geo = self.geometry
        moved = geo.landmarks[None] + np.einsum("te,enc->tnc", expressions, geo.landmark_fields)
        return np.stack([cam.project(points, vm, self.K)[:, :2] for points, vm in zip(moved, viewmats)])


def build_geometry(landmarks: np.ndarray, image: np.ndarray, fov_deg: float, stride: int = 1) -> HeadGeometry:
    """The lifted surface of the portrait `image` (S, S, 3) with its face `landmarks`; the image only
    decides which of its pixels colour the eyes' whites and irises that eyeWide uncovers."""
    size = image.shape[0]
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
    fields_px = surface_fields(size, landmarks, depth_px, face)
    distance = cam.camera_distance(fov_deg)
    focal = cam.focal_length(size, fov_deg)

    def to_world(field_px: np.ndarray, depth_at: np.ndarray) -> np.ndarray:
        z = (distance + depth_at / (size / 2))[..., None]
        return np.concatenate([field_px[..., :2] * z / focal, field_px[..., 2:] / (size / 2)], axis=-1)

    def sampled(u: np.ndarray, v: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Every control's surface field where the points (u, v) at `depth` px lie, in world units."""
        pixels = np.clip(np.round(np.stack([u, v], 1) - 0.5).astype(int), 0, size - 1)
        return np.stack([to_world(f[pixels[:, 1], pixels[:, 0]], depth) for f in fields_px])

    block = lambda f: f.reshape(grid, stride, grid, stride, 3).mean(axis=(1, 3)).reshape(-1, 3)  # noqa: E731
    fields = np.stack([block(to_world(f, depth_px)) for f in fields_px])

    # Landmarks: their own depth on the same surface; fields sampled at their pixels.
    xy = landmarks[:, :2]
    lm_depth = depth_px[np.clip(np.round(xy[:, 1] - 0.5).astype(int), 0, size - 1),
                        np.clip(np.round(xy[:, 0] - 0.5).astype(int), 0, size - 1)]
    lm_world = _pixels_to_world(xy[:, 0], xy[:, 1], lm_depth, size, fov_deg)
    lm_fields = sampled(xy[:, 0], xy[:, 1], lm_depth)

    column = EXPRESSION_NAMES.index
    hinge = jaw_hinge(landmarks, depth_px, face)
    layers = [_gap_fillers(points, fields.reshape(len(fields_px), grid, grid, 3), size, stride)]
    for u, v, depth, colors, on_jaw in _mouth_interior(landmarks, size, depth_px, face, stride):
        fields_layer = sampled(u, v, depth)
        # The interior, hidden behind the lips, follows their reshaping but not the eyes' and brows'
        # fields; the openings carry the lower teeth and tongue with the jaw, rigidly, while the upper
        # teeth and the cavity stay with the skull.
        for index, name in enumerate(EXPRESSION_NAMES):
            if name not in LIP_SHAPES:
                fields_layer[index] = 0.0
        if on_jaw:
            for name, share in JAW_OPENINGS.items():
                fields_layer[column(name)] = to_world(share * JAW_ANGLE * jaw_rotation(v, depth, hinge), depth)
        layers.append(Layer(_pixels_to_world(u, v, depth, size, fov_deg), _layer_scales(len(u), size, stride),
                            fields_layer, colors=colors))
    lids = _eyelids(landmarks, size, depth_px, face, stride)
    lid_fields = sampled(lids.u, lids.v, lids.depth)
    for side in ("left", "right"):
        lid_fields[column(f"eyeBlink{side.capitalize()}")] = to_world(lids.blink * (lids.sides == side)[:, None],
                                                                      lids.depth)
    lid_fields[column("eyeWide")] = to_world(lids.widen, lids.depth)
    layers.append(Layer(_pixels_to_world(lids.u, lids.v, lids.depth, size, fov_deg),
                        _layer_scales(len(lids.u), size, stride), lid_fields, sources=lids.sources, shade=lids.shade))
    u, v, depth, sources, shade = _sclera(landmarks, image, depth_px, face, stride)
    # The eyeballs move with no control: the lids and the skin move over them.
    layers.append(Layer(_pixels_to_world(u, v, depth, size, fov_deg), _layer_scales(len(u), size, stride),
                        np.zeros((len(fields_px), len(u), 3)), sources=sources, shade=shade))

    pivot = _pixels_to_world(np.array([cx]), np.array([cy]), np.array([cz]), size, fov_deg)[0]
    return HeadGeometry(grid, stride, points.reshape(-1, 3), quats, scales, fields, layers, lm_world, lm_fields, pivot)


def _gap_fillers(points: np.ndarray, fields: np.ndarray, size: int, stride: int) -> Layer:
    """Extra splats at the corners between grid splats wherever the surface will stretch: where it is
    steep at rest (nose sides, jaw and neck, the head's outline: a turned head magnifies them) or where
    an expression at full strength stretches the skin (mouth corners, the chin of an opening jaw). One splat
    per pixel leaves holes there that show the background or the mouth interior; a corner splat takes
    the mean position, motion, colour and matte of its four pixels, halving the spacing."""
    spacing = 2.0 * stride / size
    step_x = np.linalg.norm(np.diff(points, axis=1), axis=-1)  # (G, G-1)
    step_y = np.linalg.norm(np.diff(points, axis=0), axis=-1)  # (G-1, G)
    pull_x = np.linalg.norm(np.diff(fields, axis=2), axis=-1).max(0)
    pull_y = np.linalg.norm(np.diff(fields, axis=1), axis=-1).max(0)
    longest = np.maximum.reduce([step_x[:-1] + pull_x[:-1], step_x[1:] + pull_x[1:],
                                 step_y[:, :-1] + pull_y[:, :-1], step_y[:, 1:] + pull_y[:, 1:]])
    pulled = np.maximum.reduce([pull_x[:-1], pull_x[1:], pull_y[:, :-1], pull_y[:, 1:]])
    rows, cols = np.nonzero((longest > GAP_STRETCH * spacing) & (pulled <= SPLIT_PULL * spacing))
    corners = np.stack([rows, cols, rows + 1, cols + 1])
    cells = [(corners[0], corners[1]), (corners[0], corners[3]), (corners[2], corners[1]), (corners[2], corners[3])]
    # Each cell's colour comes from the pixel at its block's centre.
    sources = np.stack([(r * stride + stride // 2) * size + c * stride + stride // 2 for r, c in cells], 1)
    return Layer(np.mean([points[r, c] for r, c in cells], axis=0), _layer_scales(len(rows), size, stride),
                 np.mean([fields[:, r, c] for r, c in cells], axis=0), sources=sources, shade=np.ones(len(rows)),
                 fills_gaps=True)


def _layer_scales(count: int, size: int, stride: int) -> np.ndarray:
    """Flat discs a little wider than a grid splat, so a layer on a pixel grid has no gaps."""
    spacing = 2.0 * max(1.0, float(stride)) / size * SURFEL_SIGMA * 1.6
    return np.tile([spacing, spacing, spacing * 0.2], (count, 1))


def _behind(face: F.FaceFrame, stride: int, fraction: float) -> float:
    """A depth offset in pixels that hides a layer behind the surface: `fraction` of the face height,
    and always beyond the CPU splatter's surface thickness (1.5 grid spacings)."""
    return max(fraction * face.face_height, 2.5 * stride)


def _mouth_interior(landmarks: np.ndarray, size: int, depth_px: np.ndarray, face: F.FaceFrame, stride: int):
    """Two layers of the mouth interior, each (u, v, depth px, colours, rides the jaw): the skull's part
    (upper teeth, the dark cavity) and the jaw's (lower teeth, tongue), laid out behind the lips at rest.

    Around the lip seam both teeth rows overlap at rest; opening the jaw by JAW_ANGLE carries the lower
    row down with the lower lip, so the opening shows upper teeth, dark cavity, lower teeth."""
    xy = landmarks[:, :2]
    unit = face.face_height
    left, right = xy[F.MOUTH_LEFT], xy[F.MOUTH_RIGHT]
    seam = (xy[list(F.LIPS_INNER_UPPER)] + xy[list(F.LIPS_INNER_LOWER)]) / 2
    order = np.argsort(seam[:, 0])
    centre_x, half = 0.5 * (left[0] + right[0]), max(0.5 * (left[0] - right[0]), 1.0)
    step = max(1.0, float(stride))
    # Out to the corners (the opening's ellipse below trims it there): the lips part right up to them,
    # and an interior that stopped short showed the background in each corner of an open mouth.
    xs = np.arange(right[0] - 0.03 * (left[0] - right[0]), left[0] + 0.03 * (left[0] - right[0]), step) + 0.5 * step
    # Down to about the lower lip's drop at full strength: any deeper would only show through gaps.
    top, bottom = float(seam[:, 1].min()) - 0.06 * unit, float(seam[:, 1].max()) + 0.15 * unit
    uu, vv = np.meshgrid(xs, np.arange(top, bottom, step) + 0.5 * step)
    u, v = uu.ravel(), vv.ravel()
    below_seam = v - np.interp(u, seam[order, 0], seam[order, 1])
    across = (u - centre_x) / half
    # The opening is an ellipse, narrower than the lips towards its bottom.
    keep = across ** 2 + (np.clip(below_seam, 0, None) / (bottom - float(seam[:, 1].max()))) ** 2 <= 1.0
    u, v, below_seam, across = u[keep], v[keep], below_seam[keep], across[keep]
    surface = depth_px[np.clip(v.astype(int), 0, size - 1), np.clip(u.astype(int), 0, size - 1)]
    # Teeth: about 9 % of the face height wide near the middle, with darker gaps between them, shorter
    # and darker towards the mouth corners.
    tooth = np.abs((across * half / (0.09 * unit) + 0.5) % 1 - 0.5)
    gaps = np.where(tooth > 0.42, 0.72, 1.0)
    corner = np.clip(1 - 0.45 * across ** 2, 0, 1)
    enamel = np.array([0.9, 0.87, 0.8]) * (gaps * corner)[:, None]
    cavity = np.array([0.14, 0.04, 0.05]) * (1 - 0.4 * across ** 2)[:, None]
    tongue = np.array([0.62, 0.26, 0.28]) * corner[:, None]
    teeth_height = 0.05 * unit * np.sqrt(np.clip(1 - across ** 2, 0.1, 1))
    skull = below_seam >= -0.06 * unit
    upper_teeth = skull & (below_seam < 0.3 * teeth_height)
    skull_colors = np.where(upper_teeth[:, None], enamel, cavity)
    # The cavity lies deeper than the open jaw's lips and teeth are carried back.
    skull_depth = surface + np.where(upper_teeth, _behind(face, stride, 0.03), _behind(face, stride, 0.12))
    jaw = (below_seam >= -0.5 * teeth_height) & (below_seam < 0.14 * unit)
    lower_teeth = below_seam < 0.7 * teeth_height
    jaw_colors = np.where(lower_teeth[:, None], enamel * 0.93, tongue)
    jaw_depth = surface + np.where(lower_teeth, _behind(face, stride, 0.04), _behind(face, stride, 0.055))
    return [(u[skull], v[skull], skull_depth[skull], skull_colors[skull], False),
            (u[jaw], v[jaw], jaw_depth[jaw], jaw_colors[jaw], True)]


@dataclass
class Eyelids:
    """The closed upper lids' Gaussians: positions (u, v px, depth px), which eye each belongs to, its
    displacement (px) when its eye blinks and when the eyes widen, and its colour source pixels and shade."""

    u: np.ndarray
    v: np.ndarray
    depth: np.ndarray
    sides: np.ndarray  # "right" / "left", the person's
    blink: np.ndarray  # (M, 3)
    widen: np.ndarray  # (M, 3)
    sources: np.ndarray  # (M, 3)
    shade: np.ndarray


def _eyelids(landmarks: np.ndarray, size: int, depth_px: np.ndarray, face: F.FaceFrame, stride: int) -> Eyelids:
    """At rest each lid is folded away behind the skin just above its eye (behind the sclera layer
    too); a blink slides it down by the eye's opening (plus a pixel, to meet the lower lid) and brings
    it in front of the eyeball. It takes its colour from the skin between the eye and the brow (the
    middle of that band, clear of lashes and brow hair), darkened slightly, with a dark lash line along
    its closing edge. Widened eyes stretch it up with their lifted lid line, so that a blink still
    closes them."""
    xy = landmarks[:, :2]
    step = max(1.0, float(stride))
    columns = np.arange(0.0, size, step) + 0.5 * step
    brows = {}
    for side, ids in (("right", F.RIGHT_BROW_LOWER), ("left", F.LEFT_BROW_LOWER)):
        order = np.argsort(xy[list(ids), 0])
        brows[side] = (xy[list(ids), 0][order], xy[list(ids), 1][order])
    us, vs, depths, sides, blink, widen, sources, shades = [], [], [], [], [], [], [], []
    back, forward = _behind(face, stride, 0.04) + 2.0 * step, _behind(face, stride, 0.015)
    for side, top, _, opening, inside in eye_openings(landmarks, columns):
        brow = np.interp(columns, *brows[side])
        for column in np.flatnonzero(inside & (opening > 0.2)):
            x, lid, height = columns[column], top[column], opening[column] + 1.0
            # Rows at half the grid spacing: widened eyes stretch the lid by up to 1 + EYE_WIDE, and
            # a blink then must still close it without gaps.
            rows = np.arange(lid - height, lid, step / 2) + 0.25 * step
            band = max(lid - brow[column], 2.0)
            picks = lid - band * np.array([0.3, 0.45, 0.6])
            source = (np.clip(picks.astype(int), 0, size - 1) * size + np.clip(int(x), 0, size - 1))
            surface = depth_px[int(np.clip(lid, 0, size - 1)), int(np.clip(x, 0, size - 1))]
            for row in rows:
                us.append(x)
                vs.append(row)
                depths.append(surface + back)
                sides.append(side)
                blink.append((0.0, height, -(back + forward)))
                # The top row rises with the lifted lid line, the bottom one (the lash line once closed)
                # stays on the lower lid.
                widen.append((0.0, -EYE_WIDE * opening[column] * (lid - row) / height, 0.0))
                sources.append(source)
                # The lowest row closes last and meets the lower lid: the lash line.
                shades.append(0.45 if row > lid - step else 0.9)
    as_moves = lambda moves: np.array(moves, np.float64).reshape(-1, 3)  # noqa: E731
    return Eyelids(np.array(us), np.array(vs), np.array(depths), np.array(sides), as_moves(blink), as_moves(widen),
                   np.array(sources, int).reshape(-1, 3), np.array(shades))


def _iris(landmarks: np.ndarray, side: str) -> tuple[np.ndarray, float]:
    """Centre (x, y) and radius in pixels of one iris: mediapipe's refined iris landmarks, or for a
    468-point mesh, the eye's centre and a typical share of its width."""
    xy = landmarks[:, :2]
    if len(xy) >= 478:
        first = 468 if side == "right" else 473
        centre = xy[first]
        return centre, float(np.linalg.norm(xy[first + 1:first + 5] - centre, axis=1).mean())
    eye = xy[list(F.RIGHT_EYE if side == "right" else F.LEFT_EYE)]
    return eye.mean(axis=0), 0.22 * float(np.ptp(eye[:, 0]))


def _eye_pixels(landmarks: np.ndarray, image: np.ndarray, side: str) -> tuple[list[int], list[int]]:
    """Flat indices of three pixels of one eye's white and three of its iris in `image`, by brightness
    rank within the eye's opening: the whites among its brighter pixels (short of the catchlight), the
    iris near its circle's median (clear of pupil and catchlight)."""
    size = image.shape[0]
    outline = np.zeros((size, size), np.uint8)
    eye = landmarks[list(F.RIGHT_EYE if side == "right" else F.LEFT_EYE), :2]
    cv2.fillConvexPoly(outline, np.round(eye - 0.5).astype(np.int32), 1)
    (cx, cy), radius = _iris(landmarks, side)
    uu, vv = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    in_iris = (uu - cx) ** 2 + (vv - cy) ** 2 < radius ** 2
    luma = np.asarray(image, np.float64).mean(-1).ravel()

    def ranked(mask: np.ndarray, quantiles: tuple[float, ...]) -> list[int]:
        pixels = np.flatnonzero(mask)
        if len(pixels) == 0:  # an eye below a pixel's height: its landmarks' own pixel
            pixels = np.flatnonzero(outline) if outline.any() else np.array([int(cy) * size + int(cx)])
        order = pixels[np.argsort(luma[pixels], kind="stable")]
        return [int(order[min(int(q * len(order)), len(order) - 1)]) for q in quantiles]

    opening = outline > 0
    white = opening & ~in_iris
    return (ranked(white if white.sum() >= 3 else opening, (0.75, 0.8, 0.85)),
            ranked(opening & in_iris, (0.4, 0.5, 0.6)))


def _sclera(landmarks: np.ndarray, image: np.ndarray, depth_px: np.ndarray, face: F.FaceFrame, stride: int):
    """The top of each eyeball, which the upper lid covers at rest and eyeWide uncovers: (u, v, depth px,
    colour source pixels, shade). Inside the iris's circle it takes the iris's colour, elsewhere the
    white's, shadowed under the lid."""
    size = image.shape[0]
    step = max(1.0, float(stride))
    columns = np.arange(0.0, size, step) + 0.5 * step
    us, vs, depths, sources, shades = [], [], [], [], []
    depth_behind = _behind(face, stride, 0.02)
    for side, top, _, opening, inside in eye_openings(landmarks, columns):
        (cx, cy), radius = _iris(landmarks, side)
        white, iris = _eye_pixels(landmarks, image, side)
        for column in np.flatnonzero(inside & (opening > 0.2)):
            x, lid = columns[column], top[column]
            reveal = EYE_WIDE * opening[column] + 1.0
            surface = depth_px[int(np.clip(lid, 0, size - 1)), int(np.clip(x, 0, size - 1))]
            for row in np.arange(lid - reveal, lid + 1.0, step) + 0.5 * step:
                in_iris = (x - cx) ** 2 + (row - cy) ** 2 < radius ** 2
                us.append(x)
                vs.append(row)
                depths.append(surface + depth_behind)
                sources.append(iris if in_iris else white)
                shades.append(0.85 if row < lid - 0.6 * reveal else 1.0)
    return (np.array(us), np.array(vs), np.array(depths), np.array(sources, int).reshape(-1, 3), np.array(shades))
