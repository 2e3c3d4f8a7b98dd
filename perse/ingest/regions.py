"""Region masks (perse.ingest.portrait.REGIONS) from the face mesh, the person matte and the photo's colours.

The mesh gives exact outlines inside the face (eyes, brows, lips, mouth, nose, face oval). Outside it no
model exists, so regions there combine a geometric prior placed relative to the face (ears beside the oval
at eye-to-nose height, neck below the jaw, clothes below a collar line, hair above and around the head)
with a skin-colour model measured on the person's own cheeks: skin-coloured pixels in the neck and ear
priors are neck and ears, the rest of the person inside the head prior is hair.

The exclusive regions (all but nose and beard, which are areas inside others) form a partition of the
person: they never overlap, and together they cover the matte. Nose lies inside face skin; beard marks
where a beard grows (lower face, jaw and under the chin) and overlaps face skin, neck and clothes.
"""
from __future__ import annotations

import cv2
import numpy as np

from perse.ingest import mesh
from perse.ingest.face import face_height

# Priority of the exclusive regions where priors overlap, most specific first.
EXCLUSIVE = ("mouth_interior", "lips", "eyes", "brows", "face_skin", "ears", "neck", "clothes", "hair")

# Geometry, in units of the face height h (brow to chin), measured on adult faces in the shared portraits.
FOREHEAD_EXTEND = 1.45  # the mesh oval stops mid-forehead; skin above it up to this much further is forehead
HAIRLINE_SMOOTHING = 0.06  # notches and spikes narrower than this are not part of a hairline
EAR_OUTSET = 0.07  # ear centre outside the oval side point
EAR_HALF_WIDTH = 0.11
EAR_HEIGHT_SCALE = 1.1  # ears run a little past the brow-to-nose-base span
NECK_LENGTH = 0.75  # below the chin
NECK_TAPER = 0.8  # neck width relative to the jaw width at its bottom
COLLAR_BELOW_CHIN = 0.3  # beside the neck, the person below this line is clothes (shoulders)
BEARD_UNDER_JAW = 0.12  # beards grow this far below the jaw line
HEAD_PRIOR_RX = 1.15  # hair can extend this many face widths from the face centre...
HEAD_PRIOR_UP = 1.25  # ...and this many face heights above the brow
SKIN_SAMPLE_MARGIN = 0.08  # skin is sampled this far inside the oval and away from eyes, brows, lips, nose
# Skin colour: Mahalanobis distance (robust per-channel statistics in Lab) mapped to [0, 1]; lightness
# varies with shading much more than hue, so it gets a wider tolerance. Floors keep a very uniform cheek
# sample from producing an over-strict model.
SKIN_DISTANCE_FULL, SKIN_DISTANCE_NONE = 2.5, 3.5
SKIN_L_TOLERANCE = 1.0
SKIN_SIGMA_FLOOR = np.array([6.0, 3.0, 3.0])
SKIN_SHADOW_TOLERANCE = 2.5  # the neck lies in the chin's shadow: darker skin still counts there
# Final softening of every mask, in pixels at 512 px (scaled with the crop size).
FEATHER_PX = 1.2


def _fill(polygons: list[np.ndarray], size: int) -> np.ndarray:
    """Antialiased rasterisation of polygons (pixel coordinates, pixel centres at +0.5) -> float mask."""
    canvas = np.zeros((size, size), dtype=np.uint8)
    shift = 4
    pts = [np.round((np.asarray(p, dtype=np.float64) - 0.5) * (1 << shift)).astype(np.int32) for p in polygons]
    cv2.fillPoly(canvas, pts, 255, lineType=cv2.LINE_AA, shift=shift)
    return canvas.astype(np.float32) / 255.0


def _ellipse(size: int, center: np.ndarray, radii: tuple[float, float]) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    r = np.sqrt(((xs - center[0]) / radii[0]) ** 2 + ((ys - center[1]) / radii[1]) ** 2)
    # A soft rim a few pixels wide, whatever the ellipse's size.
    rim = 3.0 / max(min(radii), 1.0)
    return np.clip((1.0 - r) / rim + 0.5, 0.0, 1.0)


def _arc(loop: np.ndarray, indices: tuple[int, ...], start: int, end: int, through: int) -> np.ndarray:
    """The part of a closed outline from landmark `start` to `end` that passes landmark `through`."""
    n = len(indices)
    i, j, k = indices.index(start), indices.index(end), indices.index(through)
    forward = [(i + s) % n for s in range((j - i) % n + 1)]
    if k not in forward:
        forward = [(i - s) % n for s in range((i - j) % n + 1)]
    return loop[forward]


def skin_score(image: np.ndarray, sample: np.ndarray, shadow: float = 1.0) -> np.ndarray:
    """How skin-like each pixel is (0..1), against the colour statistics of pixels where `sample` > 0.5.

    `shadow` > 1 widens the lightness tolerance for pixels darker than the sample (skin in shadow,
    e.g. under the chin) without admitting brighter ones (a white collar).
    """
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    pixels = lab[sample > 0.5]
    if len(pixels) < 16:
        return np.zeros(image.shape[:2], dtype=np.float32)
    median = np.median(pixels, axis=0)
    sigma = np.maximum(1.4826 * np.median(np.abs(pixels - median), axis=0), SKIN_SIGMA_FLOOR)
    sigma[0] *= SKIN_L_TOLERANCE
    deviation = (lab - median) / sigma
    deviation[:, :, 0] /= np.where(deviation[:, :, 0] < 0, shadow, 1.0)
    distance = np.sqrt((deviation ** 2).sum(axis=2))
    score = np.clip((SKIN_DISTANCE_NONE - distance) / (SKIN_DISTANCE_NONE - SKIN_DISTANCE_FULL), 0.0, 1.0)
    # Blur away single-pixel speckle (pores, noise) so decisions follow areas, not pixels.
    return cv2.GaussianBlur(score, (0, 0), 1.0)


def _grow_upward(base: np.ndarray, candidate: np.ndarray, width_px: float) -> np.ndarray:
    """Pixels of `candidate` reached by walking straight up from `base` without crossing a gap.

    The forehead is skin from the mesh's top up to the hairline; walking up each column and stopping at
    the first non-skin pixel finds that line, where a per-pixel test would also take skin-coloured
    strands inside a fringe.
    """
    solid = cv2.medianBlur((np.maximum(base, candidate) > 0.5).astype(np.uint8), 5)
    # Rows from the bottom up: a pixel stays only while every pixel below it (within this column,
    # from the base upwards) is solid. Below the base nothing counts, so start each column at its base.
    rows_up = solid[::-1].astype(bool)
    started = np.maximum.accumulate(base[::-1] > 0.5, axis=0)
    reached = (np.logical_and.accumulate(rows_up | ~started, axis=0) & started)[::-1].astype(np.uint8)
    # A hairline is smooth: fill one-column notches (a wrinkle's shadow stopped the walk) and cut
    # one-column spikes (a skin-coloured strand let it run on), both narrow next to the face.
    kernel = np.ones((1, max(3, int(width_px) | 1)), np.uint8)
    reached = cv2.morphologyEx(cv2.morphologyEx(reached, cv2.MORPH_CLOSE, kernel), cv2.MORPH_OPEN, kernel)
    return np.minimum(reached.astype(np.float32), candidate + base)


def _attached_to_head(hair: np.ndarray, brow_y: float) -> np.ndarray:
    """Keep the hair mask's pieces that reach above the brows: hair grows from the scalp, so a separate
    blob beside the shoulders (a collar, a helmet, a raised hand) is not hair."""
    _, labels = cv2.connectedComponents((hair > 0.5).astype(np.uint8), connectivity=8)
    top = max(0, int(brow_y))
    keep = np.unique(labels[:top][labels[:top] > 0])
    return hair * cv2.dilate(np.isin(labels, keep).astype(np.float32), np.ones((3, 3), np.uint8))


def region_masks(image: np.ndarray, landmarks: np.ndarray, matte: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """All REGIONS as soft (S, S) float32 masks, and the person matte made to include the face.

    `landmarks` are the (478, 3) mesh points in crop pixels of the square `image`, `matte` the person alpha.
    """
    size = image.shape[0]
    lm = np.asarray(landmarks, dtype=np.float64)
    xy = lm[:, :2]
    out = mesh.outlines(lm)
    h = face_height(lm)
    face_width = float(np.linalg.norm(xy[mesh.SIDE_RIGHT] - xy[mesh.SIDE_LEFT]))
    brow_y = xy[mesh.BROW_CENTER, 1]
    chin = xy[mesh.CHIN]
    eye_y = xy[[mesh.EYE_OUTER_LEFT, mesh.EYE_OUTER_RIGHT], 1].mean()
    center_x = xy[[mesh.SIDE_LEFT, mesh.SIDE_RIGHT], 0].mean()

    oval = _fill([out.face_oval], size)
    eyes = _fill(out.eyes, size)
    brows = _fill(out.brows, size)
    lips_outer = _fill([out.lips_outer], size)
    mouth = _fill([out.lips_inner], size)
    nose = _fill([out.nose], size)
    features = np.clip(eyes + brows + lips_outer, 0, 1)

    # Cheeks, chin and forehead inside the oval, away from every feature: the person's skin colour.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(3, int(h * SKIN_SAMPLE_MARGIN)) | 1,) * 2)
    sample = cv2.erode(oval, kernel) * (1 - cv2.dilate(features, kernel)) * (1 - cv2.dilate(nose, kernel))
    skin = skin_score(image, sample)

    # Forehead above the mesh: the oval's upper half stretched up from the eye line, where skin-coloured.
    stretched = out.face_oval.copy()
    above = stretched[:, 1] < eye_y
    stretched[above, 1] = eye_y - (eye_y - stretched[above, 1]) * FOREHEAD_EXTEND
    band = np.clip(_fill([stretched], size) - oval, 0, 1)
    forehead = _grow_upward(oval, band * skin * matte, HAIRLINE_SMOOTHING * h) * band
    face_skin = np.clip(oval + forehead - features, 0, 1)

    # Ears: beside the oval sides, from brow to nose base, where the person is skin-coloured.
    top, bottom = brow_y, xy[mesh.SUBNASALE, 1]
    ears = np.zeros_like(oval)
    for side, outward in ((mesh.SIDE_LEFT, -1.0), (mesh.SIDE_RIGHT, 1.0)):
        center = np.array([xy[side, 0] + outward * EAR_OUTSET * h, (top + bottom) / 2])
        ears = np.maximum(ears, _ellipse(size, center, (EAR_HALF_WIDTH * h, (bottom - top) / 2 * EAR_HEIGHT_SCALE)))
    ears = ears * (1 - oval) * matte * skin

    # Neck: under the jaw (the oval below the mouth), tapering down, where skin-coloured.
    jaw = _arc(out.face_oval, mesh.topology().face_oval, mesh.SIDE_RIGHT, mesh.SIDE_LEFT, mesh.CHIN)
    mouth_y = xy[[mesh.MOUTH_LEFT, mesh.MOUTH_RIGHT], 1].mean()
    lower_jaw = jaw[jaw[:, 1] >= mouth_y]
    neck_bottom = chin[1] + NECK_LENGTH * h
    half = (lower_jaw[:, 0].max() - lower_jaw[:, 0].min()) / 2 * NECK_TAPER
    neck_zone = _fill([np.concatenate([lower_jaw, [[center_x - half, neck_bottom], [center_x + half, neck_bottom]]])],
                      size)
    neck = neck_zone * (1 - oval) * matte * skin_score(image, sample, shadow=SKIN_SHADOW_TOLERANCE)

    # Clothes: the person below a collar line that runs from the image sides (below the chin) up to the
    # jaw corners and along the jaw; the neck is cut out of it where it is skin.
    collar_y = chin[1] + COLLAR_BELOW_CHIN * h
    clothes_zone = _fill([np.concatenate([[[size, collar_y]], lower_jaw,
                                          [[0, collar_y], [0, size], [size, size]]])], size)
    clothes = clothes_zone * matte * (1 - oval)

    # Hair: the rest of the person around and above the head.
    # Up to the crop's top at least: the crop grows to hold tall hair (perse.ingest.crop).
    head_top = min(brow_y - HEAD_PRIOR_UP * h, 0.0)
    head = _ellipse(size, np.array([center_x, (head_top + collar_y) / 2]),
                    (HEAD_PRIOR_RX * face_width, (collar_y - head_top) / 2))
    hair = _attached_to_head(matte * head * (1 - clothes_zone), brow_y)

    raw = {"mouth_interior": mouth, "lips": np.clip(lips_outer - mouth, 0, 1), "eyes": eyes, "brows": brows,
           "face_skin": face_skin, "ears": ears, "neck": neck, "clothes": clothes, "hair": hair}
    masks: dict[str, np.ndarray] = {}
    remaining = np.ones_like(oval)
    for name in EXCLUSIVE:
        masks[name] = np.minimum(raw[name], remaining)
        remaining = remaining - masks[name]
    # Whatever of the person is left (a helmet, a raised hand, a bag strap) is body, not head: clothes.
    masks["clothes"] += np.minimum(np.clip(matte - (1 - remaining), 0, 1), remaining)

    # Beard: the lower face below a line from the sideburns over the cheeks to under the nose, plus a
    # band under the jaw; never on the lips or the mouth.
    cheek_line = np.array([xy[mesh.SIDE_LEFT],
                           [xy[mesh.EYE_OUTER_LEFT, 0], xy[mesh.NOSE_WING_LEFT, 1]],
                           xy[mesh.NOSE_WING_LEFT], xy[mesh.SUBNASALE], xy[mesh.NOSE_WING_RIGHT],
                           [xy[mesh.EYE_OUTER_RIGHT, 0], xy[mesh.NOSE_WING_RIGHT, 1]],
                           xy[mesh.SIDE_RIGHT]])
    centroid = out.face_oval.mean(axis=0)
    push = (jaw - centroid) / np.linalg.norm(jaw - centroid, axis=1, keepdims=True) * BEARD_UNDER_JAW * h
    beard_zone = _fill([np.concatenate([cheek_line, jaw + push])], size)
    masks["beard"] = beard_zone * np.clip(oval + matte, 0, 1) * (1 - lips_outer)
    masks["nose"] = np.minimum(nose, masks["face_skin"])

    sigma = FEATHER_PX * size / 512
    masks = {name: cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigma) for name, m in masks.items()}
    person = np.maximum(matte, sum(masks[name] for name in EXCLUSIVE))
    return masks, np.clip(person, 0, 1).astype(np.float32)
