"""Face geometry from the 478 mediapipe landmarks that editors and the animator share.

Index sets follow mediapipe's face mesh topology. "Right"/"left" are the person's: the person's right
eye appears on the image's left.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
RIGHT_EYE_UPPER = (246, 161, 160, 159, 158, 157, 173)
LEFT_EYE_UPPER = (466, 388, 387, 386, 385, 384, 398)
RIGHT_EYE_LOWER = (7, 163, 144, 145, 153, 154, 155)
LEFT_EYE_LOWER = (249, 390, 373, 374, 380, 381, 382)
# Brow edges run from the outer end to the inner end.
RIGHT_BROW_UPPER = (70, 63, 105, 66, 107)
RIGHT_BROW_LOWER = (46, 53, 52, 65, 55)
LEFT_BROW_UPPER = (300, 293, 334, 296, 336)
LEFT_BROW_LOWER = (276, 283, 282, 295, 285)
# The lower half of the face oval from one jaw hinge to the other, through the chin.
JAW = (132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361)
FOREHEAD_TOP, CHIN, NOSE_TIP, SUBNASALE = 10, 152, 1, 2
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
# Each cheek from the mouth corner and the cheekbone out to the face's outline beside the mouth.
RIGHT_CHEEK = (MOUTH_RIGHT, 50, 123, 93, 132, 58, 172, 136)
LEFT_CHEEK = (MOUTH_LEFT, 280, 352, 323, 361, 288, 397, 365)
RIGHT_FACE_EDGE, LEFT_FACE_EDGE = 234, 454


@dataclass
class FaceFrame:
    """Measures derived from the landmarks, in crop pixels."""

    landmarks: np.ndarray  # (478, 3)

    @property
    def xy(self) -> np.ndarray:
        return self.landmarks[:, :2]

    @property
    def face_height(self) -> float:
        return float(np.linalg.norm(self.xy[CHIN] - self.xy[FOREHEAD_TOP]))

    @property
    def face_width(self) -> float:
        return float(np.linalg.norm(self.xy[LEFT_FACE_EDGE] - self.xy[RIGHT_FACE_EDGE]))

    @property
    def center_x(self) -> float:
        return float(self.xy[list(FACE_OVAL), 0].mean())

    def eye_center(self, side: str) -> np.ndarray:
        return self.xy[list(RIGHT_EYE if side == "right" else LEFT_EYE)].mean(axis=0)

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.eye_center("left") - self.eye_center("right")))

    @property
    def brow_top(self) -> float:
        return float(self.xy[list(RIGHT_BROW_UPPER + LEFT_BROW_UPPER), 1].min())

    def polygon(self, indices: tuple[int, ...]) -> np.ndarray:
        return self.xy[list(indices)]


def validate_landmarks(landmarks: np.ndarray, size: int, where: str) -> None:
    from perse.errors import PerseError

    landmarks = np.asarray(landmarks)
    if landmarks.ndim != 2 or landmarks.shape[0] < 468 or landmarks.shape[1] != 3:
        raise PerseError(f"{where}: expected 478 (or 468) face-mesh landmarks with x, y, z, got shape "
                         f"{landmarks.shape}; re-run `perse ingest`")
    if not np.isfinite(landmarks).all():
        raise PerseError(f"{where}: landmarks contain NaN or inf; re-run `perse ingest`")
    inside = (landmarks[:, :2] >= -0.25 * size) & (landmarks[:, :2] <= 1.25 * size)
    if not inside.all():
        raise PerseError(f"{where}: landmarks lie far outside the {size}px crop; re-run `perse ingest`")
