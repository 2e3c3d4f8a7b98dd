"""The "mediapipe" blendshape estimator: mediapipe's FaceLandmarker with its blendshape model.

The model (face_landmarker.task, from mediapipe's model page) is not inside the mediapipe wheel. This
package ships a copy (perse/drive/models/README.md says where it comes from); drive.face_landmarker or
the PERSE_FACE_LANDMARKER environment variable name another. The landmarker runs on a close-up around
the face the ingest stage's mesh found, so both see one face.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from perse.core.expressions import ARKIT_BLENDSHAPES, ARKIT_INDEX
from perse.errors import PerseError

ENV = "PERSE_FACE_LANDMARKER"
MODEL_PAGE = "https://ai.google.dev/edge/mediapipe/solutions/vision/face_landmarker#models"
# The close-up's side, as a multiple of the face's extent: the landmarker's own detector wants context.
CLOSE_UP_SCALE = 1.8
# Scores are rescaled by the room their neutral value leaves below 1; never by less than this.
MIN_ROOM = 0.05


# The copy this package ships.
BUNDLED = Path(__file__).parent / "models" / "face_landmarker.task"


def model_path(configured: str) -> Path:
    """The .task file from the config, else from the environment, else the bundled one; a specific error
    when none is there."""
    spec = configured or os.environ.get(ENV, "")
    where = "drive.face_landmarker" if configured else ENV
    if not spec:
        if BUNDLED.is_file():
            return BUNDLED
        raise PerseError(f"the mediapipe blendshape estimator needs mediapipe's face_landmarker.task, which its wheel "
                         f"does not ship and this installation lacks ({BUNDLED}): download it from {MODEL_PAGE} and "
                         f"give its path with --override drive.face_landmarker=PATH or {ENV}=PATH, or use "
                         "drive.blendshapes=geometric")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise PerseError(f"{path} ({where}): no such file; it should be mediapipe's face_landmarker.task "
                         f"(from {MODEL_PAGE}); fix the path or use drive.blendshapes=geometric")
    return path


def scores_from_result(result: Any) -> np.ndarray | None:
    """A FaceLandmarkerResult's first face as (52,) scores in ARKIT_BLENDSHAPES order (by category name,
    so a model that orders or names them differently cannot shift them); None when it found no face."""
    if not getattr(result, "face_blendshapes", None):
        return None
    scores = np.zeros(len(ARKIT_BLENDSHAPES))
    for category in result.face_blendshapes[0]:
        index = ARKIT_INDEX.get(category.category_name)
        if index is not None:
            scores[index] = float(category.score)
    return scores


def close_up(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A square cut around the face (clipped to the frame)."""
    xy = np.asarray(landmarks)[:, :2]
    centre = (xy.min(axis=0) + xy.max(axis=0)) / 2
    half = CLOSE_UP_SCALE * float((xy.max(axis=0) - xy.min(axis=0)).max()) / 2
    height, width = rgb.shape[:2]
    x0, y0 = (max(0, int(c - half)) for c in centre)
    x1, y1 = min(width, int(centre[0] + half) + 1), min(height, int(centre[1] + half) + 1)
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


class LandmarkerEstimator:
    """Features: the landmarker's 52 scores. A score the neutral face already shows (resting brows read
    as a little browDown) counts from there, and what is left up to 1 is stretched to [0, 1]."""

    name = "mediapipe"
    rest = np.zeros(len(ARKIT_BLENDSHAPES))

    def __init__(self, path: Path):
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                               output_face_blendshapes=True, num_faces=1)
        try:
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            raise PerseError(f"{path}: mediapipe cannot load it as a face landmarker model ({exc}); it should be "
                             f"face_landmarker.task from {MODEL_PAGE}") from None
        # mediapipe graphs are not re-entrant (as perse.ingest.mesh's).
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config) -> "LandmarkerEstimator":
        return cls(model_path(config.face_landmarker))

    def features(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=close_up(rgb, landmarks))
        with self._lock:
            return scores_from_result(self._landmarker.detect(image))

    @staticmethod
    def scores(features: np.ndarray, neutral: np.ndarray) -> np.ndarray:
        return np.clip((features - neutral) / np.maximum(1.0 - neutral, MIN_ROOM), 0.0, 1.0)
