"""Expression visibility: how much each expression control at full strength changes the face where it acts.

A control that moves its region by a grey level or two is invisible to a visitor even when the
reconstruction numbers are fine. The measure is the mean absolute change, in grey levels (0-255,
mean over RGB), of a frontal render with one control at `strength` against the neutral render,
inside that control's region: the mouth for the mouth controls, the named eye for a blink, both eyes
for eyeWide, the brows and the eyes below them for the brow controls, the cheeks (and the outline
beside them) for cheekPuff. Regions come from the portrait's face landmarks, so the same measure
scores the synthetic frames (the animator) and the trained avatar.
"""
from __future__ import annotations

from typing import Callable, Mapping

import cv2
import numpy as np

from perse.core.expressions import EXPRESSION_NAMES
from perse.synth import face as F

MOUTH = (F.LIPS_OUTER,)
BROWS = (F.RIGHT_BROW_UPPER + F.RIGHT_BROW_LOWER, F.LEFT_BROW_UPPER + F.LEFT_BROW_LOWER)
CHEEKS = (F.RIGHT_CHEEK, F.LEFT_CHEEK)
# Per control: the landmark groups outlining where it acts (each group its own hull: one hull over both
# eyes would cover the nose bridge), and how far (in face heights) its region reaches beyond them: the
# jaw drops the chin below the lips, brows rise above their landmarks, a puffed cheek pushes the outline out.
CONTROL_REGIONS: dict[str, tuple[tuple[tuple[int, ...], ...], float]] = {
    **{name: (MOUTH, 0.08) for name in ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "mouthPucker", "mouthFunnel",
                                          "mouthPress", "mouthStretch")},
    "eyeBlinkLeft": ((F.LEFT_EYE,), 0.03),
    "eyeBlinkRight": ((F.RIGHT_EYE,), 0.03),
    "eyeWide": ((F.RIGHT_EYE, F.LEFT_EYE), 0.03),
    **{name: (BROWS, 0.06) for name in ("browInnerUp", "browOuterUp", "browDown")},
    "cheekPuff": (CHEEKS, 0.06),
}


def control_regions(landmarks: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """name -> (size, size) bool region of each expression control, from (478, 2+) landmarks at `size`."""
    xy = np.asarray(landmarks, np.float64)[:, :2]
    face = F.FaceFrame(np.asarray(landmarks, np.float64))
    regions = {}
    for name, (groups, reach) in CONTROL_REGIONS.items():
        mask = np.zeros((size, size), np.uint8)
        for group in groups:
            hull = cv2.convexHull(np.round(xy[list(group)] - 0.5).astype(np.int32))
            cv2.fillConvexPoly(mask, hull, 1)
        radius = max(1, int(round(reach * face.face_height)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        regions[name] = cv2.dilate(mask, kernel) > 0
    return regions


def region_change(neutral: np.ndarray, expressed: np.ndarray, region: np.ndarray) -> float:
    """Mean absolute change in grey levels (0-255) inside `region` of two (H, W, 3) [0, 1] images."""
    difference = np.abs(np.asarray(expressed, np.float64) - np.asarray(neutral, np.float64)).mean(-1)
    return float(255 * difference[region].mean()) if region.any() else 0.0


def visibility(render: Callable[[Mapping[str, float]], np.ndarray], landmarks: np.ndarray, size: int,
               strength: float = 1.0, names: tuple[str, ...] = tuple(EXPRESSION_NAMES)) -> dict[str, float]:
    """Grey-level change per control: `render({name: value})` gives a frontal (size, size, 3) image,
    `landmarks` locate the face in it."""
    regions = control_regions(landmarks, size)
    neutral = render({})
    return {name: region_change(neutral, render({name: strength}), regions[name]) for name in names}


def expression_visibility(avatar, portrait, strength: float = 1.0) -> dict[str, float]:
    """Per-control visibility of a trained `perse.avatar.avatar.Avatar` whose dataset came from `portrait`
    (an ingested Portrait at any size: its landmarks are scaled to the avatar's image size)."""
    size = avatar.image_size
    landmarks = np.asarray(portrait.landmarks, np.float64) * (size / portrait.size)
    return visibility(lambda expression: avatar.render(expression=dict(expression)), landmarks, size, strength,
                      tuple(name for name in avatar.expression_names if name in CONTROL_REGIONS))


def animator_expression_visibility(animator, image: np.ndarray, matte: np.ndarray, landmarks: np.ndarray,
                                   strength: float = 1.0) -> dict[str, float]:
    """The same measure on the synthetic frames: the lift animator renders `image` (its portrait, at its
    size) frontal with each control alone."""
    from perse.synth.animate.motion import MotionScript

    def render(expression: Mapping[str, float]) -> np.ndarray:
        vector = np.array([[expression.get(name, 0.0) for name in EXPRESSION_NAMES]])
        script = MotionScript(np.zeros(1), np.zeros(1), vector, animator.pivot, animator.fov_deg)
        return animator.animate(image, matte, script).images[0]

    return visibility(render, landmarks, animator.size, strength)
