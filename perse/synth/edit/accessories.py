"""Accessories in 3D: hats, glasses, earrings and headphones as Gaussians fitted to the lifted head.

A painted accessory becomes a relief on the lifted portrait and smears when the head turns. Here each
accessory is procedural geometry built in world space around the lift animator's head
(perse.synth.animate.lift.HeadGeometry: the 478 world landmarks, the head pivot, the per-pixel
surface) and sampled into surfel Gaussians a fraction of a pixel apart, so the same scene renders at
every head pose: the animator draws them with the lifted portrait in one depth-tested scene, so hair,
ears and the head itself hide what lies behind them.

Every accessory also returns the portrait *under* it: the head darkened by contact shadows (ambient
occlusion where the accessory comes close, and the cast shadow of a brim or visor under the estimated
light), with the matte cleared where the accessory hides the head (the hair a hat covers would poke
through the crown as soon as the head turns). Surfaces are shaded by the portrait's own lighting
(perse.synth.lighting), with a baked specular highlight on glossy materials.

Spec fields (catalog.py holds the values; lengths in face heights unless said otherwise). All are
numeric, so two looks of a category interpolate as ONE accessory whose shape morphs:
- hat: `color`; `low` rim height at the front (0 = hairline, 1 = brows); `height` crown height above
  the rim (the crown always covers the hair); `squareness` crown profile exponent (2 = dome, 4 = flat
  top, straight sides); `brim` all-round brim width (head widths); `visor` front peak length; `knit`
  rib texture and folded cuff; `panels` cap seams and top button; `band` darker hat band; `pinch` the
  fedora's top crease; `tilt` how much lower the rim sits at the back than at the front; `brim_scale`
  multiplies brim and visor (a continuous range that keeps each hat's structure).
- glasses: `round`, `aspect`, `droop`, `lift`, `size` (lens width / eye distance) shape the lens
  outline (see `lens_radius`); `frame` rim thickness; `frame_color`; `tint`, `tint_opacity` lens colour.
- earrings: `hoop` ring radius, `stud` bead radius, `drop` pendant length (0 = none of that part), all
  times `scale`; `color` metal, `gem` the pendant's stone.
- headphones: `cup` ear-cup radius, `band` headband width, `color` shell, `cushion` pad colour.

`grow(kind, spec, t)` is the look at strength t: the accessory's size parameters grow from 0 (a hat's
crown covers the head from the top down and its brim extends), never its opacity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from perse.core import camera as cam
from perse.synth import face as F
from perse.synth.catalog import ACCESSORY_KINDS
from perse.synth.lighting import Lighting

if TYPE_CHECKING:
    from perse.ingest.portrait import Portrait
    from perse.synth.animate.lift import HeadGeometry

KINDS = ACCESSORY_KINDS
# Surfel spacing in frontal pixels: the CPU splatter draws each surfel into the 2 x 2 pixels around it,
# so a surface sampled a little finer than a pixel renders without gaps at any pose (turning only
# brings samples closer on screen).
SPACING_PX = 0.9
# Surfaces facing further than this from the camera (z component of the normal) are never seen within
# the motion script's +-35 deg yaw and +-20 deg pitch: not sampled.
HIDDEN_FACING = 0.7
# Colour of the (unlit) specular highlight on glossy materials, and its sharpness.
SPECULAR_EXPONENT = 40.0
# Contact shadows: how dark the head gets right against the accessory, and the reach of ambient
# occlusion around it (face heights).
CONTACT_DARKNESS = 0.45
CONTACT_REACH = 0.05
CAST_DARKNESS = 0.4


@dataclass
class Accessory:
    """An accessory in the head's world space at rest, rigidly attached to the head."""

    means: np.ndarray  # (N, 3)
    quats: np.ndarray  # (N, 4) wxyz
    scales: np.ndarray  # (N, 3)
    opacities: np.ndarray  # (N,)
    colors: np.ndarray  # (N, 3) shaded sRGB
    translucent: np.ndarray  # (N,) bool: see-through surfaces (lenses), composited over what lies behind
    under_image: np.ndarray  # (S, S, 3) the portrait under the accessory, contact shadows applied
    under_matte: np.ndarray  # (S, S) its matte, zero where the accessory hides the head

    def __len__(self) -> int:
        return len(self.means)


@dataclass
class _Surface:
    points: np.ndarray  # (N, 3)
    normals: np.ndarray  # (N, 3) unit, outward
    albedo: np.ndarray  # (N, 3) sRGB
    opacity: float = 1.0
    gloss: float = 0.0
    translucent: bool = False
    # How much it darkens the head nearby (ambient occlusion), in [0, 1]: a part narrower than the
    # reach of contact shadows hides a proportionally smaller share of the sky, so a thin frame shades
    # faintly and a part growing from nothing shades from nothing; a see-through lens not at all.
    contact: float = 1.0
    # Normals that decide whether a sample can ever face the camera: a knit's ribs tilt the shading
    # normals enough that culling by them would leave a comb of samples on the hat's far side.
    facing: np.ndarray | None = None


class Head:
    """World-space measures of one lifted portrait that accessories are fitted to."""

    def __init__(self, portrait: "Portrait", geometry: "HeadGeometry", lighting: Lighting):
        if geometry.stride != 1:
            raise ValueError("accessories are fitted to the per-pixel surface (stride 1)")
        self.size = portrait.size
        self.fov_deg = float(portrait.fov_deg)
        self.K = cam.intrinsics(self.size, self.fov_deg)
        self.lighting = lighting
        self.face = F.FaceFrame(np.asarray(portrait.landmarks, np.float64))
        self.points = geometry.points.reshape(self.size, self.size, 3)
        self.landmarks = geometry.landmarks
        self.pivot = geometry.pivot
        self.matte = np.asarray(portrait.matte, np.float32)
        self.masks = portrait.masks
        self.unit = float(np.linalg.norm(self.landmarks[F.FOREHEAD_TOP] - self.landmarks[F.CHIN]))
        self.center_x = float(self.landmarks[list(F.FACE_OVAL), 0].mean())
        self.pixel = 2.0 / self.size  # a pixel's width in world units at the face
        self.spacing = SPACING_PX * self.pixel
        self.camera = np.array([0.0, 0.0, -cam.camera_distance(self.fov_deg)])

    def world(self, u: float, v: float, z: float) -> np.ndarray:
        """The world point seen at crop pixel (u, v) at world depth z."""
        depth = cam.camera_distance(self.fov_deg) + z
        return cam.unproject(np.array([[u, v]]), np.array([depth]), cam.frontal_viewmat(self.fov_deg), self.K)[0]

    def surface(self, u: float, v: float) -> np.ndarray:
        """The lifted surface's world point at crop pixel (u, v)."""
        col, row = (int(np.clip(round(c - 0.5), 0, self.size - 1)) for c in (u, v))
        return self.points[row, col]

    def silhouette_top(self) -> float:
        """World y of the person's top (hair included) above the face centre."""
        column = self.matte[:, int(np.clip(self.face.center_x, 0, self.size - 1))] > 0.5
        row = float(np.flatnonzero(column)[0]) if column.any() else self.face.xy[F.FOREHEAD_TOP, 1] - 0.3 * self.face.face_height
        return float(self.world(self.face.center_x, row, self.pivot[2])[1])

    def half_width_at(self, y_world: float) -> float:
        """World half-width of the person's silhouette at height y (0 if it misses the silhouette)."""
        row = int(np.clip(round(self.K[1, 1] * y_world / (cam.camera_distance(self.fov_deg) + self.pivot[2])
                                + self.K[1, 2] - 0.5), 0, self.size - 1))
        columns = np.flatnonzero(self.matte[row] > 0.5)
        if not len(columns):
            return 0.0
        centre = self.face.center_x
        half_px = max(centre - columns.min(), columns.max() + 1 - centre)
        return float(half_px * (cam.camera_distance(self.fov_deg) + self.pivot[2]) / self.K[0, 0])

    def ears(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per side (image left = the person's right, then image right): the ear's top and lobe as crop
        pixels, from the ear mask where it shows the ear, else estimated from the face oval."""
        face, unit = self.face, self.face.face_height
        found = []
        for edge, jaw, sign in ((F.RIGHT_FACE_EDGE, 132, -1.0), (F.LEFT_FACE_EDGE, 361, 1.0)):
            lobe = np.array([face.xy[jaw, 0] + sign * 0.03 * unit,
                             0.5 * (face.xy[edge, 1] + face.xy[jaw, 1]) + 0.06 * unit])
            top = np.array([face.xy[edge, 0] + sign * 0.02 * unit, face.xy[edge, 1] - 0.12 * unit])
            ears = self.masks.get("ears")
            if ears is not None:
                columns = np.arange(self.size)[None, :]
                side = (ears > 0.5) & ((columns - face.center_x) * sign > 0.3 * face.face_width)
                if side.sum() > max(6, (0.02 * unit) ** 2):
                    ys, xs = np.nonzero(side)
                    bottom = ys >= np.percentile(ys, 92)
                    candidate = np.array([xs[bottom].mean(), ys[bottom].mean()]) + 0.5
                    if np.linalg.norm(candidate - lobe) < 0.25 * unit:
                        lobe = candidate
                    upper = ys <= np.percentile(ys, 8)
                    candidate = np.array([xs[upper].mean(), ys[upper].mean()]) + 0.5
                    if np.linalg.norm(candidate - top) < 0.25 * unit:
                        top = candidate
            found.append((top, lobe))
        return found


# --- sampling ----------------------------------------------------------------------------------------

def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    u = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _sheet(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], spacing: float,
           outward: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sample a parametric surface fn(u, v), u, v in [0, 1], every `spacing` world units.

    Returns points (N, 3), unit normals (N, 3) turned towards outward(points), and the (u, v) of each
    sample (materials are painted in surface coordinates)."""
    probe = np.linspace(0, 1, 17)
    grid = fn(*np.meshgrid(probe, probe, indexing="ij"))
    length_u = np.linalg.norm(np.diff(grid, axis=0), axis=-1).sum(axis=0).max()
    length_v = np.linalg.norm(np.diff(grid, axis=1), axis=-1).sum(axis=1).max()
    nu = int(np.clip(np.ceil(length_u / spacing) + 1, 2, 6000))
    nv = int(np.clip(np.ceil(length_v / spacing) + 1, 2, 6000))
    uu, vv = np.meshgrid(np.linspace(0, 1, nu), np.linspace(0, 1, nv), indexing="ij")
    points = fn(uu, vv)
    normals = _unit(np.cross(np.gradient(points, axis=0), np.gradient(points, axis=1)))
    # Rows along u shorter than the longest (towards a crown's top) keep every k-th sample only.
    row_length = np.linalg.norm(np.diff(points, axis=0), axis=-1).sum(axis=0)
    step = np.maximum(1, np.floor(row_length.max() / np.maximum(row_length, 1e-12))).astype(int)
    keep = (np.arange(nu)[:, None] % step[None, :]) == 0
    points, normals, uu, vv = points[keep], normals[keep], uu[keep], vv[keep]
    normals = normals * np.where(np.sum(normals * outward(points), axis=1, keepdims=True) < 0, -1.0, 1.0)
    return points, normals, uu.reshape(-1), vv.reshape(-1)


def _tube(path: np.ndarray, radius: np.ndarray | float, spacing: float, side: np.ndarray | None = None,
          depth_ratio: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A tube of (elliptical) cross-section around a polyline `path` (M, 3): `radius` along `side` (a
    direction per path point, default any perpendicular) and depth_ratio * radius across it."""
    path = np.asarray(path, np.float64)
    radius = np.broadcast_to(np.asarray(radius, np.float64), (len(path),))
    tangent = _unit(np.gradient(path, axis=0))
    if side is None:
        helper = np.where(np.abs(tangent[:, 1:2]) < 0.9, np.array([[0.0, 1.0, 0.0]]), np.array([[1.0, 0.0, 0.0]]))
        side = np.cross(tangent, helper)
    side = _unit(side - np.sum(side * tangent, axis=1, keepdims=True) * tangent)
    across = np.cross(tangent, side)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    count = int(np.clip(np.ceil(arc[-1] / spacing) + 1, 2, 20000))
    along = np.linspace(0, arc[-1], count)
    at = lambda a: np.stack([np.interp(along, arc, a[:, k]) for k in range(a.shape[1])], 1)  # noqa: E731
    centre, side, across, r = at(path), _unit(at(side)), _unit(at(across)), np.interp(along, arc, radius)
    around = int(np.clip(np.ceil(2 * np.pi * r.max() * max(1.0, depth_ratio) / spacing), 6, 400))
    angle = np.linspace(0, 2 * np.pi, around, endpoint=False)
    cos, sin = np.cos(angle)[None, :, None], np.sin(angle)[None, :, None]
    rr = r[:, None, None]
    points = centre[:, None] + rr * cos * side[:, None] + depth_ratio * rr * sin * across[:, None]
    normals = _unit(cos * side[:, None] + sin * across[:, None] / depth_ratio)
    return points.reshape(-1, 3), normals.reshape(-1, 3)


def _ellipsoid(center: np.ndarray, radii: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    def fn(u, v):
        theta, phi = np.pi * u, 2 * np.pi * v
        unit = np.stack([np.sin(theta) * np.cos(phi), -np.cos(theta), np.sin(theta) * np.sin(phi)], -1)
        return center + unit * radii

    points, normals, _, _ = _sheet(fn, spacing, lambda p: p - center)
    # The true ellipsoid normal, not the finite-difference one, which degenerates at the poles.
    return points, _unit((points - center) / np.asarray(radii) ** 2)


def _part(head: Head, points: np.ndarray, normals: np.ndarray, albedo: np.ndarray, width: float,
          gloss: float = 0.0) -> _Surface:
    """A solid part `width` world units across. Samples are drawn whole, so a part thinner than a pixel
    (a wire frame, a hoop at a small image size, any part just starting to grow) only covers that
    fraction of the pixels it crosses: drawn see-through, it thickens continuously instead of popping
    in as a pixel-wide line."""
    coverage = float(np.clip(width / head.pixel, 0.0, 1.0))
    return _Surface(points, normals, np.tile(np.asarray(albedo, np.float64), (len(points), 1)), coverage, gloss,
                    translucent=coverage < 1, contact=float(np.clip(width / (CONTACT_REACH * head.unit), 0.0, 1.0)))


# --- the accessories ---------------------------------------------------------------------------------

@dataclass
class _Build:
    surfaces: list[_Surface]
    hidden: np.ndarray | None = None  # (S, S) bool: head pixels the accessory hides
    cast_shadow: np.ndarray | None = None  # (S, S) in [0, 1]: the accessory's cast shadow on the head


def _hat(head: Head, spec: dict[str, Any]) -> _Build:
    unit, face = head.unit, head.face
    lm = head.landmarks
    cover = float(spec["cover"])
    hairline = lm[F.FOREHEAD_TOP]
    brow_y = float(lm[list(F.RIGHT_BROW_UPPER + F.LEFT_BROW_UPPER), 1].min())
    rim_front = float(hairline[1] + float(spec["low"]) * (brow_y - hairline[1]))
    temples = 0.5 * abs(lm[162, 0] - lm[389, 0])
    # Wide hair widens the hat, within reason; a hat never sits narrower than the skull.
    width = float(np.clip(max(1.08 * temples, 1.02 * head.half_width_at(rim_front)), 1.08 * temples, 1.45 * temples))
    depth = 1.22 * width
    forehead = head.surface(face.center_x, float(np.interp(float(spec["low"]), [0, 1],
                                                           [face.xy[F.FOREHEAD_TOP, 1], face.brow_top])))
    gap = (0.012 + 0.02 * float(spec["knit"])) * unit
    z_front = float(forehead[2]) - gap
    z0 = z_front + depth
    cx = head.center_x
    top = min(head.silhouette_top() - gap, rim_front - float(spec["height"]) * unit)
    tilt = float(spec["tilt"]) * unit
    rim_at = lambda z: rim_front + tilt * np.clip((z - z_front) / (2 * depth), 0, 1)  # noqa: E731
    p = max(float(spec["squareness"]), 1.5)
    knit, panels, pinch = float(spec["knit"]), float(spec["panels"]), float(spec["pinch"])
    ribs = 56
    color = np.asarray(spec["color"], np.float64)

    def profile(s):
        return np.clip(1 - np.clip(s, 0, 1) ** p, 0, 1) ** (1 / p)

    # The crown's profile is the superellipse r^p + s^p = 1 (r: the rim's scale, s: height up to the
    # top), walked by angle so samples spread evenly up its steep top; a partly grown hat (cover < 1)
    # is the part above s = 1 - cover.
    start = np.arcsin(np.clip(1 - cover, 0, 1) ** (p / 2))

    def crown(u, v, inset=0.0, reach=1.0):
        # u around the head (0 = the front), v from the rim up to the top (or `reach` of the way).
        phi = 2 * np.pi * u - np.pi / 2
        theta = start + (np.pi / 2 - start) * v * reach
        s = np.sin(theta) ** (2 / p)
        bulge = 1 + knit * (0.01 * np.cos(ribs * phi) + 0.035 * _smoothstep(0.26, 0.2, s)) - inset
        r = np.cos(theta) ** (2 / p) * bulge
        z_rim = z0 + depth * np.sin(phi)
        y = rim_at(z_rim) + s * (top - rim_at(z_rim))
        x = cx + width * r * np.cos(phi)
        crease = pinch * 0.07 * unit * np.exp(-((x - cx) / (0.3 * width)) ** 2) * s ** 6
        return np.stack([x, y + crease, z0 + depth * r * np.sin(phi)], -1)

    axis = lambda pts: pts - np.stack([np.full(len(pts), cx), pts[:, 1] + 0.3 * unit, np.full(len(pts), z0)], 1)  # noqa: E731
    points, normals, u, v = _sheet(crown, head.spacing, axis)
    phi = 2 * np.pi * u - np.pi / 2
    s = np.sin(start + (np.pi / 2 - start) * v) ** (2 / p)
    albedo = np.ones(len(points))
    if knit:
        cuff = _smoothstep(0.245, 0.215, s)
        albedo *= 1 - knit * (0.22 * (0.5 - 0.5 * np.cos(ribs * phi)) * (1 - 0.4 * cuff)
                              + 0.3 * np.exp(-((s - 0.23) / 0.012) ** 2))
    if panels:
        # Six panels meet in seams, one down the middle of the front.
        seam = np.mod(phi + np.pi / 2 + np.pi / 6, np.pi / 3) - np.pi / 6
        albedo *= 1 - 0.3 * panels * np.exp(-(seam / 0.02) ** 2) * (s < 0.97)
    albedo *= 1 - 0.55 * float(spec["band"]) * _smoothstep(0.03, 0.05, s) * _smoothstep(0.22, 0.2, s)
    # Felt and cotton are not perfectly even: a faint low-frequency mottle.
    albedo *= 1 + 0.02 * np.sin(9 * phi + 4 * s) * np.sin(13 * s + 3 * phi)
    surfaces = [_Surface(points, normals, color * albedo[:, None], gloss=0.04 * (1 - knit), facing=_unit(axis(points)))]
    # The lining, seen through the opening under the rim when the head turns or tilts.
    points, normals, _, _ = _sheet(lambda u, v: crown(u, v, inset=0.012 + 0.035 * knit, reach=0.4), head.spacing,
                                   lambda pts: -axis(pts))
    surfaces.append(_Surface(points, normals, np.tile(color * 0.45, (len(points), 1))))
    if panels and cover > 0.05:
        button = crown(np.array([0.25]), np.array([1.0]))[0] + np.array([0, -0.012 * unit, 0])
        points, normals = _ellipsoid(button, np.array([0.03, 0.015, 0.03]) * unit * panels, head.spacing)
        surfaces.append(_part(head, points, normals, color * 0.85, 0.06 * unit * panels))

    # Brims: an all-round brim (fedora) and a front visor (cap) share one sheet whose outer edge
    # lies `reach(phi)` beyond the crown's rim; each is two-sided and as thick as felt or cardboard.
    rim_scale = profile(1 - cover)
    brim_len = float(spec["brim"]) * float(spec["brim_scale"]) * 2 * width
    visor_len = float(spec["visor"]) * float(spec["brim_scale"]) * unit

    def front(phi):
        """1 at the middle of the forehead, falling to 0 at 65 deg to either side: where a visor attaches."""
        offset = np.mod(phi + np.pi / 2 + np.pi, 2 * np.pi) - np.pi
        return np.clip(1 - (offset / 1.15) ** 2, 0, 1)

    def reach(phi):
        return brim_len + visor_len * np.sqrt(front(phi))

    thickness = 0.012 * unit

    def brim(lift: float):
        def fn(u, v):
            phi = 2 * np.pi * u - np.pi / 2
            z_rim = z0 + depth * np.sin(phi)
            # A brim extends outwards from the rim; a visor straight forwards.
            out, forward = brim_len * v, visor_len * np.sqrt(front(phi)) * v
            x = cx + (width * rim_scale + out) * np.cos(phi)
            z = z0 + (depth * rim_scale + out) * np.sin(phi) - forward
            rim_y = rim_at(z_rim) + (1 - cover) * (top - rim_at(z_rim))
            # A fedora's brim rolls up at the sides; a visor slopes down and curves down at its sides.
            roll = -0.09 * unit * (out / max(brim_len, 1e-9)) ** 2 * np.cos(phi) ** 2 * (brim_len > 0)
            slope = forward * (0.3 + 0.5 * np.cos(phi) ** 2)
            return np.stack([x, rim_y + roll + slope + lift, z], -1)
        return fn

    if (brim_len + visor_len) * cover > 0.2 * head.spacing:
        for lift, sign, shade in ((-0.5 * thickness, -1.0, 1.0), (0.5 * thickness, 1.0, 0.72)):
            points, normals, u, v = _sheet(brim(lift), head.spacing, lambda pts, sign=sign: np.tile([0.0, sign, 0.0],
                                                                                                     (len(pts), 1)))
            keep = reach(2 * np.pi * u - np.pi / 2) > 0.25 * head.spacing
            surfaces.append(_Surface(points[keep], normals[keep], np.tile(color * shade, (keep.sum(), 1)),
                                     gloss=0.03))
        edge = brim(0.0)(np.linspace(0, 1, 720), np.ones(720))
        edge = edge[reach(2 * np.pi * np.linspace(0, 1, 720) - np.pi / 2) > 0.25 * head.spacing]
        if len(edge) > 1:
            points, normals = _tube(edge, 0.5 * thickness, head.spacing)
            surfaces.append(_part(head, points, normals, color * 0.85, thickness))

    # The crown compresses what it covers: hair and forehead inside it, and hair just beside it, which
    # would otherwise show as slivers on its surface when the head turns (bushier hair stays).
    P = head.points
    rim_here = rim_at(np.clip(P[..., 2], z_front, z_front + 2 * depth))
    height = (rim_here - P[..., 1]) / np.maximum(rim_here - top, 1e-9)
    radial = ((P[..., 0] - cx) / width) ** 2 + ((P[..., 2] - z0) / depth) ** 2
    beside = 1 + 0.15 * np.clip((P[..., 2] - z_front) / depth, 0, 1)  # none in front, where nothing would cover the gap
    hidden = (height >= 1 - cover) & (height <= 1) & (radial < (beside * profile(height)) ** 2) if cover > 0 else None
    rim_here = rim_here + (1 - cover) * (top - rim_here)
    return _Build(surfaces, hidden, _brim_shadow(head, cx, z0, width * rim_scale, depth * rim_scale, reach,
                                                 rim_here, cover))


def _brim_shadow(head: Head, cx: float, z0: float, width: float, depth: float, reach, rim_y: np.ndarray,
                 cover: float) -> np.ndarray | None:
    """Where the light, coming from `head.lighting.direction`, is blocked by a brim or visor."""
    if cover <= 0:
        return None
    # Portraits are lit from the camera's side, and the fit hardly sees depth (every skin normal faces
    # the camera): keep the light in front and above, where a brim's shadow falls on the forehead.
    light = head.lighting.direction
    light = _unit(np.array([light[0], min(light[1], -0.6), min(light[2], -0.5)]))
    P = head.points
    t = (rim_y - P[..., 1]) / light[1]  # along the ray to the brim's height
    hx, hz = P[..., 0] + t * light[0], P[..., 2] + t * light[2]
    phi = np.arctan2((hz - z0) / depth, (hx - cx) / width)
    beyond = np.hypot(hx - cx, hz - z0) - np.hypot(width * np.cos(phi), depth * np.sin(phi))  # past the rim
    length = reach(phi)
    soft = 0.02 * head.unit
    # Only a ray that passes under the brim itself is blocked by it (one that meets the crown starts
    # on the forehead right under the rim, which contact shadows darken); the penumbra widens and the
    # shadow fades with distance from the brim.
    under = _smoothstep(-soft, soft, beyond) * _smoothstep(soft, -soft, beyond - length)
    fade = np.clip(1 - t / np.maximum(2.0 * length, 1e-9), 0, 1)
    return ((t > 0) * under * fade * _smoothstep(0, 0.5 * soft, length)).astype(np.float32)


def lens_radius(phi: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Lens outline in polar form (unit = lens half-width); phi = 0 points away from the nose, + down."""
    n, aspect = float(spec["round"]), float(spec["aspect"])
    c, s = np.abs(np.cos(phi)), np.abs(np.sin(phi))
    radius = (c ** n + (s / aspect) ** n) ** (-1.0 / n)
    outer = np.clip(np.cos(phi), 0, 1)
    radius = radius * (1 + float(spec["droop"]) * np.clip(np.sin(phi), 0, 1) * (0.5 + 0.5 * outer))
    radius = radius * (1 + float(spec["lift"]) * np.clip(-np.sin(phi), 0, 1) * outer ** 2)
    return radius


def _glasses(head: Head, spec: dict[str, Any]) -> _Build:
    unit, lm = head.unit, head.landmarks
    frame = float(spec["frame"]) * unit
    if frame <= 0:
        return _Build([])
    eyes = {side: lm[list(F.RIGHT_EYE if side == "right" else F.LEFT_EYE)].mean(axis=0) for side in ("right", "left")}
    eye_distance = float(np.linalg.norm(eyes["left"][:2] - eyes["right"][:2]))
    half = 0.5 * float(spec["size"]) * eye_distance
    bridge_point = lm[6]
    brows = lm[list(F.RIGHT_BROW_LOWER + F.LEFT_BROW_LOWER)]
    # The lens plane: a vertex distance in front of the eyes, clear of the brow ridge and the nose bridge.
    plane_z = min(float(np.mean([e[2] for e in eyes.values()])) - 0.07 * unit,
                  float(brows[:, 2].min()) - 0.02 * unit, float(bridge_point[2]) - 0.005 * unit)
    cx = head.center_x
    frame_color = np.asarray(spec["frame_color"], np.float64)
    tint, tint_opacity = np.asarray(spec["tint"], np.float64), float(spec["tint_opacity"])
    metal = float(np.mean(frame_color) > 0.55 and frame < 0.016 * unit)
    surfaces = []
    inner_tops, hinges = {}, {}
    for side, sign in (("right", -1.0), ("left", 1.0)):
        centre = eyes[side][:2] + np.array([sign * 0.04 * eye_distance, 0.02 * eye_distance])

        def plane(x, y, centre=centre):
            # Face-form wrap (outer edges further back) and pantoscopic tilt (bottom nearer the cheeks).
            return plane_z + 0.12 * (np.abs(x - cx) - abs(centre[0] - cx)) + 0.12 * (y - centre[1])

        def outline(phi, grow=0.0, centre=centre, plane=plane):
            r = lens_radius(phi, spec) * half + grow
            x = centre[0] + sign * r * np.cos(phi)
            y = centre[1] + r * np.sin(phi)
            return np.stack([x, y, plane(x, y)], -1)

        def lens(u, v, outline=outline, centre=centre, plane=plane):
            edge = outline(2 * np.pi * v)
            x = centre[0] + (edge[..., 0] - centre[0]) * u
            y = centre[1] + (edge[..., 1] - centre[1]) * u
            # A lens bulges forward a little towards its centre.
            return np.stack([x, y, plane(x, y) - 0.04 * half * (1 - u ** 2)], -1)

        points, normals, _, _ = _sheet(lens, head.spacing, lambda pts: np.tile([0.0, 0.0, -1.0], (len(pts), 1)))
        glare = float(spec["glare"])
        opacity = float(np.clip(tint_opacity + glare, 0, 0.97))
        # A clear lens shows a faint reflection of the room (light grey); a tinted one its tint.
        lens_albedo = (tint * tint_opacity + 0.85 * glare) / max(opacity, 1e-6)
        surfaces.append(_Surface(points, normals, np.tile(np.clip(lens_albedo, 0, 1), (len(points), 1)), opacity,
                                 gloss=0.5, translucent=True, contact=0.0))
        phis = np.linspace(0, 2 * np.pi, 241)
        rim = outline(phis, 0.5 * frame)
        radial = _unit(rim - outline(phis, 0.0) + 1e-12)
        points, normals = _tube(rim, 0.5 * frame, head.spacing, side=radial, depth_ratio=1.2 if frame > 0.015 * unit else 1.0)
        surfaces.append(_part(head, points, normals, frame_color, frame, gloss=0.25 + 0.5 * metal))
        inner_tops[side] = outline(np.array(np.pi + 0.45), 0.5 * frame)
        hinges[side] = outline(np.array(-0.3), 0.6 * frame)

    # The bridge arches over the nose, in front of its bridge.
    a, b = inner_tops["right"], inner_tops["left"]
    mid = 0.5 * (a + b) + np.array([0, -0.02 * unit, 0])
    mid[2] = min(mid[2], float(bridge_point[2]) - 0.6 * frame)
    t = np.linspace(0, 1, 40)[:, None]
    bridge = (1 - t) ** 2 * a + 2 * t * (1 - t) * (2 * mid - 0.5 * (a + b)) + t ** 2 * b
    points, normals = _tube(bridge, 0.45 * frame, head.spacing)
    surfaces.append(_part(head, points, normals, frame_color, 0.9 * frame, gloss=0.25 + 0.5 * metal))

    # Temples run from the hinges back along the side of the head, over the ear's root, then hook
    # down behind the ear.
    for (top, _), side, sign in zip(head.ears(), ("right", "left"), (-1.0, 1.0)):
        hinge = hinges[side]
        side_x = abs(lm[127 if side == "right" else 356, 0] - head.center_x)
        ear_top = head.world(top[0], top[1], head.pivot[2])
        over = np.array([cx + sign * (1.04 * side_x + frame), ear_top[1] - 0.01 * unit, head.pivot[2] - 0.02 * unit])
        start = hinge + np.array([sign * 0.02 * unit, 0, 0.01 * unit])
        behind = over + np.array([sign * 0.005 * unit, 0.1 * unit, 0.09 * unit])
        t = np.linspace(0, 1, 60)[:, None]
        arm = np.concatenate([(1 - t) * hinge + t * start, (1 - t) * start + t * over,
                              over + (behind - over) * np.sin(0.5 * np.pi * t)])
        points, normals = _tube(arm, 0.42 * frame, head.spacing, side=np.tile([0.0, 1.0, 0.0], (len(arm), 1)),
                                depth_ratio=0.55)
        surfaces.append(_part(head, points, normals, frame_color * 0.95, 0.84 * frame, gloss=0.2 + 0.5 * metal))
    return _Build(surfaces)


def _earrings(head: Head, spec: dict[str, Any]) -> _Build:
    unit = head.unit
    metal, gem = np.asarray(spec["color"], np.float64), np.asarray(spec["gem"], np.float64)
    hoop, stud, drop = (float(spec[k]) * float(spec["scale"]) * unit for k in ("hoop", "stud", "drop"))
    surfaces = []
    for (_, lobe_px), sign in zip(head.ears(), (-1.0, 1.0)):
        lobe = head.surface(*lobe_px) + np.array([0, 0, -0.01 * unit])
        if hoop > 0.2 * head.spacing:
            # Hoops hang roughly in the plane of the ear: turned most of the way from the camera.
            turn = np.radians(60.0) * sign
            angle = np.linspace(0, 2 * np.pi, 181)
            ring = np.stack([hoop * np.sin(angle) * np.cos(turn), hoop * (1 - np.cos(angle)),
                             hoop * np.sin(angle) * np.sin(turn)], 1) + lobe
            points, normals = _tube(ring, 0.09 * hoop, head.spacing)
            surfaces.append(_part(head, points, normals, metal, 0.18 * hoop, gloss=0.8))
        if stud > 0.2 * head.spacing:
            points, normals = _ellipsoid(lobe + np.array([0, 0, -stud]), np.full(3, stud), head.spacing)
            surfaces.append(_part(head, points, normals, metal, 2 * stud, gloss=0.6))
        if drop > 0.2 * head.spacing:
            chain_end = lobe + np.array([0, 0.6 * drop, 0])
            chain = np.linspace(lobe, chain_end, 20)
            points, normals = _tube(chain, 0.035 * drop, head.spacing)
            surfaces.append(_part(head, points, normals, metal, 0.07 * drop, gloss=0.8))
            stone = chain_end + np.array([0, 0.25 * drop, 0])
            points, normals = _ellipsoid(stone, np.array([0.2, 0.27, 0.2]) * drop, head.spacing)
            surfaces.append(_part(head, points, normals, gem, 0.4 * drop, gloss=0.9))
    return _Build(surfaces)


def _headphones(head: Head, spec: dict[str, Any]) -> _Build:
    unit, lm = head.unit, head.landmarks
    radius, band = float(spec["cup"]) * unit, float(spec["band"]) * unit
    if radius <= 0.2 * head.spacing:
        return _Build([])
    color, cushion = np.asarray(spec["color"], np.float64), np.asarray(spec["cushion"], np.float64)
    cx = head.center_x
    surfaces = []
    thickness = 0.55 * radius
    P = head.points
    hidden = np.zeros(P.shape[:2], bool)
    tops = []
    for (top, lobe), side, sign in zip(head.ears(), ("right", "left"), (-1.0, 1.0)):
        ear = head.world(0.5 * (top[0] + lobe[0]), 0.5 * (top[1] + lobe[1]), head.pivot[2])
        side_x = abs(lm[234 if side == "right" else 454, 0] - cx)
        inner = cx + sign * (side_x + 0.03 * unit)
        centre = np.array([inner + sign * (0.5 * thickness + 0.25 * radius), ear[1], head.pivot[2] - 0.02 * unit])
        axis = np.array([sign, 0.0, 0.0])
        # Cup: a rounded drum (an ellipsoid flattened along its axis) and a soft ring cushion against the head.
        points, normals = _ellipsoid(centre, np.array([0.5 * thickness, 1.05 * radius, radius]), head.spacing)
        surfaces.append(_part(head, points, normals, color, thickness, gloss=0.3))
        angle = np.linspace(0, 2 * np.pi, 181)
        ring = centre - axis * (0.45 * thickness) + np.stack([np.zeros_like(angle), 0.82 * radius * np.cos(angle),
                                                              0.78 * radius * np.sin(angle)], 1)
        points, normals = _tube(ring, 0.22 * radius, head.spacing)
        surfaces.append(_part(head, points, normals, cushion, 0.44 * radius, gloss=0.1))
        # The ear (and the hair over it) is inside the cup.
        dy, dz = (P[..., 1] - centre[1]) / (1.1 * radius), (P[..., 2] - centre[2]) / (1.1 * radius)
        hidden |= (dy ** 2 + dz ** 2 < 1) & ((P[..., 0] - cx) * sign > side_x)
        tops.append(centre + np.array([0, -0.9 * radius, 0]))
    # The headband arcs over the head from cup to cup, resting on the hair.
    peak = head.silhouette_top() - 0.02 * unit
    angle = np.linspace(0, np.pi, 121)
    a = 0.5 * abs(tops[1][0] - tops[0][0])
    height = max(0.5 * (tops[0][1] + tops[1][1]) - peak, 0.1 * unit)
    base_y = 0.5 * (tops[0][1] + tops[1][1])
    arc = np.stack([cx - a * np.cos(angle), base_y - height * np.sin(angle) ** 0.8, np.full_like(angle, tops[0][2])], 1)
    points, normals = _tube(arc, 0.5 * band, head.spacing, side=np.tile([0.0, 0.0, 1.0], (len(arc), 1)),
                            depth_ratio=0.25)
    surfaces.append(_part(head, points, normals, color * 0.9, band, gloss=0.3))
    return _Build(surfaces, hidden)


BUILDERS: dict[str, Callable[[Head, dict[str, Any]], _Build]] = {
    "hat": _hat, "glasses": _glasses, "earrings": _earrings, "headphones": _headphones,
}

# Fields a catalog value may leave out: `cover` (how much of the crown a hat covers, from the top
# down) and a lens's `glare` (the share of light a clear lens reflects) exist for in-betweens.
DEFAULTS: dict[str, dict[str, Any]] = {"hat": {"cover": 1.0}, "glasses": {"glare": 0.07}}
# Size parameters that grow from 0 with the strength t of a look (its opacity never fades).
_GROWING = {
    "hat": ("cover", "brim", "visor"),
    "glasses": ("frame", "tint_opacity", "glare"),
    "earrings": ("hoop", "stud", "drop"),
    "headphones": ("cup", "band"),
}


def grow(kind: str, spec: dict[str, Any], t: float) -> dict[str, Any]:
    grown = {**DEFAULTS.get(kind, {}), **spec}
    for key in _GROWING[kind]:
        grown[key] = float(grown[key]) * t
    return grown


# --- assembly ----------------------------------------------------------------------------------------

def _shade(surface: _Surface, head: Head) -> np.ndarray:
    color = head.lighting.apply(surface.albedo, surface.normals)
    if surface.gloss:
        view = _unit(head.camera - surface.points)
        halfway = _unit(view + head.lighting.direction)
        highlight = np.clip(np.sum(surface.normals * halfway, axis=1), 0, 1) ** SPECULAR_EXPONENT
        color = color + surface.gloss * highlight[:, None]
    return np.clip(color, 0, 1)


def _contact_shadow(head: Head, surfaces: list[_Surface], shown: np.ndarray) -> np.ndarray:
    """Ambient occlusion of the shown head pixels (`shown`, (S, S) bool) near the accessory, in [0, 1]:
    each surface's `contact`, falling off over CONTACT_REACH."""
    from scipy.spatial import cKDTree

    reach = CONTACT_REACH * head.unit
    P = head.points.reshape(-1, 3)
    occlusion = np.zeros(len(P))
    candidates = np.flatnonzero(shown)
    shown_points = P[candidates]
    # One nearest-neighbour query per contact strength (a hat's sheets share one, a pair of glasses'
    # rims and temples a few), so a faint part never masks a strong one beside it.
    for contact in sorted({s.contact for s in surfaces if s.contact > 0 and len(s.points)}):
        occluders = np.concatenate([s.points for s in surfaces if s.contact == contact])
        lo, hi = occluders.min(0) - reach, occluders.max(0) + reach
        near = candidates[np.all((shown_points >= lo) & (shown_points <= hi), axis=1)]
        if not len(near):
            continue
        # Occluders further than `reach` from every point queried never answer a query: a hat's crown
        # above the hair it hides is most of its samples, and of the tree's cost.
        lo, hi = P[near].min(0) - reach, P[near].max(0) + reach
        occluders = occluders[np.all((occluders >= lo) & (occluders <= hi), axis=1)]
        # An unbalanced tree builds in half the time and answers these few queries as fast.
        distance, _ = cKDTree(occluders, balanced_tree=False).query(P[near], distance_upper_bound=reach)
        occlusion[near] = np.maximum(occlusion[near], contact * np.clip(1 - distance / reach, 0, 1) ** 2)
    return occlusion.reshape(head.size, head.size)


def build_accessory(kind: str, spec: dict[str, Any], head: Head, image: np.ndarray) -> Accessory:
    """The accessory `kind` with `spec` fitted to `head`; `image` (S, S, 3) is the portrait it goes on."""
    build = BUILDERS[kind](head, {**DEFAULTS.get(kind, {}), **spec})
    surfaces = [s for s in build.surfaces if len(s.points)]
    if surfaces:
        points = np.concatenate([s.points for s in surfaces])
        normals = np.concatenate([s.normals for s in surfaces])
        colors = np.concatenate([_shade(s, head) for s in surfaces])
        opacities = np.concatenate([np.full(len(s.points), s.opacity) for s in surfaces])
        translucent = np.concatenate([np.full(len(s.points), s.translucent) for s in surfaces])
    else:
        points = normals = colors = np.zeros((0, 3))
        opacities, translucent = np.zeros(0), np.zeros(0, bool)
    facing = np.concatenate([s.normals if s.facing is None else s.facing for s in surfaces]) if surfaces else normals
    seen = facing[:, 2] < HIDDEN_FACING
    under_matte = head.matte.copy()
    if build.hidden is not None:
        under_matte[build.hidden] = 0.0
    # Shadows fall on the person (hidden pixels never show), not on the backdrop the matte cuts away.
    darkness = CONTACT_DARKNESS * _contact_shadow(head, surfaces, under_matte > 0.02)
    if build.cast_shadow is not None:
        darkness = np.maximum(darkness, CAST_DARKNESS * build.cast_shadow)
    darkness = darkness * head.matte
    under_image = (np.asarray(image, np.float32) * (1 - darkness[..., None])).astype(np.float32)
    points, normals = points[seen], normals[seen]
    # Surfels are discs, symmetric about their normal: the shortest rotation taking the local z axis to
    # the normal orients one. Taken to whichever of +-normal has z >= 0 (the same disc), it stays
    # clear of the singular half-turn, which a normal facing the camera (z near -1) would be.
    axis = normals * np.where(normals[:, 2:] < 0, -1.0, 1.0)
    quats = _unit(np.stack([1 + axis[:, 2], -axis[:, 1], axis[:, 0], np.zeros(len(axis))], 1))
    spread = 0.6 * head.spacing
    return Accessory(
        means=points.astype(np.float32),
        quats=quats.astype(np.float32),
        scales=np.tile(np.array([spread, spread, 0.15 * spread], np.float32), (len(points), 1)),
        opacities=opacities[seen].astype(np.float32),
        colors=colors[seen].astype(np.float32),
        translucent=translucent[seen],
        under_image=under_image,
        under_matte=under_matte.astype(np.float32),
    )
