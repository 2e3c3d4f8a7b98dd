"""Embedded identity scorer: dlib's face-recognition ResNet (128-D), weights from face-recognition-models.

dlib aligns a face from its 5-point landmarks (eye corners and the base of the nose). We build those
five points from the mediapipe mesh instead of running dlib's detector and predictor, so every frame is
aligned exactly as its landmarks say, and many frames go through one batched call.
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from perse.errors import PerseError
from perse.ingest import mesh
from perse.synth.identity import aligned_inputs

# dlib's 5-point order (checked against its own predictor on the shared portraits): image-right eye
# outer and inner corner, image-left eye outer and inner corner, bottom of the nose.
DLIB_FIVE_POINTS = (mesh.EYE_OUTER_RIGHT, mesh.EYE_INNER_RIGHT, mesh.EYE_OUTER_LEFT, mesh.EYE_INNER_LEFT,
                    mesh.SUBNASALE)
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
BATCH = 32  # faces per native call: amortises the call overhead, bounds the chip memory
# dlib's documented decision rule: two descriptors closer than this (Euclidean) show the same person.
SAME_PERSON_DISTANCE = 0.6


def model_dir() -> Path:
    """face-recognition-models' data folder, found without importing it (its import needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise PerseError("the dlib identity scorer needs the face-recognition-models package: "
                         "pip install face-recognition-models==0.3.0 (or set synth.identity=insightface)")
    return Path(spec.origin).parent / "models"


class DlibScorer:
    """`similarity` = 1 - distance / (2 * 0.6): 1 for identical faces, 0.5 exactly at dlib's own
    same-person threshold, lower for different people. (Cosine is a poor fit here: dlib descriptors are
    not normalised and different people still score ~0.8 cosine.)"""

    name = "dlib"
    threshold = 0.5
    _shared: "DlibScorer | None" = None
    _shared_lock = threading.Lock()

    def __init__(self, weights: Path | None = None):
        try:
            import dlib
        except ImportError as exc:
            raise PerseError(f"dlib cannot be imported ({exc}); pip install dlib-bin==20.0.1.post1") from exc
        weights = Path(weights) if weights else model_dir() / RECOGNITION_MODEL
        if not weights.is_file():
            raise PerseError(f"{weights}: dlib's face-recognition weights are missing; reinstall "
                             f"face-recognition-models (pip install --force-reinstall face-recognition-models)")
        self._dlib = dlib
        self._model = dlib.face_recognition_model_v1(str(weights))
        # dlib networks keep per-call buffers: one call at a time per model.
        self._lock = threading.Lock()

    @classmethod
    def shared(cls) -> "DlibScorer":
        """One loaded model per process (loading costs ~0.1 s and 20 MB)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def _detection(self, landmarks: np.ndarray):
        dlib = self._dlib
        xy = landmarks[:, :2]
        (x0, y0), (x1, y1) = np.floor(xy.min(0)), np.ceil(xy.max(0))
        rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
        points = [dlib.point(round(float(x)), round(float(y))) for x, y in xy[list(DLIB_FIVE_POINTS)]]
        return dlib.full_object_detections([dlib.full_object_detection(rect, points)])

    def embed_batch(self, images: Sequence[np.ndarray],
                    landmarks: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        pairs = aligned_inputs(images, landmarks)
        out = np.zeros((len(pairs), 128), dtype=np.float32)
        for start in range(0, len(pairs), BATCH):
            chunk = pairs[start:start + BATCH]
            with self._lock:
                vectors = self._model.compute_face_descriptor(
                    [rgb for rgb, _ in chunk], [self._detection(points) for _, points in chunk])
            out[start:start + len(chunk)] = np.array([np.array(v[0]) for v in vectors], dtype=np.float32)
        return out

    def embed(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        return self.embed_batch([image], [landmarks])[0]

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
        if a.shape != b.shape:
            raise ValueError(f"embeddings of different sizes cannot be compared: {a.shape} vs {b.shape}")
        return float(1.0 - np.linalg.norm(a - b) / (2 * SAME_PERSON_DISTANCE))
