"""Blendshape estimators: one video frame and its face mesh -> the 52 ARKit-style blendshape scores of
mediapipe's face landmarker (perse.core.expressions.ARKIT_BLENDSHAPES), chosen by name (drive.blendshapes).

- "geometric" (default, offline): measures the 478-point mesh the ingest stage computes (mouth aperture,
  corner lift, eyelid aperture, brow height, ...), in the head's own frame and in units of the face's size.
- "mediapipe": mediapipe's FaceLandmarker with its blendshape head. Its model file (face_landmarker.task)
  is not in the mediapipe wheel; perse ships one (perse/drive/models), drive.face_landmarker or
  PERSE_FACE_LANDMARKER name another.

An estimator measures each frame's *features* (its own kind of numbers: the geometric one's are face
measures, the landmarker's its raw scores) and turns features into scores relative to a neutral face's
features: perse.drive.retarget passes the video's own neutral frame, since nobody's resting face scores
0 everywhere; `rest`, a typical resting face, gives absolute scores (used to find that neutral frame).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from perse.core.registry import Registry

if TYPE_CHECKING:
    from perse.config import DriveConfig

ESTIMATORS = Registry("blendshape estimator", "drive.blendshapes", {
    "geometric": "perse.drive.geometric:GeometricEstimator",
    "mediapipe": "perse.drive.landmarker:LandmarkerEstimator",
})


class BlendshapeEstimator(Protocol):
    name: str
    rest: np.ndarray  # (F,) the features of a typical resting face

    @classmethod
    def from_config(cls, config: "DriveConfig") -> "BlendshapeEstimator":
        ...

    def features(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
        """(F,) features of the face whose 478 landmarks (frame pixels, as perse.ingest.face.mesh_landmarks
        gives them) are given; None when the estimator finds no face where the mesh did."""
        ...

    @staticmethod
    def scores(features: np.ndarray, neutral: np.ndarray) -> np.ndarray:
        """(T, F) features and a neutral face's (F,) -> (T, 52) scores in [0, 1] (ARKIT_BLENDSHAPES order),
        0 at the neutral face; blendshapes the estimator does not read stay 0. Needs no model: the
        retargeting calls it on the class."""
        ...


def make_estimator(config: "DriveConfig") -> BlendshapeEstimator:
    return ESTIMATORS.load(config.blendshapes).from_config(config)
