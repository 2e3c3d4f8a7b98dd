"""The embedded editor: region-based edits computed from the landmarks and masks, no weights needed.

Each catalog `kind` turns a value's spec into a *layer*: the colour the edited pixels take and a
per-pixel opacity (plus any silhouette the edit adds, e.g. a hat above the head); `apply` composites
it as `input * (1 - t * alpha) + color * t * alpha`.

Spec fields per kind (catalog.py holds the values and their continuous ranges):
- recolor (hair): `color` target median colour, `shine` sheen where the portrait's light falls. The
  hair moves from its own median colour to the target in Lab, keeping its lighting and strand detail
  (deviations from the median scaled by the lightness ratio: `_relight`), plus strand texture drawn
  along the hair's flow (structure-tensor orientation of the photo, hair falling from the crown
  where the photo shows none) in proportion to the lightness change.
- tone (skin): `color`, the target median skin colour: the same Lab move, texture never amplified.
- lipstick: `color`, `opacity`, `gloss` (highlight where the light falls on the lips).
- brows: `color`, `thickness` (x the detected brow height), `density`, `arch`, `replace` (how much
  the drawn brow replaces the photo's; default 1); the photo's brow is inpainted away and hairs grow
  from roots in the brow outline along the brow's growth pattern.
- beard: `reach` (0 = around the mouth .. 1 = ear to ear), `chin` (0 = upper lip .. 1 = over the
  chin), `length` (face heights; 0 = no beard), `density`, `color` (None: the person's brow colour).
  Hairs grow from fixed roots along a growth field, so a longer beard reaches further down.
- glasses, hat, earrings, headphones: 3D accessories (perse/synth/edit/accessories.py documents their
  fields), drawn by the lift animator with the lifted head; the edit is their frontal render and
  carries them (`EditResult.accessory`) so clips show them in 3D at every pose.
Hair, brows and beard are lit by the portrait's own light on the skin beneath them.

In-betweens (`edit`, `edit_between`; interpolation ground truth): the look is drawn at mixed
parameters, never a cross-fade of two images: numeric fields (colours, lengths, sizes, shape
exponents) mix linearly. From the unedited source (None) a kind with an entry in OWN_LOOK starts at
the source's own look in its terms (the hair's own colour, a beard of length 0), so a beard grows and
hair changes colour through plausible colours; `edit(value, t)` is that path, and t = 0 returns the
input exactly. Kinds without an entry fade in with t; when two values differ in a discrete field
the target is the cross-fade of the two edits, each drawn at the mixed numeric parameters. Noise (strand roots, textures) is seeded per category and drawn the same way at
every parameter, so it does not flicker along t and a denser beard only adds hairs.
"""
from __future__ import annotations

import functools
import math
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from perse.errors import PerseError
from perse.synth import face as F
from perse.synth.animate.lift import LiftAnimator
from perse.synth.catalog import Category, Value
from perse.synth.edit import EditResult, accessories, check_strength, input_image, region_of
from perse.synth.lighting import estimate_lighting


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
    # Maps computed from the portrait alone (`_per_portrait`), shared by every context of that portrait.
    maps: dict[str, np.ndarray] = field(default_factory=dict)

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


def _per_portrait(compute: Callable[[_Context], np.ndarray]) -> Callable[[_Context], np.ndarray]:
    """A map that depends on the portrait alone (its pixels, masks and landmarks; no spec, no noise),
    computed once per portrait: a run's looks and in-betweens ask for the same few maps hundreds of times
    (the hair mask and the skin likeness were a tenth of the editing work). Kept read-only, since every
    caller shares it."""
    @functools.wraps(compute)
    def cached(ctx: _Context) -> np.ndarray:
        value = ctx.maps.get(compute.__name__)
        if value is None:
            value = compute(ctx)
            value.setflags(write=False)
            ctx.maps[compute.__name__] = value
        return value
    return cached


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


def _lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (any shape ending in 3) -> CIE Lab (L in [0, 100])."""
    rgb = np.asarray(rgb, np.float32)
    return cv2.cvtColor(np.ascontiguousarray(rgb.reshape(-1, 1, 3)), cv2.COLOR_RGB2LAB).reshape(rgb.shape)


def _rgb(lab: np.ndarray) -> np.ndarray:
    lab = np.asarray(lab, np.float32)
    out = cv2.cvtColor(np.ascontiguousarray(lab.reshape(-1, 1, 3)), cv2.COLOR_LAB2RGB).reshape(lab.shape)
    return np.clip(out, 0.0, 1.0)


def _relight(lab: np.ndarray, shading: np.ndarray, own: np.ndarray, target: np.ndarray,
             texture_limit: float) -> np.ndarray:
    """Move a region from its own median colour `own` to `target` (both Lab), keeping the photo's light.

    Lightness deviations from the median carry the lighting (`shading`: the low-pass lightness) and the
    texture (the rest). A lighter material shows the same light with more lightness contrast, so both
    scale with sqrt(target / own lightness); texture at most by `texture_limit`, since amplifying it
    amplifies the camera's noise too (skin turns grainy). The hue shift fades into deep shadow (of the
    lighting, not of the texture), where every material looks alike. target == own returns `lab` (up
    to rounding): the source look.
    """
    scale = float(np.clip(math.sqrt(max(float(target[0]), 1.0) / max(float(own[0]), 1.0)), 0.4, 3.0))
    out = np.empty_like(lab)
    lit = target[0] + (shading - own[0]) * scale
    out[..., 0] = lit + (lab[..., 0] - shading) * min(scale, texture_limit)
    reach = np.clip(lit / max(float(target[0]), 1.0), 0.25, 1.0)[..., None]
    out[..., 1:] = lab[..., 1:] + (target[1:] - own[1:]) * reach
    return out


def _orientation(gray: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Local strand direction (radians, modulo pi) and its coherence in [0, 1], from the structure tensor
    of `gray` averaged over `scale` pixels: strands run across the dominant luminance gradient."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    jxx, jxy, jyy = (cv2.GaussianBlur(g, (0, 0), scale) for g in (gx * gx, gx * gy, gy * gy))
    angle = 0.5 * np.arctan2(2 * jxy, jxx - jyy) + np.pi / 2
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / (jxx + jyy + 1e-8)
    return angle.astype(np.float32), np.clip(coherence, 0, 1).astype(np.float32)


def _blend_orientations(angle_a: np.ndarray, angle_b: np.ndarray, weight_b: np.ndarray) -> np.ndarray:
    """Mix two direction fields modulo pi (doubled angles, so opposite arrows agree)."""
    c = (1 - weight_b) * np.cos(2 * angle_a) + weight_b * np.cos(2 * angle_b)
    s = (1 - weight_b) * np.sin(2 * angle_a) + weight_b * np.sin(2 * angle_b)
    return (0.5 * np.arctan2(s, c)).astype(np.float32)


def _along(texture: np.ndarray, angle: np.ndarray, length: float, start: float = -0.5) -> np.ndarray:
    """Mean of `texture` over a straight segment `length` px long through each pixel along `angle`, from
    `start` to start + 1 segment lengths (line integral convolution, one straight piece per pixel).
    Noise becomes streaks that follow the field; with start = -1, a pixel gathers what lies *behind* it,
    so sparse roots become strands growing in the field's direction."""
    size = texture.shape[0]
    coords = np.arange(size, dtype=np.float32)
    xx, yy = np.meshgrid(coords, coords)
    dx, dy = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
    samples = int(np.clip(math.ceil(length / 1.0), 2, 24))
    total = np.zeros_like(texture, dtype=np.float32)
    # Python floats: a float64 numpy scalar would promote the maps to float64 under numpy 2, which
    # cv2.remap refuses.
    for offset in ((start + (np.arange(samples) + 0.5) / samples) * length).tolist():
        total += cv2.remap(texture, xx + offset * dx, yy + offset * dy, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    return total / samples


def _strand_roots(rng: np.random.Generator, size: int, probability: np.ndarray) -> np.ndarray:
    """Where hairs sprout: a fixed uniform draw under a per-pixel probability, so raising the density
    only adds roots (the same hairs stay as a look grows denser), with a random tone per root."""
    draw = rng.random((size, size), dtype=np.float32)
    tone = rng.random((size, size), dtype=np.float32)
    return (draw < probability).astype(np.float32) * (0.6 + 0.8 * tone)


def _grow_strands(roots: np.ndarray, angle: np.ndarray, length: float) -> tuple[np.ndarray, np.ndarray]:
    """Hairs of `length` px growing from `roots` along `angle`: (coverage in [0, 1], tone in [0.6, 1.4]).
    Coverage vanishes with the length, so a length of 0 is bare skin."""
    if length <= 0:
        zero = np.zeros_like(roots)
        return zero, zero + 1.0
    present = (roots > 0).astype(np.float32)
    # Roots are single pixels; a hair is about one pixel wide at 512 px.
    hits = _along(present, angle, max(length, 1.0), start=-1.0) * length
    tone = _along(roots, angle, max(length, 1.0), start=-1.0) * length
    return (1 - np.exp(-1.6 * hits)).astype(np.float32), np.where(hits > 1e-4, tone / np.maximum(hits, 1e-4), 1.0)


def _skin_light(ctx: _Context, blur: float) -> np.ndarray:
    """The portrait's light on the skin at each pixel, relative to the face's median skin (linear
    luminance, low-passed so that pores and stubble do not count): what hair lying there receives."""
    from perse.synth.lighting import srgb_to_linear

    y = (srgb_to_linear(ctx.image) @ np.array([0.2126, 0.7152, 0.0722])).astype(np.float32)
    low = cv2.GaussianBlur(y, (0, 0), blur)
    reference = max(float(_median_inside(low, ctx.mask("face_skin"), float(low.mean()))), 1e-3)
    return np.clip(low / reference, 0.25, 1.6)


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    coarse = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _fill_polygon(size: int, points: np.ndarray, supersample: int = 4) -> np.ndarray:
    """Anti-aliased polygon coverage in [0, 1]."""
    canvas = np.zeros((size * supersample, size * supersample), np.uint8)
    cv2.fillPoly(canvas, [np.round(points * supersample).astype(np.int32)], 255, cv2.LINE_AA)
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


@_per_portrait
def _image_lab(ctx: _Context) -> np.ndarray:
    return _lab(ctx.image)


@_per_portrait
def _skin_likeness(ctx: _Context) -> np.ndarray:
    """How much each pixel's colour resembles the face's skin (Lab distance): region masks drawn from
    landmarks blur the hairline, so skin-coloured "hair" pixels are forehead and the reverse."""
    lab = _image_lab(ctx)
    skin = _median_inside(lab, ctx.mask("face_skin"), lab.reshape(-1, 3).mean(0))
    chroma = np.linalg.norm(lab[..., 1:] - skin[1:], axis=-1)
    # Highlights on skin are brighter than its median; hair is darker. Only darker counts against.
    lightness = np.clip(skin[0] - lab[..., 0], 0, None)
    # Tight tolerances: light brown hair is close to skin in hue; only what truly matches counts.
    return (np.exp(-0.5 * (chroma / 5.0) ** 2) * np.exp(-0.5 * (lightness / 15.0) ** 2)).astype(np.float32)


# --- kinds -------------------------------------------------------------------------------------------

@_per_portrait
def _hair_mask(ctx: _Context) -> np.ndarray:
    hair = ctx.mask("hair") * (1 - ctx.mask("ears", "face_skin"))
    _, yy = ctx.grid()
    unit = ctx.face.face_height
    # Colour statistics of sure skin: the cheeks, below the eyes, where no hair falls.
    cheeks = (ctx.mask("face_skin") > 0.5) & (yy > ctx.face.eye_center("right")[1] + 0.05 * unit)
    mask = hair * (1 - _skin_likeness(ctx))
    if cheeks.sum() <= 8 or (hair > 0.5).sum() <= 8:
        return mask
    # Bangs: region masks drawn from landmarks count the upper forehead as skin even where hair falls
    # over it, so the forehead is a candidate too, held to a stricter test below.
    forehead = ctx.mask("face_skin") * _smoothstep(ctx.face.brow_top - 0.02 * unit, ctx.face.brow_top - 0.08 * unit, yy)
    zone = np.maximum(ctx.mask("hair") * (1 - ctx.mask("ears")), forehead)
    lab = _image_lab(ctx)
    # Averaged over a small neighbourhood, so a strand's highlight counts with its strand.
    lab = cv2.GaussianBlur(lab, (0, 0), max(0.7, 0.02 * unit))
    skin, skin_spread = np.median(lab[cheeks], axis=0), lab[cheeks].std(axis=0) + 1.0
    own, own_spread = np.median(lab[hair > 0.5], axis=0), lab[hair > 0.5].std(axis=0) + 1.0
    # Which of the two a pixel's colour is nearer, in units of each one's spread. A specular highlight
    # moves skin towards white, so skin's colours are the segment from its median to white.
    white = np.array([100.0, 0.0, 0.0], np.float32)
    toward = np.clip(((lab - skin) @ (white - skin)) / float((white - skin) @ (white - skin)), 0.0, 1.0)
    to_skin = np.linalg.norm((lab - skin - toward[..., None] * (white - skin)) / skin_spread, axis=-1)
    to_hair = np.linalg.norm((lab - own) / own_spread, axis=-1)
    # Hair is what is nearer the hair's colour (on the forehead, clearly nearer): a lit temple that the
    # hair mask let in, recoloured, would blow out.
    return zone * (1 - _skin_likeness(ctx)) * _smoothstep(forehead - 0.5, forehead + 0.5, to_skin - to_hair)


@_per_portrait
def _hair_flow(ctx: _Context) -> np.ndarray:
    """Direction of the strands: the photo's own (structure tensor), and where the photo shows no clear
    direction (smooth or dark hair), hair falling away from the crown."""
    face, unit = ctx.face, ctx.face.face_height
    angle, coherence = _orientation(_image_lab(ctx)[..., 0] / 100.0, max(1.0, 0.02 * unit))
    xx, yy = ctx.grid()
    crown = np.array([face.center_x, face.xy[F.FOREHEAD_TOP, 1] - 0.2 * unit])
    falling = np.arctan2(yy - crown[1], xx - crown[0])
    return _blend_orientations(angle, falling, np.clip(1.0 - 2.5 * coherence, 0.0, 1.0))


def _recolor(ctx: _Context, spec: dict[str, Any]) -> Layer:
    mask = _hair_mask(ctx)
    unit = ctx.face.face_height
    lab = _image_lab(ctx)
    shading = cv2.GaussianBlur(lab[..., 0], (0, 0), max(1.0, 0.02 * unit))
    own = _median_inside(lab, mask, lab.reshape(-1, 3).mean(0))
    target = _lab(spec["color"])
    out = _relight(lab, shading, own, target, texture_limit=3.0)
    # Strands along the hair's flow: dark hair shows its strands faintly, so a much lighter (or darker)
    # colour gets strand texture the photo cannot supply, in proportion to the lightness change.
    noise = cv2.GaussianBlur(ctx.rng.standard_normal(mask.shape).astype(np.float32), (0, 0), 0.8)
    streaks = _along(noise, _hair_flow(ctx), max(2.0, 0.08 * unit))
    streaks = streaks - cv2.GaussianBlur(streaks, (0, 0), max(1.5, 0.012 * unit))
    streaks = streaks / max(float(streaks[mask > 0.5].std()) if (mask > 0.5).any() else 1.0, 1e-6)
    change = min(abs(float(target[0] - own[0])) / 40.0, 1.0)
    out[..., 0] += change * 0.08 * target[0] * streaks
    # Shine: a sheen where the portrait's light falls on the hair, broken up by the strands.
    lit = _smoothstep(0.0, 1.0, (shading - own[0]) / (float(lab[..., 0][mask > 0.5].std()) + 1.0 if (mask > 0.5).any() else 1.0))
    out[..., 0] += float(spec["shine"]) * 0.25 * (100 - target[0]) * lit * np.clip(0.75 + 0.35 * streaks, 0, 1.5)
    return Layer(_rgb(out), mask)


def _tone(ctx: _Context, spec: dict[str, Any]) -> Layer:
    hair = ctx.mask("hair")
    near_face = cv2.dilate(ctx.mask("face_skin"), np.ones((3, 3), np.uint8), iterations=max(1, int(0.12 * ctx.face.face_height)))
    # Skin that the hair, brow and lip masks let in (a hairline, around the brows) changes with the
    # rest; the hair, brows and lips themselves keep their colour.
    # (Summed: the exclusive masks partition the person, so their soft borders add up to 1, no seam.)
    likeness = _skin_likeness(ctx)
    mask = np.clip(ctx.mask("face_skin", "ears", "neck") + (ctx.masks["brows"] + ctx.masks["lips"]) * likeness, 0, 1)
    mask = np.maximum(mask, hair * near_face * likeness)
    lab = _image_lab(ctx)
    shading = cv2.GaussianBlur(lab[..., 0], (0, 0), max(1.0, 0.02 * ctx.face.face_height))
    own = _median_inside(lab, ctx.mask("face_skin"), lab.reshape(-1, 3).mean(0))
    # Texture is never amplified: pores stay pores and the camera's noise does not become grain.
    return Layer(_rgb(_relight(lab, shading, own, _lab(spec["color"]), texture_limit=1.0)), mask)


def _lipstick(ctx: _Context, spec: dict[str, Any]) -> Layer:
    mask = ctx.mask("lips")
    lab = _image_lab(ctx)
    shading = cv2.GaussianBlur(lab[..., 0], (0, 0), max(1.0, 0.01 * ctx.face.face_height))
    own = _median_inside(lab, mask, lab.reshape(-1, 3).mean(0))
    target = _lab(spec["color"])
    out = _relight(lab, shading, own, target, texture_limit=1.5)
    # Gloss: a highlight where the portrait's light falls on the lips.
    spread = float(lab[..., 0][mask > 0.5].std()) + 1.0 if (mask > 0.5).any() else 1.0
    out[..., 0] += float(spec["gloss"]) * 0.5 * (100 - target[0]) * _smoothstep(0.6, 2.0, (shading - own[0]) / spread)
    return Layer(_rgb(out), mask * float(spec["opacity"]))


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
    center[:, 1] -= float(spec["arch"]) * height * np.sin(np.pi * u) ** 1.5
    return np.concatenate([center + half, (center - half)[::-1]])


def _brow_flow(ctx: _Context, outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """How brow hairs grow: upwards at the inner end, fanning into the brow's direction, slightly down
    at the tail."""
    xx, yy = ctx.grid()
    span = outer - inner
    along = span / max(float(np.linalg.norm(span)), 1e-6)
    up = np.array([along[1], -along[0]]) * (1.0 if along[0] > 0 else -1.0)  # the normal towards the forehead
    u = np.clip(((xx - inner[0]) * span[0] + (yy - inner[1]) * span[1]) / max(float(span @ span), 1e-6), 0, 1)
    w = _smoothstep(0.05, 0.4, u)[..., None]
    direction = (1 - w) * (up + 0.35 * along) + w * (along + (0.2 - 0.35 * u[..., None]) * up)
    return np.arctan2(direction[..., 1], direction[..., 0]).astype(np.float32)


def _brow_grow_px(ctx: _Context) -> int:
    """How far a brow's stray hairs reach beyond the brow landmarks' outline of its core."""
    return max(1, int(round(0.02 * ctx.face.face_height)))


@_per_portrait
def _old_brows(ctx: _Context) -> np.ndarray:
    """Where the photo's brows grow (uint8), their stray hairs included."""
    grow = _brow_grow_px(ctx)
    return cv2.dilate((ctx.mask("brows") > 0.2).astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))


@_per_portrait
def _bare_brows(ctx: _Context) -> np.ndarray:
    """The photo with its brows inpainted away."""
    grow, old_grown = _brow_grow_px(ctx), _old_brows(ctx)
    bare = cv2.inpaint(np.round(ctx.image * 255).astype(np.uint8), old_grown, max(3, 2 * grow), cv2.INPAINT_TELEA)
    bare = cv2.GaussianBlur(bare.astype(np.float32) / 255.0, (0, 0), 0.6 * grow)
    return np.where(old_grown[..., None] > 0, bare, ctx.image)


@_per_portrait
def _brows_growth(ctx: _Context) -> np.ndarray:
    """Both brows' growth pattern (`_brow_flow`), each on its side of the face."""
    flow = np.zeros((ctx.size, ctx.size), np.float32)
    xx, _ = ctx.grid()
    for upper in (F.RIGHT_BROW_UPPER, F.LEFT_BROW_UPPER):
        outer, inner = ctx.face.xy[upper[0]], ctx.face.xy[upper[-1]]
        side = (xx - ctx.face.center_x) * (outer[0] - inner[0]) > 0
        flow = np.where(side, _brow_flow(ctx, outer, inner), flow)
    return flow


@_per_portrait
def _brows_light(ctx: _Context) -> np.ndarray:
    """The light on the bare brow skin, relative to the face's median skin."""
    bare = _bare_brows(ctx)
    return np.clip(cv2.GaussianBlur(_luminance(bare), (0, 0), max(1.0, 0.04 * ctx.face.face_height)) /
                   max(float(_median_inside(_luminance(bare), ctx.mask("face_skin"), 0.5)), 1e-3), 0.3, 1.5)


def _brows(ctx: _Context, spec: dict[str, Any]) -> Layer:
    from perse.synth.lighting import linear_to_srgb, srgb_to_linear

    size, unit = ctx.size, ctx.face.face_height
    old_grown, bare, flow = _old_brows(ctx), _bare_brows(ctx), _brows_growth(ctx)
    outline = np.zeros((size, size), np.float32)
    for upper, lower in ((F.RIGHT_BROW_UPPER, F.RIGHT_BROW_LOWER), (F.LEFT_BROW_UPPER, F.LEFT_BROW_LOWER)):
        outline = np.maximum(outline, _fill_polygon(size, _brow_outline(ctx, upper, lower, spec)))
    density = float(spec["density"])
    # Hairs sprout inside the outline, thinning at its edge, and lie along the brow's growth pattern.
    soft = cv2.GaussianBlur(outline, (0, 0), max(0.6, 0.008 * unit))
    roots = _strand_roots(ctx.rng, size, 0.3 * density * _smoothstep(0.1, 0.7, soft))
    hairs, tone = _grow_strands(roots, flow, 0.035 * unit)
    # Between the hairs the skin is shadowed by more hairs than the eye resolves.
    underneath = 0.35 * density * soft
    alpha_brow = np.clip(1 - (1 - hairs) * (1 - underneath), 0, 1)
    light = _brows_light(ctx)
    hair_rgb = linear_to_srgb(srgb_to_linear(spec["color"])[None, None] * (light * np.where(hairs > 0, tone, 0.8))[..., None])
    color = bare * (1 - alpha_brow[..., None]) + hair_rgb.astype(np.float32) * alpha_brow[..., None]
    alpha = np.maximum(cv2.GaussianBlur(old_grown.astype(np.float32), (0, 0), max(0.5, 0.006 * unit)), alpha_brow)
    # The source look (replace = 0) is the photo's own brow; the redrawn one takes over within the
    # first third of the way, while its parameters are still close to the photo's.
    return Layer(np.clip(color, 0, 1), np.clip(alpha, 0, 1) * min(1.0, float(spec["replace"]) / 0.35))


@_per_portrait
def _brow_color(ctx: _Context) -> np.ndarray:
    """The person's own hair colour for facial hair: the darker half of the brow pixels."""
    brows = ctx.mask("brows") > 0.5
    if brows.sum() < 8:
        return np.array([0.12, 0.09, 0.07], np.float32)
    pixels = ctx.image[brows]
    luminance = _luminance(pixels)
    return (pixels[luminance <= np.median(luminance)].mean(axis=0) * 0.85).astype(np.float32)


@_per_portrait
def _beard_flow(ctx: _Context) -> np.ndarray:
    """Facial hair grows down, fanning outwards from the chin's midline; on the upper lip it runs down
    and out from the philtrum."""
    xx, yy = ctx.grid()
    face = ctx.face
    mouth_x = float(face.xy[[F.MOUTH_RIGHT, F.MOUTH_LEFT], 0].mean())
    corner_y = float(face.xy[[F.MOUTH_RIGHT, F.MOUTH_LEFT], 1].mean())
    side = np.clip((xx - mouth_x) / (0.5 * face.face_width), -1, 1)
    upper_lip = _smoothstep(corner_y + 0.02 * face.face_height, corner_y - 0.03 * face.face_height, yy)
    tilt = side * (0.35 + 0.9 * upper_lip * _smoothstep(0.7, 0.2, np.abs(side)))
    return (np.pi / 2 - tilt).astype(np.float32)


def _beard(ctx: _Context, spec: dict[str, Any]) -> Layer:
    from perse.synth.lighting import linear_to_srgb, srgb_to_linear

    size, face, unit = ctx.size, ctx.face, ctx.face.face_height
    xx, yy = ctx.grid()
    mouth_x = float(face.xy[[F.MOUTH_RIGHT, F.MOUTH_LEFT], 0].mean())
    corner_y = float(face.xy[[F.MOUTH_RIGHT, F.MOUTH_LEFT], 1].mean())
    mouth_half = 0.5 * abs(face.xy[F.MOUTH_LEFT, 0] - face.xy[F.MOUTH_RIGHT, 0])
    feather = 0.03 * unit
    # Where hair may grow: the ingest's beard zone (lower face below the cheek line, a band under the
    # jaw), narrowed sideways by `reach` and downwards by `chin`.
    zone = ctx.mask("beard") * (1 - ctx.mask("lips", "mouth_interior"))
    half_width = 1.3 * mouth_half + float(spec["reach"]) * (0.75 * face.face_width - 1.3 * mouth_half)
    zone = zone * _smoothstep(half_width + feather, half_width - feather, np.abs(xx - mouth_x))
    bottom = corner_y + 0.03 * unit + float(spec["chin"]) * (float(face.xy[F.CHIN, 1]) + 0.2 * unit - corner_y)
    zone = zone * _smoothstep(bottom + feather, bottom - feather, yy)
    # A ragged edge, thinning out over a band: hair is sparse where a beard ends.
    ragged = _value_noise(ctx.rng, size, max(4, size // 10))
    inside = cv2.distanceTransform((zone > 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    area = _smoothstep(0.0, 0.07 * unit, inside * (0.6 + 0.8 * ragged)) * zone
    length = max(float(spec["length"]), 0.0) * unit
    density = float(np.clip(spec["density"], 0.0, 1.0))
    # Hairs sprout in the area and grow along the growth field: a longer beard reaches further, down
    # over the jaw, and covers the skin more; its shape follows from the length (no opacity fade).
    # Short hairs are thin and partly under the skin: stubble is a fine, faint speckle.
    roots = _strand_roots(ctx.rng, size, 0.35 * density * area)
    flow = _beard_flow(ctx)
    hairs, tone = _grow_strands(roots, flow, length)
    hairs = hairs * _smoothstep(0.0, 0.03 * unit, length) ** 0.5
    # A second, denser layer of short hairs under the visible ones: a beard's body.
    under, _ = _grow_strands(_strand_roots(ctx.rng, size, 0.5 * density * area), flow, 0.5 * length)
    body = cv2.GaussianBlur(under, (0, 0), max(0.6, 0.006 * unit)) * min(1.0, length / (0.03 * unit))
    # Stubble shows as a shadow under the skin before hairs are long enough to see one by one.
    shadow = 0.3 * density * area * min(1.0, length / (0.006 * unit))
    coverage = np.clip(1 - (1 - hairs) * (1 - body), 0, 1)
    base = np.asarray(spec["color"], np.float32)
    # The portrait's light on the skin beneath; the beard's volume rounds off towards its edges and
    # the inner layers, shadowed by the tips, are darker.
    light = _skin_light(ctx, max(1.0, 0.05 * unit)) * (0.6 + 0.4 * _smoothstep(0.0, 0.12 * unit, inside))
    depth = 1.0 - 0.35 * body
    strands = np.where(hairs > 0, tone, 0.75)
    # Even dark hair catches a little light along each strand.
    hair_lin = srgb_to_linear(base)[None, None] * (light * strands * depth)[..., None] + \
        (0.015 * light * np.clip(strands - 0.8, 0, None))[..., None]
    hair_rgb = linear_to_srgb(hair_lin)
    shaded_skin = linear_to_srgb(srgb_to_linear(ctx.image) * (1 - shadow[..., None])
                                 + srgb_to_linear(base)[None, None] * light[..., None] * shadow[..., None] * 0.5)
    color = shaded_skin * (1 - coverage[..., None]) + hair_rgb * coverage[..., None]
    # Opaque wherever the stubble shadow reaches (its colour there is the shaded skin, which fades
    # smoothly into the photo), hair coverage beyond it.
    alpha = np.maximum(coverage, (shadow > 0).astype(np.float32))
    outside = np.clip(coverage - ctx.matte, 0, 1)
    return Layer(np.clip(color, 0, 1).astype(np.float32), np.clip(alpha, 0, 1).astype(np.float32), outside)


# The source look of each kind in its own terms, given the look it is heading to: in-betweens from the
# source morph these parameters (hair colour from the person's own, beard length from 0) instead of
# fading a finished edit in. Kinds without an entry fade in with their strength.
def _own_hair(ctx: _Context, spec: dict[str, Any]) -> dict[str, Any]:
    lab = _image_lab(ctx)
    return {**spec, "color": tuple(_rgb(_median_inside(lab, _hair_mask(ctx), lab.reshape(-1, 3).mean(0))).tolist()),
            "shine": 0.0}


def _own_skin(ctx: _Context, spec: dict[str, Any]) -> dict[str, Any]:
    lab = _image_lab(ctx)
    return {**spec, "color": tuple(_rgb(_median_inside(lab, ctx.mask("face_skin"), lab.reshape(-1, 3).mean(0))).tolist())}


def _own_lips(ctx: _Context, spec: dict[str, Any]) -> dict[str, Any]:
    lab = _image_lab(ctx)
    return {**spec, "color": tuple(_rgb(_median_inside(lab, ctx.mask("lips"), lab.reshape(-1, 3).mean(0))).tolist()),
            "gloss": 0.0}


def _own_brows(ctx: _Context, spec: dict[str, Any]) -> dict[str, Any]:
    return {**spec, "color": tuple(_brow_color(ctx).tolist()), "thickness": 1.0, "density": 1.0, "arch": 0.0,
            "replace": 0.0}


def _no_beard(ctx: _Context, spec: dict[str, Any]) -> dict[str, Any]:
    return {**spec, "length": 0.0}


OWN_LOOK: dict[str, Callable[[_Context, dict[str, Any]], dict[str, Any]]] = {
    "recolor": _own_hair, "tone": _own_skin, "lipstick": _own_lips, "brows": _own_brows, "beard": _no_beard,
    # An accessory grows out of nothing: its size parameters from 0 (accessories.grow).
    **{kind: (lambda ctx, spec, kind=kind: accessories.grow(kind, spec, 0.0)) for kind in accessories.KINDS},
}
# Fields a catalog value may leave out, and what they mean then.
DEFAULTS: dict[str, dict[str, Any]] = {"brows": {"arch": 0.0, "replace": 1.0}, **accessories.DEFAULTS}


def _complete(ctx: _Context, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A value's spec with its defaults filled in; colour None (facial hair) = the person's own."""
    spec = {**DEFAULTS.get(kind, {}), **spec}
    if "color" in spec and spec["color"] is None:
        spec["color"] = tuple(_brow_color(ctx).tolist())
    return spec


KINDS: dict[str, Callable[[_Context, dict[str, Any]], Layer]] = {
    "recolor": _recolor, "tone": _tone, "lipstick": _lipstick, "brows": _brows, "beard": _beard,
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


# Faces whose lifted head the editor keeps (a run edits one; tests a few).
LIFTED_CACHE = 4
# Portraits whose maps are kept (least recently used dropped): the source, and the mixed looks that the
# editing threads draw over (a few megabytes each at 512 px).
PORTRAIT_MAPS_CACHE = 8
# An accessory's share of a pixel below this is rounding in its render: the pixel stays the portrait's.
SHARE_FLOOR = 1e-4


class _ByIdentity:
    """Values built from some objects, keyed by those objects' identity and kept for the `size` most
    recently used. An entry holds its objects, so that their ids cannot be reused by others while it
    lives. A build holds this cache's lock: threads asking for the same value wait for one build instead
    of repeating it (only this cache's users wait)."""

    def __init__(self, size: int):
        self.size = size
        self._entries: dict[tuple[int, ...], tuple[tuple, Any]] = {}
        self._lock = threading.Lock()

    def get(self, parts: tuple, build: Callable[[], Any]) -> Any:
        key = tuple(id(part) for part in parts)
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                if len(self._entries) >= self.size:
                    self._entries.pop(next(iter(self._entries)))  # the least recently used
                entry = (parts, build())
            self._entries[key] = entry
            return entry[1]


class ParametricEditor:
    name = "parametric"
    exact = True

    def __init__(self, seed: int = 0, device: str = "cpu"):
        self.seed = int(seed)
        # Where accessories are drawn with the lifted head (a large share of a run's editing on the
        # CPU); everything else is numpy and OpenCV.
        self.device = device
        self._heads = _ByIdentity(LIFTED_CACHE)
        self._maps = _ByIdentity(PORTRAIT_MAPS_CACHE)

    @classmethod
    def from_config(cls, config) -> "ParametricEditor":
        return cls(seed=config.seed, device=config.resolved_device())

    def _context(self, portrait, category: Category) -> _Context:
        where = f"portrait {portrait.source or '(in memory)'}"
        F.validate_landmarks(portrait.landmarks, portrait.size, where)
        rng = np.random.default_rng([self.seed, zlib.crc32(category.name.encode()), portrait.size])
        maps = self._portrait_maps(portrait)
        return _Context(maps["input"], dict(portrait.masks), np.asarray(portrait.matte, np.float32),
                        F.FaceFrame(np.asarray(portrait.landmarks, np.float64)), rng, where, maps)

    def _portrait_maps(self, portrait) -> dict[str, np.ndarray]:
        """The `_per_portrait` maps of this portrait (and its pixels as floats), kept for the last few
        portraits (a mixed look draws over a new one), keyed by the objects a map reads."""
        def start() -> dict[str, np.ndarray]:
            image = input_image(portrait)
            image.setflags(write=False)
            return {"input": image}

        return self._maps.get((portrait.image, portrait.masks, portrait.matte, portrait.landmarks), start)

    def layer(self, portrait, category: Category, spec: dict[str, Any]) -> Layer:
        if category.kind not in KINDS:
            raise PerseError(f"category '{category.name}' has kind '{category.kind}', which the parametric "
                             f"editor cannot draw; kinds: {', '.join(KINDS)}")
        ctx = self._context(portrait, category)
        return KINDS[category.kind](ctx, _complete(ctx, category.kind, spec))

    def apply(self, portrait, layer: Layer, strength: float) -> EditResult:
        t = check_strength(strength)
        image = input_image(portrait)
        weight = (t * layer.alpha)[..., None].astype(np.float32)
        edited = image * (1 - weight) + layer.color.astype(np.float32) * weight
        matte = np.asarray(portrait.matte, np.float32)
        if layer.silhouette is not None:
            matte = np.maximum(matte, t * layer.silhouette)
        return EditResult(edited.astype(np.float32), region_of(layer.alpha), matte.astype(np.float32))

    def _look(self, portrait, category: Category, spec: dict[str, Any]) -> EditResult:
        """The look `spec` at full strength: a painted layer, or an accessory rendered with the lifted head."""
        if category.kind not in accessories.KINDS:
            return self.apply(portrait, self.layer(portrait, category, spec), 1.0)
        animator, head = self._lifted(portrait)
        image = input_image(portrait)
        matte = np.asarray(portrait.matte, np.float32)
        accessory = accessories.build_accessory(category.kind, spec, head, image)
        own, share = animator.accessory_part(accessory)
        # The accessory over the portrait under it (shaded, hidden hair cleared), premultiplied: where it
        # covers a share of a pixel, the rest is the portrait itself, not the lifted head's frontal
        # render, which is only close to it. So a part growing from nothing changes the portrait
        # from nothing, and where the accessory is absent only its shadows do.
        under, under_matte = accessory.under_image, accessory.under_matte
        present = share > SHARE_FLOOR
        composite_matte = share + (1 - share) * under_matte
        composite = (own + ((1 - share) * under_matte)[..., None] * under) / np.maximum(composite_matte, 1e-6)[..., None]
        edited = np.where(present[..., None], np.clip(composite, 0, 1), under)
        edited_matte = np.where(present, composite_matte, under_matte)
        changed = (np.abs(edited - image).max(-1) > 0) | (edited_matte != matte)
        return EditResult(edited.astype(np.float32), region_of(changed.astype(np.float32)),
                          edited_matte.astype(np.float32), accessory)

    def _lifted(self, portrait) -> tuple[LiftAnimator, accessories.Head]:
        """The portrait lifted to 3D (drawn by the splatter, on the editor's device) and its accessory fit,
        built once per face: pairs ask from several threads, and a portrait that other looks were drawn
        over (a mixed look: `dataclasses.replace` keeps its landmarks) is the same head, lit by the same
        light; its recoloured pixels reach the accessory through `image` alone."""
        def lift() -> tuple[LiftAnimator, accessories.Head]:
            animator = LiftAnimator(portrait, device=self.device, renderer="splat")
            lighting = estimate_lighting(portrait, animator.geometry)
            return animator, accessories.Head(portrait, animator.geometry, lighting)

        return self._heads.get((portrait.landmarks,), lift)

    def edit(self, portrait, category: Category, value: Value, strength: float = 1.0) -> EditResult:
        """`value` at `strength`: the in-between from the source look (`edit_between(None, value, t)`)."""
        return self.edit_between(portrait, category, None, value, strength)

    def edit_between(self, portrait, category: Category, a: Value | None, b: Value | None, t: float) -> EditResult:
        """The exact image between two values (None = the unedited source) at mix t in [0, 1]: the look
        drawn at mixed parameters, so that every t is a look of its own (module docstring)."""
        t = check_strength(t)
        if (a is None and (b is None or t == 0.0)) or (b is None and t == 1.0):
            return self.apply(portrait, Layer(np.zeros(portrait.image.shape, np.float32),
                                              np.zeros(portrait.image.shape[:2], np.float32)), 0.0)
        kind = category.kind
        if (a is None or b is None) and kind not in OWN_LOOK:
            value, strength = (b, t) if a is None else (a, 1 - t)
            return self.apply(portrait, self.layer(portrait, category, value.spec), strength)
        ctx = self._context(portrait, category)
        spec_a = None if a is None else _complete(ctx, kind, a.spec)
        spec_b = None if b is None else _complete(ctx, kind, b.spec)
        with_a, with_b = mix_specs(spec_a or OWN_LOOK[kind](ctx, spec_b), spec_b or OWN_LOOK[kind](ctx, spec_a), t)
        first = self._look(portrait, category, with_a)
        if with_a == with_b:
            return first
        second = self._look(portrait, category, with_b)
        return EditResult((1 - t) * first.image + t * second.image, np.maximum(first.region, second.region),
                          (1 - t) * first.matte + t * second.matte)
