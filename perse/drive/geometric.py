"""The "geometric" blendshape estimator: expression scores measured on the 478-point face mesh.

Every measure is taken in the head's own frame (the landmarks turned back to frontal with a rotation
fitted to points that no expression moves, so a turned head does not read as a narrower mouth, nor a
smile as a nod) and in units of the outer eye-corner distance, which no expression changes, so the scores do not depend on how large or far the
face is. The features are the measures; scores compare them with a neutral face's: 0 at the neutral, 1 at
a full expression (`FULL`, the change the animator's full-strength expressions make, perse.synth.animate),
with corrections where one expression moves another's measure (an open jaw drags the mouth corners
down, raised brows open the eyes) and a funnel told from a pucker by the lips parting. `REST`, the
mean of the four public-domain portraits in assets/, stands for a typical resting face.
"""
from __future__ import annotations

import numpy as np

from perse.core.expressions import ARKIT_BLENDSHAPES, ARKIT_INDEX
from perse.synth import face as F

# Eyelid point pairs (upper, lower) across the middle of each eye opening.
EYELID_PAIRS = {side: tuple(zip(upper[1:-1], lower[1:-1])) for side, upper, lower in (
    ("right", F.RIGHT_EYE_UPPER, F.RIGHT_EYE_LOWER), ("left", F.LEFT_EYE_UPPER, F.LEFT_EYE_LOWER))}
EYE_CORNERS = {"right": (33, 133), "left": (263, 362)}  # (outer, inner), the person's sides
BROW_INNER = {"right": (F.RIGHT_BROW_UPPER[-1], F.RIGHT_BROW_LOWER[-1]),
              "left": (F.LEFT_BROW_UPPER[-1], F.LEFT_BROW_LOWER[-1])}
BROW_OUTER = {"right": (F.RIGHT_BROW_UPPER[0], F.RIGHT_BROW_LOWER[0]),
              "left": (F.LEFT_BROW_UPPER[0], F.LEFT_BROW_LOWER[0])}
MOUTH_CORNER = {"right": F.MOUTH_RIGHT, "left": F.MOUTH_LEFT}
UPPER_LIP_TOP, UPPER_LIP_INNER, LOWER_LIP_INNER, LOWER_LIP_BOTTOM = 0, 13, 14, 17
CHEEK = {"right": 177, "left": 401}  # the cheeks' outline beside the nose base, where a puff swells them
# most; points higher up move with the lower lids and with glasses, whose rims a frown drags down
MIDLINE = (168, 6, 197, 195, 5, 4, F.NOSE_TIP, F.SUBNASALE)  # nose bridge to base: the face's symmetry line
# The head's frame comes from points that expressions barely move: mirror pairs (eye corners, the
# face's sides and temples) for its left-right axis, and the eye corners and upper nose to the nose's
# lower half for its up-down axis. The ingest stage's head_rotation spans the mouth corners, so a smile,
# a pucker or a funnel tilted it by 3-11 degrees (on the animator's clips of the four assets/ portraits),
# which read as brow and mouth-corner moves; the nose wings are left out, a one-sided smile lifts one.
FRAME_PAIRS = ((33, 263), (133, 362), (234, 454), (127, 356), (93, 323), (21, 251), (162, 389))
FRAME_TOP, FRAME_BOTTOM = (33, 133, 263, 362, 6, 197), (195, 5, 4, F.NOSE_TIP)
# The nose runs forward as it runs down: its line leans this far (degrees) from the eyes-to-mouth line
# that the ingest stage calls upright (47-55 on the four assets/ portraits), so the frame is turned back
# by it; left leaning, a lip pushed forward would read as lowered, and heights would shrink by a quarter.
FRAME_TILT_DEG = 52.0


SIDES = ("left", "right")
# The features, each in eye-corner distances, y down, in the head's frontal frame.
FEATURES = (
    "lip_gap",  # inner lips apart
    "lip_thickness",  # both lips' red heights together
    "mouth_width",
    *(f"corner_height_{side}" for side in SIDES),  # mouth corner above the nose base (negative: below)
    *(f"corner_out_{side}" for side in SIDES),  # mouth corner's distance from the face's midline
    *(f"eye_opening_{side}" for side in SIDES),  # eyelid aperture over eye width
    *(f"brow_inner_{side}" for side in SIDES),  # inner brow end above the eye corners
    *(f"brow_outer_{side}" for side in SIDES),  # outer brow end above the eye corners
    "brow_gap",  # between the inner brow ends
    "cheek_width",
    "head_pitch",  # degrees, of the head's frame (head_frame): what the eyelids and brows seem to move with
)


def head_frame(p: np.ndarray) -> np.ndarray:
    """Rotation (3x3, columns the head's x, y, z axes in landmark coordinates) of a face's rigid points."""
    x = sum((p[b] - p[a]) / np.linalg.norm(p[b] - p[a]) for a, b in FRAME_PAIRS)
    x /= np.linalg.norm(x)
    y = p[list(FRAME_BOTTOM)].mean(axis=0) - p[list(FRAME_TOP)].mean(axis=0)
    y -= x * np.dot(y, x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    tilt = np.radians(FRAME_TILT_DEG)
    y = np.cos(tilt) * y + np.sin(tilt) * z
    return np.stack([x, y, np.cross(x, y)], axis=1)


def frontal(p: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Landmarks `p` turned back by their head's `frame` (head_frame) to a frontal, upright head about their
    centroid, in eye-corner units."""
    q = (p - p.mean(axis=0)) @ frame
    return q / np.linalg.norm(q[EYE_CORNERS["right"][0]] - q[EYE_CORNERS["left"][0]])


def measure(landmarks: np.ndarray) -> dict[str, float]:
    """FEATURES of one face."""
    p = np.asarray(landmarks, np.float64)
    frame = head_frame(p)
    q = frontal(p, frame)
    y = q[:, 1]
    mid_x = float(q[list(MIDLINE), 0].mean())

    def mean_point(indices) -> np.ndarray:
        return q[list(indices)].mean(axis=0)

    def above_eye(points, side: str) -> float:
        return float(y[list(EYE_CORNERS[side])].mean() - mean_point(points)[1])

    measures = {
        "lip_gap": float(y[LOWER_LIP_INNER] - y[UPPER_LIP_INNER]),
        "lip_thickness": float((y[UPPER_LIP_INNER] - y[UPPER_LIP_TOP]) + (y[LOWER_LIP_BOTTOM] - y[LOWER_LIP_INNER])),
        "mouth_width": float(np.linalg.norm(q[MOUTH_CORNER["right"]] - q[MOUTH_CORNER["left"]])),
        "brow_gap": float(np.linalg.norm(mean_point(BROW_INNER["right"]) - mean_point(BROW_INNER["left"]))),
        "cheek_width": float(np.linalg.norm(q[CHEEK["right"]] - q[CHEEK["left"]])),
        "head_pitch": float(np.degrees(np.arctan2(frame[1, 2], frame[2, 2]))),
    }
    for side in SIDES:
        corner = q[MOUTH_CORNER[side]]
        outer, inner = EYE_CORNERS[side]
        aperture = np.mean([np.linalg.norm(q[a] - q[b]) for a, b in EYELID_PAIRS[side]])
        measures.update({
            f"corner_height_{side}": float(y[F.SUBNASALE] - corner[1]),
            f"corner_out_{side}": float(abs(corner[0] - mid_x)),
            f"eye_opening_{side}": float(aperture / np.linalg.norm(q[outer] - q[inner])),
            f"brow_inner_{side}": above_eye(BROW_INNER[side], side),
            f"brow_outer_{side}": above_eye(BROW_OUTER[side], side),
        })
    return measures


# A typical resting face, in eye-corner units: the mean of the portraits in assets/ (ingested at 384 px),
# except the lip gap (two of them smile with parted lips, and a resting mouth is closed) and the head's
# pitch (the mean of their driving clips' neutral frames).
REST = {"lip_gap": 0.0, "lip_thickness": 0.143, "mouth_width": 0.745, "brow_gap": 0.295, "cheek_width": 1.544,
        "head_pitch": -4.8,
        **{f"{name}_{side}": value for side in SIDES for name, value in (
            ("corner_height", -0.19), ("corner_out", 0.372), ("eye_opening", 0.223), ("brow_inner", 0.175),
            ("brow_outer", 0.129))}}
# How far a measure moves for a full expression: what the animator's full-strength controls
# (perse.synth.animate) move on an ingested portrait, so that a score of 1 is the avatar's full strength.
# Lip gap 0.25; each corner's lift plus widening 0.12; a pucker narrows the mouth by 0.11 (mediapipe
# barely sees the lips move forward, so their depth is left out); pressed lips lose 0.05 of red height; a stretch
# pulls each corner out by 0.06; eyelids close by 0.06-0.08 and open wide by 0.015-0.03; a puff widens the
# cheeks by 0.08. The brows, as mediapipe's mesh follows them (the mean of the four assets/ portraits'
# clips): browInnerUp lifts the inner ends 0.046 and the outer 0.019, browOuterUp the outer ends 0.046
# (brow_outer stays 0.065: at 0.046 the score clipped at 1 through every pulse and its correlation with
# the truth fell from 0.74 to 0.69) and the inner 0.017, browDown lowers them by 0.031 and 0.025;
# brow_inner is the inner rise less what the outer one implies (BROW_INNER_WITH_OUTER).
FULL = {"jaw": 0.25, "smile": 0.12, "narrow": 0.12, "press": 0.05, "stretch": 0.06, "blink": 0.08, "wide": 0.035,
        "brow_inner": 0.039, "brow_outer": 0.065, "brow_down": 0.028, "puff": 0.08}
# Opening the jaw drags the mouth corners down and out by about these fractions of the lip gap, which
# must not read as a stretch.
JAW_CORNER_DROP, JAW_CORNER_OUT = 0.33, 0.1
# Smiling pushes the cheeks out by about this fraction of the mouth's widening; a puff does so alone.
SMILE_CHEEK_SPREAD = 0.35
# Raising the brows also opens the eyes by about this fraction of the rise (lowering them closes the
# eyes as much), which is neither eyeWide nor a blink. Each brow raise lifts the other end of the brow
# too, by about 0.35-0.4 as much (the mesh's brow is one smooth curve): an outer rise this fraction of the
# inner one is no browInnerUp.
BROW_EYE_OPENING = 0.45
BROW_INNER_WITH_OUTER = 0.36
# The "O" of a funnel parts the lips as a jaw does; this fraction of the funnel is not read as jaw.
FUNNEL_LIP_GAP = 0.6
# Lips parted at rest (a portrait smiling with its teeth showing) close when pressed, and a stretch draws
# them together too, by about this much of the mouth's widening (0.095 of 0.21 on obama's clip), which is
# no press. Counting closing lips as pressed, less that share, raised mouthPress's correlation with the
# truth on the four assets/ portraits' clips from 0.07, 0.92, 0.74, 0.79 to 0.92, 0.95, 0.72, 0.96.
STRETCH_LIP_CLOSING = 0.45


# mediapipe's eyelids and brows move with the head's pitch although the measures are taken in the head's
# frame: per degree of head_pitch, by these (the mean over both sides of the four assets/ portraits'
# clips, fitted on frames where no eye or brow control moves; R^2 0.4-0.85). Uncorrected, nodding 10
# degrees read as over a third of a full eyeWide and of a browInnerUp.
PITCH_SLOPE = {f"{name}_{side}": slope for side in SIDES for name, slope in (
    ("eye_opening", -0.00128), ("brow_inner", -0.0016), ("brow_outer", -0.00065))}


def scores_from_measures(m: dict[str, float], neutral: dict[str, float]) -> dict[str, float]:
    """The blendshapes behind perse.core.expressions' controls, from one face's measures and its
    neutral face's (unclipped)."""
    change = {name: m[name] - neutral[name] for name in FEATURES}
    for name, slope in PITCH_SLOPE.items():
        change[name] -= slope * change["head_pitch"]
    opening = change["lip_gap"] / FULL["jaw"]
    # What an open jaw does to the other measures is corrected for an opening only: lips closing from a
    # parted rest are no negative jaw (read as one, a press read as a stretch and a pucker, and a stretch
    # as a press).
    gap_opened = max(change["lip_gap"], 0.0)
    jaw = gap_opened / FULL["jaw"]
    narrowing = -change["mouth_width"] / FULL["narrow"]
    # An "O": narrowed lips held apart; the smaller of the two, so that neither an open jaw (which
    # widens the mouth a little) nor a closed pucker is a funnel.
    funnel = min(2 * narrowing, 1.3 * opening)
    closing = max(-change["lip_gap"] - STRETCH_LIP_CLOSING * max(change["mouth_width"], 0.0), 0.0)
    thinning = (closing - change["lip_thickness"]) / FULL["press"]
    brow_inner = (change["brow_inner_left"] + change["brow_inner_right"]) / 2
    brow_outer = (change["brow_outer_left"] + change["brow_outer_right"]) / 2
    # A frown lowers the whole brow, so both ends' drop measures it: the inner ends alone (and the gap
    # between them, which glasses hide and the mesh moves with every brow control) fell as little as
    # 0.004 on one portrait, and by both ends browDown's correlation with the truth rose from 0.56 to 0.74.
    frown = -(brow_inner + brow_outer) / 2 / FULL["brow_down"]
    scores = {
        "jawOpen": opening - FUNNEL_LIP_GAP * max(funnel, 0.0),
        "mouthPucker": narrowing - jaw,
        "mouthFunnel": funnel,
        "browInnerUp": (brow_inner - BROW_INNER_WITH_OUTER * brow_outer) / FULL["brow_inner"],
        "cheekPuff": (change["cheek_width"] - SMILE_CHEEK_SPREAD * max(change["mouth_width"], 0.0)) / FULL["puff"]
                     - jaw,
    }
    for side in SIDES:
        suffix = side.capitalize()  # ARKit's sides are the person's, as FEATURES'
        lift = change[f"corner_height_{side}"] + JAW_CORNER_DROP * gap_opened
        out = change[f"corner_out_{side}"] - JAW_CORNER_OUT * gap_opened
        brow_rise = change[f"brow_outer_{side}"]
        eye = change[f"eye_opening_{side}"] - BROW_EYE_OPENING * (change[f"brow_inner_{side}"] + brow_rise) / 2
        # A corner drawn out further than it rises is a stretch: of that move only the lift is a smile
        # (counted twice, as where lift and widening are equal). Read as lift plus widening, a stretch
        # was half a smile: mouthSmileRight's r with the truth was 0.64-0.77 on the four portraits' clips,
        # now 0.87-0.94 (mouthSmileLeft 0.85-0.93, now 0.92-0.97).
        scores[f"mouthSmile{suffix}"] = (lift + min(out, lift)) / FULL["smile"]
        # Corners pulled straight out: the grimace that a smile's lift would cancel.
        scores[f"mouthStretch{suffix}"] = (out - lift) / FULL["stretch"]
        # Parted lips thin as they stretch open: pressing needs them closed.
        scores[f"mouthPress{suffix}"] = thinning - 2 * jaw
        scores[f"eyeBlink{suffix}"] = -eye / FULL["blink"]
        scores[f"eyeWide{suffix}"] = eye / FULL["wide"]
        scores[f"browOuterUp{suffix}"] = brow_rise / FULL["brow_outer"]
        scores[f"browDown{suffix}"] = frown
    return scores


class GeometricEstimator:
    name = "geometric"
    rest = np.array([REST[name] for name in FEATURES])

    @classmethod
    def from_config(cls, config) -> "GeometricEstimator":
        return cls()

    def features(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        measures = measure(landmarks)
        return np.array([measures[name] for name in FEATURES])

    @staticmethod
    def scores(features: np.ndarray, neutral: np.ndarray) -> np.ndarray:
        reference = dict(zip(FEATURES, neutral))
        out = np.zeros((len(features), len(ARKIT_BLENDSHAPES)))
        for row, values in zip(out, features):
            for name, value in scores_from_measures(dict(zip(FEATURES, values)), reference).items():
                row[ARKIT_INDEX[name]] = value
        return np.clip(out, 0.0, 1.0)
