"""From a video's tracked faces to the avatar's performance: bridge frames without a face, smooth,
find the video's own neutral frame, and express every frame relative to it.

Relative, because nobody's resting face scores 0: a person whose brows sit high, or whose mouth rests
a little open, must drive a calm avatar when calm. The neutral frame is a calm, frontal, still one
(or the user's choice); each blendshape is measured from it, the head pose too (the avatar at yaw 0 is
the portrait's pose, so the video's resting pose must map there). Each frame's head rotation from the
neutral one is fitted (cv2.solvePnP) to the neutral frame's own rigid face points, seen through the
project's camera (perse.core.camera): on the synthetic clips of bench/drive.py this halves the yaw error
of taking the difference of two per-frame estimates (perse.ingest.face.head_pose).

Smoothing runs a One Euro filter (Casiez et al., CHI 2012: low cutoff when still, rising with speed)
forwards and then backwards over the whole clip: the clip is known in advance, and the two passes'
lags cancel, so a quick blink or a jaw snap keeps its timing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from perse.core.camera import intrinsics
from perse.core.expressions import ARKIT_BLENDSHAPES, EXPRESSION_NAMES, controls_from_blendshapes
from perse.drive.blendshapes import ESTIMATORS
from perse.errors import PerseError

# Head angles are filtered and compared in units of this many degrees, so that one set of One Euro
# parameters (tuned for scores in [0, 1]) suits both, and a 10-degree turn weighs like a full expression
# in the neutral frame's choice.
POSE_UNIT_DEG = 10.0
# The One Euro filter's cutoff for its speed estimate (Hz), as in the paper.
DERIVATIVE_CUTOFF_HZ = 1.0
# In the neutral frame's cost, movement between neighbouring frames weighs this much against the
# expression's and the pose's distance from rest.
STILLNESS_WEIGHT = 0.5
# The neutral face is the mean of the frames this close to the neutral frame (it was chosen for
# being still, so they show the same face).
NEUTRAL_WINDOW = 2


@dataclass
class Track:
    """A whole video's tracking: small arrays, whatever the video's length."""

    fps: float
    features: np.ndarray  # (T, F) the blendshape estimator's, NaN rows where no face was found
    pose: np.ndarray  # (T, 3) yaw, pitch, roll in degrees, NaN rows where no face was found
    rigid: np.ndarray  # (T, P, 3) the rigid face points (perse.drive.track.RIGID_POINTS) in frame pixels
    frame_size: tuple[int, int]  # (width, height)
    estimator: str  # the blendshape estimator's name (perse.drive.blendshapes.ESTIMATORS)

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.pose[:, 0])

    def __len__(self) -> int:
        return len(self.pose)


@dataclass
class Performance:
    controls: np.ndarray  # (T, 14) in [0, 1], columns perse.core.expressions.EXPRESSION_NAMES
    yaw: np.ndarray  # (T,) degrees from the neutral frame's, within the avatar's trained range
    pitch: np.ndarray
    neutral: int  # the frame everything is measured from
    bridged: int  # frames without a face, filled in from their neighbours


def bridge(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Rows without a face filled in: linearly between the nearest faces before and after, held at the ends."""
    if found.all():
        return values.copy()
    if not found.any():
        raise ValueError("no row to bridge from")
    frames = np.arange(len(values))
    return np.stack([np.interp(frames, frames[found], column[found]) for column in values.T], axis=1)


def _alpha(cutoff_hz: np.ndarray | float, fps: float) -> np.ndarray:
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff_hz))
    return 1.0 / (1.0 + tau * fps)


def one_euro(values: np.ndarray, fps: float, min_cutoff: float, beta: float) -> np.ndarray:
    """The One Euro filter along axis 0 of (T, C) values, causal, every column independently."""
    values = np.asarray(values, np.float64)
    out = np.empty_like(values)
    out[0] = values[0]
    speed = np.zeros(values.shape[1:])
    speed_alpha = _alpha(DERIVATIVE_CUTOFF_HZ, fps)
    for t in range(1, len(values)):
        speed = speed + speed_alpha * ((values[t] - out[t - 1]) * fps - speed)
        alpha = _alpha(min_cutoff + beta * np.abs(speed), fps)
        out[t] = out[t - 1] + alpha * (values[t] - out[t - 1])
    return out


def smooth(values: np.ndarray, fps: float, min_cutoff: float, beta: float) -> np.ndarray:
    """Zero-lag smoothing of a whole clip: the One Euro filter forwards, then backwards over the result."""
    forward = one_euro(values, fps, min_cutoff, beta)
    return one_euro(forward[::-1], fps, min_cutoff, beta)[::-1].copy()


def _controls(blendshapes: np.ndarray) -> np.ndarray:
    """(T, 52) blendshape values -> (T, 14) controls (perse.core.expressions' mapping)."""
    return np.array([list(controls_from_blendshapes(dict(zip(ARKIT_BLENDSHAPES, row))).values())
                     for row in blendshapes])


def neutral_frame(features: np.ndarray, estimator, pose: np.ndarray, found: np.ndarray) -> int:
    """The calmest frame with a face: its expression nearest the video's typical face (the median of
    every feature: expressions come and go, the resting face stays) and its mouth closed (a talking
    person's typical mouth is a little open; a closed one is a viewer's neutral), the head facing the
    camera (`pose` (T, 3) degrees), and little movement to or from its neighbours."""
    typical = np.median(features[found], axis=0)
    controls = _controls(estimator.scores(features, typical))
    mouth_open = _controls(estimator.scores(features, estimator.rest))[:, EXPRESSION_NAMES.index("jawOpen")]
    turned = np.abs(pose).sum(axis=1) / POSE_UNIT_DEG
    signals = np.concatenate([controls, pose / POSE_UNIT_DEG], axis=1)
    change = np.abs(np.diff(signals, axis=0)).sum(axis=1)
    movement = np.concatenate([[0.0], change]) + np.concatenate([change, [0.0]])
    cost = controls.sum(axis=1) + mouth_open + turned + STILLNESS_WEIGHT * movement
    return int(np.argmin(np.where(found, cost, np.inf)))


def _around(values: np.ndarray, index: int, found: np.ndarray) -> np.ndarray:
    """The mean of `values` over the frames with a face within NEUTRAL_WINDOW of `index`: a neutral
    reference with less of one frame's measuring noise."""
    near = np.arange(max(0, index - NEUTRAL_WINDOW), min(len(values), index + NEUTRAL_WINDOW + 1))
    return values[near[found[near]]].mean(axis=0)


def turns(track: Track, neutral: int, fov_deg: float) -> np.ndarray:
    """(T, 2) yaw and pitch (degrees) of each frame's head relative to the neutral frame's; NaN where no face.

    The model is the neutral frame's rigid points as the mesh gives them (x, y in pixels, z in pixels
    too, mediapipe's scale, which is no exact perspective shape): each frame's rotation is fitted to it,
    and the neutral frame's own fitted rotation (that shape's small bias, the same in every frame) is
    taken out."""
    width, height = track.frame_size
    camera = intrinsics(max(width, height), fov_deg)
    camera[0, 2], camera[1, 2] = width / 2, height / 2
    reference = _around(track.rigid, neutral, track.found)
    model = reference - reference.mean(axis=0)

    def rotation(points: np.ndarray) -> np.ndarray | None:
        # SQPnP finds the global optimum; the iterative solver can settle on the mirror pose behind the camera.
        ok, vector, _ = cv2.solvePnP(model, np.ascontiguousarray(points[:, :2]), camera, None,
                                     flags=cv2.SOLVEPNP_SQPNP)
        return cv2.Rodrigues(vector)[0] if ok else None

    bias = rotation(reference)
    out = np.full((len(track), 2), np.nan)
    for index in np.flatnonzero(track.found):
        fitted = rotation(track.rigid[index])
        if fitted is not None and bias is not None:
            matrix = fitted @ bias.T
            # perse.ingest.face.head_pose's decomposition (rotation_ypr = Rz(roll) Rx(pitch) Ry(yaw)).
            out[index] = (math.degrees(math.atan2(-matrix[2, 0], matrix[2, 2])),
                          math.degrees(math.asin(float(np.clip(matrix[2, 1], -1.0, 1.0)))))
    return out


def retarget(track: Track, min_cutoff: float, beta: float, max_yaw: float, max_pitch: float, fov_deg: float,
             neutral: int | None = None) -> Performance:
    """The performance: controls in [0, 1] and head angles, relative to the neutral frame, smoothed."""
    found = track.found
    if neutral is not None:
        if not 0 <= neutral < len(track):
            raise PerseError(f"neutral frame {neutral} is not in the video: it has {len(track)} frames (0 to "
                             f"{len(track) - 1})")
        if not found[neutral]:
            nearest = np.flatnonzero(found)[np.argmin(np.abs(np.flatnonzero(found) - neutral))]
            raise PerseError(f"no face was found in frame {neutral}, so it cannot be the neutral frame; choose one "
                             f"where the face is calm and visible (the nearest with a face is {nearest})")
    estimator = ESTIMATORS.load(track.estimator)
    features = bridge(track.features, found)
    if neutral is None:
        neutral = neutral_frame(features, estimator, bridge(track.pose, found), found)
    # Scores are smoothed rather than features: the filter's speed threshold is tuned in score units.
    controls = smooth(_controls(estimator.scores(features, _around(features, neutral, found))), track.fps,
                      min_cutoff, beta)
    turn = turns(track, neutral, fov_deg)
    fitted = ~np.isnan(turn[:, 0])  # a face whose rotation could not be fitted is bridged too
    turn = smooth(bridge(turn, fitted) / POSE_UNIT_DEG, track.fps, min_cutoff, beta) * POSE_UNIT_DEG
    return Performance(controls, np.clip(turn[:, 0], -max_yaw, max_yaw), np.clip(turn[:, 1], -max_pitch, max_pitch),
                       neutral, int((~track.found).sum()))
