"""Expression displacement fields of a lifted portrait: for every control of perse.core.expressions, how
far each pixel of the portrait moves at full strength, as (dx, dy, dz) in crop pixels (dz > 0 is away
from the camera). The animator adds them up linearly, weighted by the expression vector.

Three kinds of motion:
- rigid: the jaw rotates the lower face about its hinge (jawOpen, and a little of mouthFunnel);
- landmark moves spread over the nearby pixels (`_rbf_field`), anchored by the landmarks that stay:
  lips, mouth corners, cheeks, brows;
- splits, where the face really opens: the lips parting in a funnel and the upper lid lifting off the
  eyeball in eyeWide. There the field jumps, and the lift animator's hidden layers (mouth interior,
  sclera) show through the gap.

"Left" and "right" are the person's, as in the control names: the person's left is the image's right.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from perse.core.expressions import EXPRESSION_NAMES
from perse.synth import face as F

# Jaw opening at full strength, radians: the chin drops by about a tenth of the face height, a clearly
# open mouth.
JAW_ANGLE = 0.3
# A funnel ("oh") drops the jaw by this share of a full jawOpen: the lips' rounded opening needs it.
FUNNEL_JAW = 0.25
# How far the skin above each eye follows a closing lid, as a fraction of the eye's opening.
BLINK_CREASE = 0.3
# eyeWide lifts the upper lid by this fraction of the eye's opening, showing sclera above the iris.
EYE_WIDE = 0.9
# Landmark moves (in face heights) are spread with Gaussian weights of this width (in face heights);
# the landmarks that stay pull each move back to roughly a third, so the moves are larger than what shows.
MOUTH_SIGMA, BROW_SIGMA, CHEEK_SIGMA = 0.05, 0.06, 0.08
FOREHEAD = (10, 109, 67, 103, 338, 297, 332, 151, 108, 69, 337, 299)
# Between the brows (glabella) and the top of the nose: drawn down with lowered brows.
GLABELLA = (9, 8, 168)
# The cheeks' fat pads, each with the side of the face it lies on (+1: the person's left, image right).
CHEEK_PADS = ((205, -1), (425, 1), (50, -1), (280, 1), (187, -1), (411, 1))
# The controls whose motion the mouth interior (hidden behind the lips) follows: they reshape the lips
# without opening them.
LIP_SHAPES = ("mouthSmileLeft", "mouthSmileRight", "mouthPucker", "mouthPress", "mouthStretch", "cheekPuff")
# The openings instead rotate the interior's jaw part (lower teeth, tongue) by these shares of
# JAW_ANGLE. A funnel drops them further than its lips part, so its "oh" shows the dark cavity below
# the upper teeth rather than two rows of teeth.
JAW_OPENINGS = {"jawOpen": 1.0, "mouthFunnel": 0.8}


def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = np.arange(size, dtype=np.float64) + 0.5
    return np.meshgrid(coords, coords)


def _smoothstep(x: np.ndarray | float) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


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


def eye_openings(landmarks: np.ndarray, uu: np.ndarray):
    """Per eye, the person's right then left: (side, upper lid line y, lower lid line y, the opening's
    height tapering to 0 at the corners, inside-the-eye's-width mask), each over the columns `uu`."""
    xy = landmarks[:, :2]
    for side, upper_ids, lower_ids in (("right", F.RIGHT_EYE_UPPER, F.RIGHT_EYE_LOWER),
                                       ("left", F.LEFT_EYE_UPPER, F.LEFT_EYE_LOWER)):
        upper, lower = xy[list(upper_ids)], xy[list(lower_ids)]
        corners = np.concatenate([upper[:, 0], lower[:, 0]])
        order_u, order_l = np.argsort(upper[:, 0]), np.argsort(lower[:, 0])
        top = np.interp(uu, upper[order_u, 0], upper[order_u, 1])
        bottom = np.interp(uu, lower[order_l, 0], lower[order_l, 1])
        inside = (uu > corners.min()) & (uu < corners.max())
        span = max(float(corners.max() - corners.min()), 1.0)
        taper = np.clip(np.sin(np.pi * (uu - corners.min()) / span), 0, 1) ** 0.5
        yield side, top, bottom, np.clip(bottom - top, 0, None) * inside * taper, inside


def _blink_crease_field(size: int, landmarks: np.ndarray, side: str) -> np.ndarray:
    """The skin above one eye follows its closing lid part of the way (the lid crease flattens); the
    lid itself is the eyelid layer. Sliding the skin all the way down would drag lashes and brow hair
    over the eye as a smear."""
    uu, vv = _pixel_grid(size)
    field = np.zeros((size, size, 3), np.float32)
    for eye, top, _, opening, _ in eye_openings(landmarks, uu):
        if eye != side:
            continue
        height = np.maximum(opening, 1.0)
        above = top - vv  # > 0 above the lid line
        weight = np.where(above < 0, 0.0, np.clip(1 - above / (2 * height), 0, 1))
        field[..., 1] += (BLINK_CREASE * weight * opening).astype(np.float32)
    return field


def _eye_wide_field(size: int, landmarks: np.ndarray) -> np.ndarray:
    """Both upper lids lift off the eyeballs by EYE_WIDE of their opening; the skin above them follows,
    less and less up to the brow. The eyeball stays, so a band of sclera (the lift animator's layer)
    opens between lid and iris."""
    uu, vv = _pixel_grid(size)
    xy = landmarks[:, :2]
    field = np.zeros((size, size, 3), np.float32)
    brows = {"right": F.RIGHT_BROW_LOWER, "left": F.LEFT_BROW_LOWER}
    for side, top, _, opening, _ in eye_openings(landmarks, uu):
        brow = xy[list(brows[side]), 1].mean()
        reach = np.maximum(top - brow, 2.0)
        # The lash line (up to half a pixel below the lid line) goes with the lid.
        above = top - vv + 0.5
        weight = np.where(above < 0, 0.0, np.clip(1 - above / reach, 0, 1) ** 0.7)
        field[..., 1] -= (EYE_WIDE * opening * weight).astype(np.float32)
    return field


def jaw_hinge(landmarks: np.ndarray, depth_px: np.ndarray, face: F.FaceFrame) -> tuple[float, float]:
    """(y, depth) of the jaw hinge in pixels: the condyles sit just in front of the ears, a little behind
    the face's side edges at ear level. (Measured from the face's centre line, the nose, the hinge
    would be so shallow that the jaw swung back instead of down.)"""
    xy = landmarks[:, :2]
    size = depth_px.shape[0]
    edges = np.clip(np.round(xy[[F.RIGHT_FACE_EDGE, F.LEFT_FACE_EDGE]] - 0.5).astype(int), 0, size - 1)
    hinge_y = float(xy[[F.RIGHT_FACE_EDGE, F.LEFT_FACE_EDGE], 1].mean())
    return hinge_y, float(depth_px[edges[:, 1], edges[:, 0]].mean()) + 0.1 * face.face_width


def jaw_rotation(v: np.ndarray, depth: np.ndarray, hinge: tuple[float, float]) -> np.ndarray:
    """Displacement (dx, dy, dz) px per radian of jaw opening of points at rows `v`, depths `depth`.

    The condyle glides forward as the jaw opens, so the chin moves back only about half as far as a
    pure rotation about the hinge would carry it: the mouth opens downwards."""
    dy, dz = v - hinge[0], depth - hinge[1]
    return np.stack([np.zeros_like(dy), -dz, 0.5 * dy], -1)


def _jaw_field(size: int, landmarks: np.ndarray, depth_px: np.ndarray, face: F.FaceFrame, angle: float) -> np.ndarray:
    """Jaw opening by `angle` radians: pixels below the lip seam rotate about the jaw hinge."""
    xy = landmarks[:, :2]
    mouth = _Mouth(xy)
    # Lower face: below the lip seam and inside the jaw line (hinge to hinge through the chin).
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(np.concatenate([mouth.seam_points, xy[list(F.JAW[::-1])]])).astype(np.int32)], 1)
    # Soft falloff below and beside the jaw (chin tissue, a beard), none above the seam.
    outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5)
    weight = np.where(mask > 0, 1.0, np.exp(-(outside / max(0.06 * face.face_height, 1.0)) ** 2))
    uu, vv = _pixel_grid(size)
    # The lips part along the seam (a real opening); beside the mouth the cheeks stretch smoothly.
    weight = np.where(mouth.within(uu) & (vv < mouth.seam(uu)), 0.0, weight)
    # Upwards the jaw's pull fades out: beside the lips by the nose, where the upper lip meets them; out
    # on the cheek between the lower lids and just below the mouth corners. A cheek that stretched only
    # between nose and corner (a few pixels in a broad smile) opened its rows into stripes of background.
    nose_y, corner_y = float(xy[F.SUBNASALE, 1]), float(mouth.seam_points[:, 1].min())
    lids_y = float(xy[list(F.RIGHT_EYE + F.LEFT_EYE), 1].max())
    by_lips = np.clip((vv - nose_y) / max(corner_y - nose_y, 1.0), 0, 1) ** 2
    on_cheek = _smoothstep((vv - lids_y) / max(corner_y + 0.04 * face.face_height - lids_y, 1.0))
    beyond = np.maximum(mouth.seam_points[:, 0].min() - uu, uu - mouth.seam_points[:, 0].max())
    beside = _smoothstep(beyond / (0.08 * face.face_height))
    weight = weight * (by_lips + (on_cheek - by_lips) * beside)
    return (weight[..., None] * angle * jaw_rotation(vv, depth_px, jaw_hinge(landmarks, depth_px, face))
            ).astype(np.float32)


class _Mouth:
    """The mouth's frame: the lip seam, and each landmark's (across, below-the-seam) coordinates in
    units of the mouth's half width."""

    def __init__(self, xy: np.ndarray):
        self.xy = xy
        seam = (xy[list(F.LIPS_INNER_UPPER)] + xy[list(F.LIPS_INNER_LOWER)]) / 2
        self.seam_points = seam
        order = np.argsort(seam[:, 0])
        self._seam_x, self._seam_y = seam[order, 0], seam[order, 1]
        self.centre_x = float(xy[[F.MOUTH_RIGHT, F.MOUTH_LEFT], 0].mean())
        self.half = max(0.5 * abs(float(xy[F.MOUTH_LEFT, 0] - xy[F.MOUTH_RIGHT, 0])), 1.0)
        self.across = (xy[:, 0] - self.centre_x) / self.half
        self.below = (xy[:, 1] - self.seam(xy[:, 0])) / self.half
        # How much each landmark belongs to the lips: 1 on them, fading over the skin around them.
        self.lips = np.clip(2 * (1 - (self.across / 1.5) ** 2 - (self.below / 0.8) ** 2), 0, 1)

    def seam(self, x: np.ndarray) -> np.ndarray:
        return np.interp(x, self._seam_x, self._seam_y)

    def within(self, x: np.ndarray) -> np.ndarray:
        return (x >= self._seam_x[0]) & (x <= self._seam_x[-1])

    def lip_moves(self, move) -> dict[int, np.ndarray]:
        """landmark -> move (px) for every lip landmark; `move(across, below)` gives it in half widths,
        scaled by how much the landmark belongs to the lips."""
        out = {}
        for index in np.flatnonzero(self.lips > 0):
            u, w = float(np.clip(self.across[index], -1, 1)), float(self.below[index])
            out[int(index)] = np.asarray(move(u, w), np.float64) * self.half * self.lips[index]
        return out


def _split_at_seam(size: int, mouth: _Mouth, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Across the mouth's width, pixels above the seam take `upper` and those below take `lower`, so the
    lips part; beside the mouth the two (both small there) add up."""
    uu, vv = _pixel_grid(size)
    split = mouth.within(uu)[..., None]
    above = (vv < mouth.seam(uu))[..., None]
    return np.where(split, np.where(above, upper, lower), upper + lower).astype(np.float32)


def _mouth_fields(size: int, landmarks: np.ndarray, depth_px: np.ndarray, face: F.FaceFrame) -> dict[str, np.ndarray]:
    xy = landmarks[:, :2]
    unit = face.face_height
    mouth = _Mouth(xy)
    sigma = MOUTH_SIGMA * unit
    spread = lambda moves, width=sigma: _rbf_field(size, xy, moves, width)  # noqa: E731
    fields = {"jawOpen": _jaw_field(size, landmarks, depth_px, face, JAW_ANGLE)}

    # Smile, one side at a time: the corner rises, widens and draws back (more the further from the
    # centre), the cheek's fat pad bunches up above it. Both sides together make the symmetric smile.
    for side, sign in (("Left", 1.0), ("Right", -1.0)):
        moves = {}
        for index in range(len(xy)):
            u = mouth.across[index]
            reach = 1 - (u / 1.6) ** 2 - ((xy[index, 1] - xy[[F.MOUTH_RIGHT, F.MOUTH_LEFT, 13, 14], 1].mean())
                                          / (0.9 * mouth.half)) ** 2
            share = float(_smoothstep((sign * u + 0.2) / 0.4))
            if reach > 0 and share > 0:
                u = float(np.clip(u, -1, 1))
                moves[index] = np.array([0.06 * u, -0.11 * u * u, 0.03 * u * u]) * min(1.0, 2 * reach) * share * unit
        for index, pad in CHEEK_PADS:
            if pad == sign:
                moves[index] = np.array([0.015 * pad, -0.065, -0.01]) * unit
        fields[f"mouthSmile{side}"] = spread(moves)

    # Pucker: the lips push forward and gather towards the middle, the mouth narrows.
    fields["mouthPucker"] = spread(mouth.lip_moves(lambda u, w: (-0.42 * u, 0.3 * w, -0.35)))
    # Funnel: the lips push forward and round into an open "oh"; the upper lip lifts and the lower drops
    # off the seam (a split: the interior shows), the jaw drops a little, the corners come in.
    rounding = lambda u: max(0.0, 1 - u * u)  # noqa: E731
    upper = spread({i: m for i, m in mouth.lip_moves(lambda u, w: (0.0, -0.45 * rounding(u), 0.0)).items()
                    if mouth.below[i] < 0})
    lower = spread({i: m for i, m in mouth.lip_moves(lambda u, w: (0.0, 0.3 * rounding(u), 0.0)).items()
                    if mouth.below[i] >= 0})
    fields["mouthFunnel"] = (_jaw_field(size, landmarks, depth_px, face, FUNNEL_JAW * JAW_ANGLE)
                             + spread(mouth.lip_moves(lambda u, w: (-0.28 * u, 0.0, -0.3)))
                             + _split_at_seam(size, mouth, upper, lower))
    # Press: both lips close onto the seam and roll in (thinner, drawn back), the mouth widens a little.
    fields["mouthPress"] = spread(mouth.lip_moves(lambda u, w: (0.1 * u, -0.9 * w, 0.1)))
    # Stretch: the corners pull outward and a little down, the lips thin against the seam.
    fields["mouthStretch"] = spread(mouth.lip_moves(lambda u, w: (0.45 * u, 0.12 * u * u - 0.5 * w, 0.0)))
    fields["cheekPuff"] = _cheek_puff_field(size, landmarks, face, mouth)
    return fields


def _cheek_puff_field(size: int, landmarks: np.ndarray, face: F.FaceFrame, mouth: _Mouth) -> np.ndarray:
    """Both cheeks bulge towards the camera and outward, pushing the face's outline out beside the
    mouth; the closed lips push forward a little."""
    xy = landmarks[:, :2]
    unit = face.face_height
    moves = {}
    oval = set(F.FACE_OVAL)
    corner_y = float(xy[[F.MOUTH_RIGHT, F.MOUTH_LEFT], 1].mean())
    for sign, corner, edge in ((-1.0, F.MOUTH_RIGHT, F.RIGHT_FACE_EDGE), (1.0, F.MOUTH_LEFT, F.LEFT_FACE_EDGE)):
        centre = np.array([0.5 * (xy[corner, 0] + xy[edge, 0]), corner_y - 0.05 * unit])
        radius = 0.65 * abs(float(xy[edge, 0] - xy[corner, 0]))
        for index in range(len(xy)):
            if np.sign(xy[index, 0] - face.center_x) != sign:
                continue
            if index in oval:
                # The outline bulges most at mouth level, fading towards the ears and the chin.
                bulge = math.exp(-((xy[index, 1] - centre[1]) / (0.14 * unit)) ** 2)
                moves[index] = np.array([sign * 0.22, 0.0, -0.04]) * bulge * unit
                continue
            d2 = float(((xy[index] - centre) ** 2).sum()) / radius ** 2
            if d2 < 1:
                bulge = (1 - d2) ** 2
                moves[index] = np.array([sign * 0.12, -0.01, -0.2]) * bulge * unit
    moves.update(mouth.lip_moves(lambda u, w: (0.0, 0.0, -0.05)))
    return _rbf_field(size, xy, moves, CHEEK_SIGMA * unit)


def _eye_fields(size: int, landmarks: np.ndarray) -> dict[str, np.ndarray]:
    fields = {f"eyeBlink{side.capitalize()}": _blink_crease_field(size, landmarks, side) for side in ("left", "right")}
    fields["eyeWide"] = _eye_wide_field(size, landmarks)
    return fields


def _brow_fields(size: int, landmarks: np.ndarray, face: F.FaceFrame) -> dict[str, np.ndarray]:
    """Each brow's landmarks run from its outer end (share 0) to its inner end (share 1). Inner and
    outer raises lift them by complementary shares, so both together lift the whole brow evenly (the
    old brow raise); lowering draws them down and, the inner ends most, towards each other."""
    xy = landmarks[:, :2]
    unit = face.face_height
    inner_up, outer_up, down = {}, {}, {}
    for brow, towards_centre in ((F.RIGHT_BROW_UPPER + F.RIGHT_BROW_LOWER, 1.0),
                                 (F.LEFT_BROW_UPPER + F.LEFT_BROW_LOWER, -1.0)):
        for position, index in enumerate(brow):
            inner = (position % 5) / 4
            inner_up[index] = np.array([0.02 * towards_centre * inner, -0.26 * inner, 0.0]) * unit
            outer_up[index] = np.array([0.0, -0.26 * (1 - inner), 0.0]) * unit
            down[index] = np.array([0.07 * towards_centre * inner, 0.14 + 0.07 * inner, 0.0]) * unit
    for index in FOREHEAD:
        inner_up[index] = outer_up[index] = np.array([0.0, -0.04 * unit, 0.0])
    for index in GLABELLA:
        down[index] = np.array([0.0, 0.04 * unit, 0.0])
    sigma = BROW_SIGMA * unit
    return {"browInnerUp": _rbf_field(size, xy, inner_up, sigma), "browOuterUp": _rbf_field(size, xy, outer_up, sigma),
            "browDown": _rbf_field(size, xy, down, sigma)}


def surface_fields(size: int, landmarks: np.ndarray, depth_px: np.ndarray, face: F.FaceFrame) -> np.ndarray:
    """(E, S, S, 3) displacement in pixels of every portrait pixel per unit of each control, in
    EXPRESSION_NAMES order."""
    fields = {**_mouth_fields(size, landmarks, depth_px, face), **_eye_fields(size, landmarks),
              **_brow_fields(size, landmarks, face)}
    return np.stack([fields[name] for name in EXPRESSION_NAMES]).astype(np.float32)
