"""The embedded editor: region-based edits computed from the landmarks and masks, no weights needed.

Each catalog `kind` turns a value's spec into a *layer*: the colour the edited pixels take at full
strength and a per-pixel opacity (plus any silhouette the edit adds, e.g. a hat above the head). At
strength t the result is `input * (1 - t * alpha) + color * t * alpha`, so t = 0 returns the input
exactly, the image is continuous in t, and nothing outside the layer's support can change.

Spec fields per kind (catalog.py holds the values):
- recolor (hair): `color` target mean colour, `shine` strength of highlights. The hair's own
  luminance pattern, relative to its median, modulates the target: strands and shading survive.
- tone (skin): `color`, the target median skin colour; a per-channel gain keeps shading and texture.
- lipstick: `color`, `opacity`, `gloss` (highlight strength) over the lips' luminance pattern.
- brows: `color`, `thickness` (x the detected brow height), `density`, `arch`; the original brow is
  inpainted away and a strand-textured brow is drawn from the brow landmarks.
- beard: `coverage` (full | goatee), `density`, `length` (strand length, face heights), `opacity`,
  `drop` (how far below the chin it hangs), `color` (None: the person's brow colour).
- glasses, hat, earrings: procedural geometry from eye/forehead/jaw landmarks (fields in catalog.py).

Mixed parameters (interpolation ground truth, `edit_between`): numeric fields (colours, sizes,
shape exponents, opacities) are mixed linearly; when the two values differ in a discrete field
(hat style, earring style, beard coverage) the target is the cross-fade of the two edits, each drawn
at the mixed numeric parameters. Noise textures are seeded per category, so they do not flicker
along t.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from perse.errors import PerseError
from perse.synth import face as F
from perse.synth.catalog import Category, Value
from perse.synth.edit import EditResult, check_strength, input_image, region_of


@dataclass
class Layer:
    color: np.ndarray  # (S, S, 3) colour of edited pixels at full strength
    alpha: np.ndarray  # (S, S) opacity of the edit at full strength
    silhouette: np.ndarray | None = None  # (S, S) person alpha the edit adds, if it grows the outline


@dataclass
class _Context:
    """Everything a layer routine reads: the input, its masks and face geometry, a noise stream."""

    image: np.ndarray
    masks: dict[str, np.ndarray]
    matte: np.ndarray
    face: F.FaceFrame
    rng: np.random.Generator
    where: str

    @property
    def size(self) -> int:
        return self.image.shape[0]

    def mask(self, *names: str) -> np.ndarray:
        missing = [n for n in names if n not in self.masks]
        if missing:
            raise PerseError(f"{self.where}: region mask(s) {', '.join(missing)} missing from the portrait; "
                             f"re-run `perse ingest` to regenerate masks/")
        return np.max(np.stack([self.masks[n] for n in names]), axis=0).astype(np.float32)

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        coords = np.arange(self.size, dtype=np.float32) + 0.5
        return np.meshgrid(coords, coords)


def _luminance(image: np.ndarray) -> np.ndarray:
    return image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    u = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _median_inside(values: np.ndarray, mask: np.ndarray, fallback: Any) -> Any:
    inside = mask > 0.5
    if inside.sum() < 8:
        return fallback
    return np.median(values[inside], axis=0)


def _relative_shading(image: np.ndarray, mask: np.ndarray, limit: float = 1.5, gain: float = 1.0) -> np.ndarray:
    """Luminance relative to its median inside `mask`, log-clipped: the texture a recolour keeps."""
    y = _luminance(image)
    reference = max(float(_median_inside(y, mask, float(y.mean()))), 0.02)
    return np.exp(np.clip(np.log(y / reference + 1e-4), -limit, limit) * gain).astype(np.float32)


def _line_kernel(length: float, angle: float) -> np.ndarray:
    size = max(3, int(math.ceil(length)) | 1)
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = 0.5 * length * math.cos(angle), 0.5 * length * math.sin(angle)
    cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1,
             cv2.LINE_AA)
    return kernel / max(kernel.sum(), 1e-6)


def _strands(rng: np.random.Generator, size: int, density: float, length: float, angle: float) -> np.ndarray:
    """Hair-like texture in [0, 1]: sparse seeds smeared along `angle` into strokes `length` px long."""
    seeds = (rng.random((size, size)) < np.clip(density, 0.0, 1.0) * 0.35).astype(np.float32)
    strokes = cv2.filter2D(seeds, -1, _line_kernel(max(length, 1.0), angle))
    return np.clip(strokes / max(float(np.percentile(strokes, 99)), 1e-6), 0.0, 1.0)


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    coarse = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _fill_polygon(size: int, points: np.ndarray, supersample: int = 4) -> np.ndarray:
    """Anti-aliased polygon coverage in [0, 1]."""
    canvas = np.zeros((size * supersample, size * supersample), np.uint8)
    cv2.fillPoly(canvas, [np.round(points * supersample).astype(np.int32)], 255, cv2.LINE_AA)
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _skin_likeness(ctx: _Context) -> np.ndarray:
    """How much each pixel's colour resembles the face's skin (Lab distance): region masks drawn from
    landmarks blur the hairline, so skin-coloured "hair" pixels are forehead and the reverse."""
    lab = cv2.cvtColor(ctx.image.astype(np.float32), cv2.COLOR_RGB2LAB)
    skin = _median_inside(lab, ctx.mask("face_skin"), lab.reshape(-1, 3).mean(0))
    chroma = np.linalg.norm(lab[..., 1:] - skin[1:], axis=-1)
    # Highlights on skin are brighter than its median; hair is darker. Only darker counts against.
    lightness = np.clip(skin[0] - lab[..., 0], 0, None)
    # Tight tolerances: light brown hair is close to skin in hue; only what truly matches counts.
    return (np.exp(-0.5 * (chroma / 5.0) ** 2) * np.exp(-0.5 * (lightness / 15.0) ** 2)).astype(np.float32)


# --- kinds -------------------------------------------------------------------------------------------

def _recolor(ctx: _Context, spec: dict[str, Any]) -> Layer:
    hair = ctx.mask("hair") * (1 - ctx.mask("ears", "face_skin"))
    # Bangs: region masks drawn from landmarks count the upper forehead as skin even where hair falls
    # over it; there, a pixel whose colour is nearer the hair's than the skin's is hair.
    _, yy = ctx.grid()
    unit = ctx.face.face_height
    # Colour statistics of sure skin: the cheeks, below the eyes, where no hair falls.
    cheeks = (ctx.mask("face_skin") > 0.5) & (yy > ctx.face.eye_center("right")[1] + 0.05 * unit)
    bangs = np.zeros_like(hair)
    if cheeks.sum() > 8:
        lab = cv2.cvtColor(ctx.image.astype(np.float32), cv2.COLOR_RGB2LAB)
        # Averaged over a small neighbourhood, so a strand's highlight counts with its strand.
        lab = cv2.GaussianBlur(lab, (0, 0), max(0.7, 0.02 * unit))
        skin = np.median(lab[cheeks], axis=0)
        spread = lab[cheeks].std(axis=0) + 1.0
        # Hair over the forehead is darker than the cheeks or of another hue, by several skin spreads.
        darker = (skin[0] - lab[..., 0]) / spread[0]
        hue = np.linalg.norm((lab[..., 1:] - skin[1:]) / spread[1:], axis=-1)
        forehead = ctx.mask("face_skin") * _smoothstep(ctx.face.brow_top - 0.02 * unit, ctx.face.brow_top - 0.08 * unit, yy)
        bangs = forehead * _smoothstep(2.0, 3.5, np.maximum(darker, hue))
    mask = np.maximum(hair * (1 - _skin_likeness(ctx)), bangs)
    shading = _relative_shading(ctx.image, mask, gain=0.85)
    color = np.asarray(spec["color"], np.float32) * shading[..., None]
    color = color + float(spec["shine"]) * 0.35 * np.clip(shading - 1.2, 0.0, 1.0)[..., None]
    return Layer(np.clip(color, 0, 1), mask)


def _tone(ctx: _Context, spec: dict[str, Any]) -> Layer:
    hair = ctx.mask("hair")
    near_face = cv2.dilate(ctx.mask("face_skin"), np.ones((3, 3), np.uint8), iterations=max(1, int(0.12 * ctx.face.face_height)))
    mask = np.maximum(ctx.mask("face_skin", "nose", "ears", "neck"), hair * near_face * _skin_likeness(ctx))
    median = np.maximum(_median_inside(ctx.image, ctx.mask("face_skin"), ctx.image.reshape(-1, 3).mean(0)), 0.03)
    gain = np.asarray(spec["color"], np.float32) / median.astype(np.float32)
    return Layer(np.clip(ctx.image * gain, 0, 1), mask)


def _lipstick(ctx: _Context, spec: dict[str, Any]) -> Layer:
    mask = ctx.mask("lips")
    shading = _relative_shading(ctx.image, mask, limit=1.0, gain=0.7)
    color = np.asarray(spec["color"], np.float32) * shading[..., None]
    color = color + float(spec["gloss"]) * 0.5 * _smoothstep(1.1, 1.5, shading)[..., None]
    return Layer(np.clip(color, 0, 1), mask * float(spec["opacity"]))


def _brow_outline(ctx: _Context, upper: tuple[int, ...], lower: tuple[int, ...], spec: dict[str, Any]) -> np.ndarray:
    up, low = ctx.face.polygon(upper), ctx.face.polygon(lower)
    samples = np.linspace(0, len(upper) - 1, 24)
    index = np.arange(len(upper))
    up = np.stack([np.interp(samples, index, up[:, k]) for k in range(2)], axis=1)
    low = np.stack([np.interp(samples, index, low[:, k]) for k in range(2)], axis=1)
    center, half = (up + low) / 2, (up - low) / 2
    height = float(np.linalg.norm(half, axis=1).mean()) * 2
    u = samples / samples[-1]  # 0 at the outer end, 1 at the inner end
    taper = 0.65 + 0.35 * np.sin(np.pi * np.clip(u * 0.8 + 0.2, 0, 1))
    half = half * float(spec["thickness"]) * taper[:, None]
    center = center.copy()
    center[:, 1] -= float(spec.get("arch", 0.0)) * height * np.sin(np.pi * u) ** 1.5
    return np.concatenate([center + half, (center - half)[::-1]])


def _brows(ctx: _Context, spec: dict[str, Any]) -> Layer:
    size, unit = ctx.size, ctx.face.face_height
    old = ctx.mask("brows")
    grow = max(1, int(round(0.012 * unit)))
    old_grown = cv2.dilate((old > 0.2).astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    bare = cv2.inpaint(np.round(ctx.image * 255).astype(np.uint8), old_grown, max(3, 2 * grow), cv2.INPAINT_TELEA)
    bare = cv2.GaussianBlur(bare.astype(np.float32) / 255.0, (0, 0), 0.6 * grow)
    bare = np.where(old_grown[..., None] > 0, bare, ctx.image)
    brow = np.zeros((size, size), np.float32)
    texture = np.zeros((size, size), np.float32)
    for upper, lower in ((F.RIGHT_BROW_UPPER, F.RIGHT_BROW_LOWER), (F.LEFT_BROW_UPPER, F.LEFT_BROW_LOWER)):
        outline = _brow_outline(ctx, upper, lower, spec)
        coverage = _fill_polygon(size, outline)
        # Brow hairs grow from the inner end outwards, slightly rising.
        outer, inner = ctx.face.xy[upper[0]], ctx.face.xy[upper[-1]]
        angle = math.atan2(outer[1] - inner[1] - 0.1 * abs(outer[0] - inner[0]), outer[0] - inner[0])
        strands = _strands(ctx.rng, size, float(spec["density"]), 0.05 * unit, angle)
        brow = np.maximum(brow, coverage)
        texture = np.where(coverage > 0, strands, texture)
    feather = max(0.5, 0.006 * unit)
    alpha_brow = cv2.GaussianBlur(brow, (0, 0), feather) * (0.55 + 0.45 * texture) * float(spec["density"])
    alpha_brow = np.clip(alpha_brow * 1.25, 0, 1)
    shade = _relative_shading(bare, old_grown.astype(np.float32), limit=0.5, gain=0.6)[..., None]
    hair = np.asarray(spec["color"], np.float32) * shade * (0.8 + 0.4 * texture[..., None])
    color = bare * (1 - alpha_brow[..., None]) + hair * alpha_brow[..., None]
    alpha = np.clip(np.maximum(cv2.GaussianBlur(old_grown.astype(np.float32), (0, 0), feather), alpha_brow), 0, 1)
    return Layer(np.clip(color, 0, 1), alpha)


def _brow_color(ctx: _Context) -> np.ndarray:
    """The person's own hair colour for facial hair: the darker half of the brow pixels."""
    brows = ctx.mask("brows") > 0.5
    if brows.sum() < 8:
        return np.array([0.12, 0.09, 0.07], np.float32)
    pixels = ctx.image[brows]
    luminance = _luminance(pixels)
    return (pixels[luminance <= np.median(luminance)].mean(axis=0) * 0.85).astype(np.float32)


def _beard(ctx: _Context, spec: dict[str, Any]) -> Layer:
    size, unit = ctx.size, ctx.face.face_height
    # Facial hair grows on the face: the beard mask may reach onto the neck or a collar.
    oval = _fill_polygon(size, ctx.face.polygon(F.FACE_OVAL))
    area = ctx.mask("beard") * cv2.dilate(oval, np.ones((3, 3), np.uint8), iterations=max(1, int(0.02 * unit)))
    area = area * (1 - ctx.mask("lips", "mouth_interior"))
    xx, yy = ctx.grid()
    mouth_x = float(ctx.face.xy[[F.MOUTH_RIGHT, F.MOUTH_LEFT], 0].mean())
    half_width = 0.62 * abs(ctx.face.xy[F.MOUTH_LEFT, 0] - ctx.face.xy[F.MOUTH_RIGHT, 0])
    if spec["coverage"] in ("goatee", "moustache"):
        area = area * (1 - _smoothstep(half_width * 0.85, half_width * 1.15, np.abs(xx - mouth_x)))
    if spec["coverage"] == "moustache":
        # Only above the mouth corners: the philtrum and the upper lip's edge (the lips stay bare).
        corners_y = float(ctx.face.xy[[F.MOUTH_RIGHT, F.MOUTH_LEFT], 1].mean())
        area = area * _smoothstep(corners_y + 0.01 * unit, corners_y - 0.01 * unit, yy)
    drop = int(round(float(spec["drop"]) * unit))
    if drop > 0:
        # Hang the beard below the jaw: grow the area straight down, tapering towards the bottom.
        kernel = np.zeros((2 * drop + 1, 1), np.uint8)
        kernel[: drop + 1] = 1
        hanging = cv2.dilate((area > 0.5).astype(np.uint8), kernel).astype(np.float32)
        chin_y = float(ctx.face.xy[F.CHIN, 1])
        taper = 1 - _smoothstep(0, 1, (yy - chin_y) / max(drop, 1)) * _smoothstep(0.3 * unit, 0.05 * unit,
                                                                                  0.5 * unit - np.abs(xx - mouth_x))
        area = np.maximum(area, hanging * np.clip(taper, 0, 1))
    # Above the mouth corners only the moustache is dense; the cheeks thin out towards the cheekbones.
    nose_y = float(ctx.face.xy[F.SUBNASALE, 1])
    corner_y = float(ctx.face.xy[[F.MOUTH_RIGHT, F.MOUTH_LEFT], 1].mean())
    mouth_half = 0.5 * abs(ctx.face.xy[F.MOUTH_LEFT, 0] - ctx.face.xy[F.MOUTH_RIGHT, 0])
    moustache = _smoothstep(mouth_half * 1.25, mouth_half * 0.9, np.abs(xx - mouth_x))
    cheek = _smoothstep(nose_y + 0.02 * unit, corner_y + 0.02 * unit, yy)
    area = area * np.maximum(moustache, cheek)
    # A ragged, soft outline instead of the mask's clean edge.
    ragged = _value_noise(ctx.rng, size, max(4, size // 8))
    soft = cv2.GaussianBlur(area, (0, 0), max(0.7, 0.012 * unit))
    area = _smoothstep(0.25, 0.75, soft + (ragged - 0.5) * 0.35)
    area = area * (1 - ctx.mask("lips", "mouth_interior"))
    length_px = float(spec["length"]) * unit
    # Hair falls down and outwards from the face's midline: each pixel takes the strand texture of the
    # nearest of a few directions (blending directions would cross-hatch).
    slant = np.clip((xx - mouth_x) / (0.5 * ctx.face.face_width), -1, 1) * 0.6
    directions = np.linspace(-0.6, 0.6, 5)
    nearest = np.argmin(np.abs(slant[..., None] - directions), axis=-1)
    strands = np.zeros_like(xx)
    for index, offset in enumerate(directions):
        texture = _strands(ctx.rng, size, float(spec["density"]) * 0.6, length_px, np.pi / 2 - offset)
        strands = np.where(nearest == index, texture, strands)
    fine = _strands(ctx.rng, size, 1.0, max(1.0, 0.4 * length_px), np.pi / 2)
    clumps = _value_noise(ctx.rng, size, max(6, size // 5))
    # Longer hair hides the skin: stubble is speckle, a full beard is a dense textured mass whose
    # outline thins out (hair is sparse at the beard's edge).
    fill = float(np.clip(float(spec["length"]) / 0.05, 0, 1))
    edge = _smoothstep(0.0, 1.0, area) ** 0.5
    coverage = fill * edge * (0.75 + 0.25 * np.maximum(strands, fine)) + (1 - fill * edge) * strands
    alpha = area * float(spec["opacity"]) * coverage
    base = np.asarray(spec["color"], np.float32) if spec.get("color") is not None else _brow_color(ctx)
    shading = _relative_shading(ctx.image, ctx.mask("beard"), limit=0.6, gain=0.5)[..., None]
    highlight = 0.35 * (strands * fine)[..., None]
    color = base * shading * (0.45 + 0.9 * strands[..., None]) * (0.75 + 0.5 * clumps[..., None]) + highlight * base.max()
    outside = np.clip(area - ctx.matte, 0, 1)
    return Layer(np.clip(color, 0, 1), np.clip(alpha, 0, 1), outside * float(spec["opacity"]))


def _lens_radius(phi: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Lens outline in polar form (unit = lens half-width); phi = 0 points away from the nose, + down."""
    n, aspect = float(spec["round"]), float(spec["aspect"])
    c, s = np.abs(np.cos(phi)), np.abs(np.sin(phi))
    radius = (c ** n + (s / aspect) ** n) ** (-1.0 / n)
    outer = np.clip(np.cos(phi), 0, 1)
    radius = radius * (1 + float(spec["droop"]) * np.clip(np.sin(phi), 0, 1) * (0.5 + 0.5 * outer))
    radius = radius * (1 + float(spec["lift"]) * np.clip(-np.sin(phi), 0, 1) * outer ** 2)
    return radius


def _segment_distance(xx: np.ndarray, yy: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / max(float(ab @ ab), 1e-6), 0, 1)
    return np.hypot(xx - a[0] - t * ab[0], yy - a[1] - t * ab[1])


def _glasses(ctx: _Context, spec: dict[str, Any]) -> Layer:
    xx, yy = ctx.grid()
    unit, eyes = ctx.face.face_height, ctx.face.eye_distance
    half_width = 0.5 * float(spec["size"]) * eyes
    rim = max(0.8, float(spec["frame"]) * unit)
    tint, tint_opacity = np.asarray(spec["tint"], np.float32), float(spec["tint_opacity"])
    frame_color = np.asarray(spec["frame_color"], np.float32)
    lens_in = np.zeros_like(xx)
    frame = np.zeros_like(xx)
    glare = np.zeros_like(xx)
    inner_points = []
    for side, sign in (("right", -1.0), ("left", 1.0)):
        center = ctx.face.eye_center(side) + np.array([sign * 0.04 * eyes, 0.02 * eyes])
        u, v = (xx - center[0]) * sign, yy - center[1]  # u grows away from the nose
        rho = np.hypot(u, v) / half_width
        phi = np.arctan2(v, u)
        edge = _lens_radius(phi, spec)
        signed = (rho - edge) * half_width  # ~ pixels outside the outline
        lens_in = np.maximum(lens_in, _smoothstep(0.5, -0.5, signed))
        frame = np.maximum(frame, _smoothstep(rim / 2 + 0.5, rim / 2 - 0.5, np.abs(signed + rim / 2)))
        # A soft diagonal reflection: tells a clear lens apart from no lens at all.
        band = np.exp(-(((u * sign + v) / half_width - 0.35) / 0.18) ** 2) * (rho < edge)
        glare = np.maximum(glare, band.astype(np.float32))
        top = center + np.array([-sign * half_width * _lens_radius(np.array(np.pi), spec) * 0.92, -0.25 * half_width])
        inner_points.append(top)
        # Temple arm from the outer rim towards the side of the head.
        hinge = center + np.array([sign * half_width * float(_lens_radius(np.array(-0.35), spec)), -0.3 * half_width])
        edge_index = F.RIGHT_FACE_EDGE if side == "right" else F.LEFT_FACE_EDGE
        ear = np.array([ctx.face.xy[edge_index, 0], hinge[1] - 0.02 * unit])
        frame = np.maximum(frame, _smoothstep(rim * 0.45 + 0.5, rim * 0.45 - 0.5, _segment_distance(xx, yy, hinge, ear)))
    bridge = _segment_distance(xx, yy, inner_points[0], inner_points[1])
    frame = np.maximum(frame, _smoothstep(rim * 0.5 + 0.5, rim * 0.5 - 0.5, bridge))
    lens_color = ctx.image * (1 - tint_opacity) + tint * tint_opacity + 0.10 * glare[..., None]
    frame_shade = frame_color * (0.8 + 0.35 * _smoothstep(0, 1, (yy.min() - yy) / unit + 1)[..., None])
    color = lens_color * (1 - frame[..., None]) + frame_shade * frame[..., None]
    alpha = np.clip(np.maximum(lens_in, frame), 0, 1)
    return Layer(np.clip(color, 0, 1), alpha, np.clip(frame - ctx.matte, 0, 1))


def _hat(ctx: _Context, spec: dict[str, Any]) -> Layer:
    xx, yy = ctx.grid()
    unit, face = ctx.face.face_height, ctx.face
    cx = face.center_x
    hairline = float(face.xy[F.FOREHEAD_TOP, 1])
    rim_y = hairline + float(spec["low"]) * (face.brow_top - hairline)
    head_half = 0.5 * face.face_width * 1.12
    # Wide hair widens the hat, within reason.
    row = ctx.matte[int(np.clip(rim_y, 0, ctx.size - 1))] > 0.5
    if row.any():
        cols = np.flatnonzero(row)
        head_half = float(np.clip(max(cx - cols.min(), cols.max() - cx), head_half, 1.5 * head_half))
    column = ctx.matte[:, int(np.clip(cx, 0, ctx.size - 1))] > 0.5
    top = float(np.flatnonzero(column)[0]) if column.any() else rim_y - 0.45 * unit
    height = max(float(spec["height"]) * unit, rim_y - top + 0.04 * unit)
    style = spec["style"]
    color = np.asarray(spec["color"], np.float32)
    width = head_half * (0.97 if style == "fedora" else 1.04)
    nx = (xx - cx) / width
    ny = (yy - rim_y) / height
    exponent = 3.0 if style == "fedora" else 2.0
    sag = 0.12 * unit * nx ** 2  # the rim follows the skull, lower at the temples
    crown = _smoothstep(1.0 + 2 / width, 1.0 - 2 / width, np.abs(nx) ** exponent + np.clip(-ny, 0, None) ** exponent)
    crown = crown * _smoothstep(rim_y + sag + 1, rim_y + sag - 1, yy)
    nz = np.sqrt(np.clip(1 - nx ** 2 - np.clip(-ny, 0, None) ** 2, 0, 1))
    light = np.array([-0.35, -0.55, 0.76], np.float32)
    shade = 0.45 + 0.65 * np.clip(nx * light[0] + np.clip(ny, None, 0) * light[1] + nz * light[2], 0, 1)
    pattern = np.ones_like(xx)
    if style == "knit":
        ribs = 0.5 + 0.5 * np.cos(np.arcsin(np.clip(nx, -1, 1)) * 28)
        cuff = _smoothstep(rim_y + sag - 0.24 * height, rim_y + sag - 0.20 * height, yy)
        cross = 0.5 + 0.5 * np.cos(yy / max(unit * 0.018, 0.6) * np.pi)
        pattern = (1 - cuff) * (0.72 + 0.28 * ribs) * (0.9 + 0.1 * cross) + cuff * (0.8 + 0.2 * ribs) * 1.05
        pattern = pattern * (1 - 0.35 * cuff * _smoothstep(0.02 * height, 0, np.abs(yy - (rim_y + sag - 0.22 * height))))
    elif style == "fedora":
        band = _smoothstep(rim_y + sag - 0.22 * height, rim_y + sag - 0.19 * height, yy)
        pattern = 1 - 0.55 * band
        pattern = pattern * (1 - 0.25 * np.exp(-(nx / 0.08) ** 2) * _smoothstep(-0.55, -0.95, ny))  # crease
    else:  # cap: panel seams and a button
        seams = np.exp(-((np.arcsin(np.clip(nx, -1, 1)) % 0.7 - 0.35) / 0.03) ** 2)
        pattern = 1 - 0.25 * seams * (ny < 0)
        button = np.hypot(xx - cx, yy - (rim_y - height)) < 0.035 * unit
        pattern = np.where(button, 0.7, pattern)
    grain = 0.93 + 0.14 * _value_noise(ctx.rng, ctx.size, max(8, ctx.size // 4))
    hat_color = color * (shade * pattern * grain)[..., None]
    alpha = crown
    brim_half = float(spec["brim"]) * 2 * head_half
    if style == "fedora" and brim_half > 0:
        brim = _smoothstep(1.02, 0.98, ((xx - cx) / (width + brim_half)) ** 2 + ((yy - rim_y - sag * 0.3) / (0.09 * unit)) ** 2)
        under = 0.55 + 0.3 * _smoothstep(rim_y + 0.09 * unit, rim_y - 0.09 * unit, yy)
        brim_color = color * 0.9 * under[..., None] * grain[..., None]
        front = brim * (1 - crown * (yy < rim_y))
        hat_color = hat_color * (1 - front[..., None]) + brim_color * front[..., None]
        alpha = np.maximum(alpha, brim)
    elif style == "cap":
        visor = _smoothstep(1.02, 0.98, ((xx - cx) / (0.8 * width)) ** 2 + ((yy - rim_y) / (0.1 * unit + brim_half)) ** 2)
        visor = visor * _smoothstep(rim_y - 1, rim_y + 1, yy)
        visor_color = color * (0.55 + 0.35 * _smoothstep(rim_y + 0.1 * unit, rim_y, yy))[..., None]
        hat_color = hat_color * (1 - visor[..., None]) + visor_color * visor[..., None]
        alpha = np.maximum(alpha, visor)
    # The hat shades the forehead just under its edge.
    shadow = cv2.GaussianBlur(np.roll(alpha, int(round(0.03 * unit)), axis=0), (0, 0), max(1.0, 0.03 * unit))
    shadow = shadow * (1 - alpha) * ctx.matte * 0.45
    color_out = hat_color * alpha[..., None] + ctx.image * (1 - shadow[..., None]) * (1 - alpha[..., None])
    total = np.clip(alpha + shadow * (1 - alpha), 0, 1)
    # The layer's colour is what pixels become where it is opaque: un-premultiply against the total.
    color_layer = np.where(total[..., None] > 1e-4,
                           (color_out - ctx.image * (1 - total[..., None])) / np.maximum(total[..., None], 1e-4),
                           ctx.image)
    return Layer(np.clip(color_layer, 0, 1), total, np.clip(alpha - ctx.matte, 0, 1))


def _lobes(ctx: _Context) -> list[np.ndarray]:
    """Earlobe positions: the lowest point of each ear mask, else a landmark estimate beside the jaw."""
    face, unit = ctx.face, ctx.face.face_height
    lobes = []
    ears = ctx.masks.get("ears")
    for edge, jaw, sign in ((F.RIGHT_FACE_EDGE, 132, -1.0), (F.LEFT_FACE_EDGE, 361, 1.0)):
        estimate = np.array([face.xy[jaw, 0] + sign * 0.03 * unit, 0.5 * (face.xy[edge, 1] + face.xy[jaw, 1]) + 0.06 * unit])
        if ears is not None:
            xx = np.arange(ctx.size)[None, :]
            side = (ears > 0.5) & ((xx - face.center_x) * sign > 0.3 * face.face_width)
            if side.sum() > max(6, (0.02 * unit) ** 2):
                ys, xs = np.nonzero(side)
                bottom = ys >= np.percentile(ys, 92)
                candidate = np.array([xs[bottom].mean(), ys[bottom].mean()], dtype=np.float64)
                if np.linalg.norm(candidate - estimate) < 0.25 * unit:
                    estimate = candidate
        lobes.append(estimate)
    return lobes


def _earrings(ctx: _Context, spec: dict[str, Any]) -> Layer:
    xx, yy = ctx.grid()
    unit = ctx.face.face_height
    size = float(spec["size"]) * unit
    metal, gem = np.asarray(spec["color"], np.float32), np.asarray(spec["gem"], np.float32)
    alpha = np.zeros_like(xx)
    color = np.zeros(xx.shape + (3,), np.float32)

    def paint(coverage: np.ndarray, rgb: np.ndarray) -> None:
        nonlocal alpha
        color[:] = color * (1 - coverage[..., None]) + rgb * coverage[..., None]
        alpha = np.maximum(alpha, coverage)

    def sphere(center: np.ndarray, radius: float, base: np.ndarray) -> None:
        dx, dy = (xx - center[0]) / radius, (yy - center[1]) / radius
        r2 = dx ** 2 + dy ** 2
        nz = np.sqrt(np.clip(1 - r2, 0, 1))
        lambert = np.clip(-0.4 * dx - 0.5 * dy + 0.77 * nz, 0, 1)
        highlight = np.exp(-((dx + 0.35) ** 2 + (dy + 0.4) ** 2) / 0.05)
        rgb = base * (0.35 + 0.75 * lambert)[..., None] + 0.6 * highlight[..., None]
        paint(_smoothstep(1 + 1 / radius, 1 - 1 / radius, np.sqrt(r2)), np.clip(rgb, 0, 1))

    for lobe in _lobes(ctx):
        if spec["style"] == "hoop":
            radius, thick = size / 2, max(1.0, 0.12 * size)
            center = lobe + np.array([0, radius * 0.95])
            dist = np.hypot(xx - center[0], yy - center[1])
            ring = _smoothstep(thick / 2 + 0.6, thick / 2 - 0.6, np.abs(dist - radius))
            angle = np.arctan2(yy - center[1], xx - center[0])
            rgb = metal * (0.55 + 0.6 * (0.5 + 0.5 * np.cos(angle + 2.3)))[..., None]
            paint(ring, np.clip(rgb + 0.3 * np.exp(-((angle + 2.3) / 0.25) ** 2)[..., None], 0, 1))
        elif spec["style"] == "stud":
            sphere(lobe, max(1.2, size / 2), metal)
        else:  # drop: a short chain and a gem
            chain_end = lobe + np.array([0, 0.55 * size])
            chain = _smoothstep(0.9, 0.3, _segment_distance(xx, yy, lobe, chain_end))
            paint(chain * 0.9, metal * 0.9)
            sphere(lobe, max(1.0, 0.12 * size), metal)
            sphere(chain_end + np.array([0, 0.3 * size]), max(1.2, 0.3 * size), gem)
    return Layer(np.clip(color, 0, 1), alpha, np.clip(alpha - ctx.matte, 0, 1))


KINDS: dict[str, Callable[[_Context, dict[str, Any]], Layer]] = {
    "recolor": _recolor, "tone": _tone, "lipstick": _lipstick, "brows": _brows, "beard": _beard,
    "glasses": _glasses, "hat": _hat, "earrings": _earrings,
}


def mix_specs(a: dict[str, Any], b: dict[str, Any], t: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Numeric fields mixed linearly; returns the mix with a's and with b's discrete fields."""
    mixed_a, mixed_b = dict(a), dict(b)
    for key in set(a) | set(b):
        va, vb = a.get(key), b.get(key)
        numeric = all(isinstance(v, (int, float, tuple, list)) and not isinstance(v, bool) for v in (va, vb))
        if numeric:
            value = ((1 - t) * np.asarray(va, float) + t * np.asarray(vb, float)).tolist()
            mixed_a[key] = mixed_b[key] = value
    return mixed_a, mixed_b


class ParametricEditor:
    name = "parametric"
    exact = True

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    @classmethod
    def from_config(cls, config) -> "ParametricEditor":
        return cls(seed=config.seed)

    def _context(self, portrait, category: Category) -> _Context:
        where = f"portrait {portrait.source or '(in memory)'}"
        F.validate_landmarks(portrait.landmarks, portrait.size, where)
        rng = np.random.default_rng([self.seed, zlib.crc32(category.name.encode()), portrait.size])
        return _Context(input_image(portrait), dict(portrait.masks), np.asarray(portrait.matte, np.float32),
                        F.FaceFrame(np.asarray(portrait.landmarks, np.float64)), rng, where)

    def layer(self, portrait, category: Category, spec: dict[str, Any]) -> Layer:
        if category.kind not in KINDS:
            raise PerseError(f"category '{category.name}' has kind '{category.kind}', which the parametric "
                             f"editor cannot draw; kinds: {', '.join(KINDS)}")
        return KINDS[category.kind](self._context(portrait, category), spec)

    def apply(self, portrait, layer: Layer, strength: float) -> EditResult:
        t = check_strength(strength)
        image = input_image(portrait)
        weight = (t * layer.alpha)[..., None].astype(np.float32)
        edited = image * (1 - weight) + layer.color.astype(np.float32) * weight
        matte = np.asarray(portrait.matte, np.float32)
        if layer.silhouette is not None:
            matte = np.maximum(matte, t * layer.silhouette)
        return EditResult(edited.astype(np.float32), region_of(layer.alpha), matte.astype(np.float32))

    def edit(self, portrait, category: Category, value: Value, strength: float = 1.0) -> EditResult:
        return self.apply(portrait, self.layer(portrait, category, value.spec), strength)

    def edit_between(self, portrait, category: Category, a: Value | None, b: Value | None, t: float) -> EditResult:
        """The exact image between two values (None = the unedited source) at mix t in [0, 1]."""
        t = check_strength(t)
        if a is None and b is None:
            return self.apply(portrait, Layer(np.zeros(portrait.image.shape, np.float32),
                                              np.zeros(portrait.image.shape[:2], np.float32)), 0.0)
        if a is None:
            return self.edit(portrait, category, b, t)
        if b is None:
            return self.edit(portrait, category, a, 1 - t)
        with_a, with_b = mix_specs(a.spec, b.spec, t)
        first = self.apply(portrait, self.layer(portrait, category, with_a), 1.0)
        if with_a == with_b:
            return first
        second = self.apply(portrait, self.layer(portrait, category, with_b), 1.0)
        return EditResult((1 - t) * first.image + t * second.image, np.maximum(first.region, second.region),
                          (1 - t) * first.matte + t * second.matte)
