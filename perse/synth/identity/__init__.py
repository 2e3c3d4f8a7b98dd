"""Identity scoring: does a synthesized frame still show the reference person?

PERSE filters out generated frames whose identity drifted (15-20% of its unfiltered data did). A scorer
maps a face image to an embedding; `similarity` compares two embeddings: 1 = identical, and the
scorer's `threshold` separates the same person (above) from different people (below). Faces are aligned from the 478 mediapipe landmarks every stage already has, so
scoring hundreds of frames needs no detector; pass `landmarks=None` to have the face found first.

Backends, chosen by name (config.synth.identity):
- "dlib": the face-recognition ResNet whose weights ship in the face-recognition-models package
  (embedded default: offline; runs in torch, batched, on the GPU when config.device allows).
- "insightface": an ArcFace ONNX model from a local path or the Hugging Face hub.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from perse.config import PipelineConfig
from perse.core.registry import Registry
from perse.errors import InputImageError
from perse.ingest.mesh import NUM_LANDMARKS

SCORERS = Registry("identity backend", "synth.identity", {
    "dlib": "perse.synth.identity.dlib:DlibScorer",
    "insightface": "perse.synth.identity.insightface:InsightFaceScorer",
})


@runtime_checkable
class IdentityScorer(Protocol):
    name: str
    threshold: float  # similarities above it mean "same person" for this backend

    @classmethod
    def from_config(cls, config: PipelineConfig) -> "IdentityScorer":
        """The scorer `config` asks for (model path, device), shared per process where loading is slow."""

    def embed(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """One face image (H, W, 3) RGB, uint8 or float in [0, 1] -> a 1-D embedding."""

    def embed_batch(self, images: Sequence[np.ndarray],
                    landmarks: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        """N face images -> (N, D) embeddings, computed in batches."""

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """How alike two embeddings are: 1 = identical, above `threshold` = same person."""


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"embeddings of different sizes cannot be compared: {a.shape} vs {b.shape}")
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.dot(a, b) / denominator) if denominator > 0 else 0.0


def as_rgb_uint8(image: np.ndarray, where: str = "image") -> np.ndarray:
    """Accept the image types stages produce (uint8, or float in [0, 1]; RGB or greyscale)."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InputImageError(f"{where}: expected an (H, W, 3) RGB image, got shape {array.shape}")
    array = array[:, :, :3]
    if array.dtype != np.uint8:
        array = np.clip(np.round(array.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def find_landmarks(image: np.ndarray, where: str = "image") -> np.ndarray:
    """478 landmarks of the largest face in an RGB image, for callers that have none."""
    from perse.ingest.face import detect_faces, mesh_landmarks

    boxes = detect_faces(image)
    landmarks = mesh_landmarks(image, boxes[0]) if boxes else None
    if landmarks is None:
        raise InputImageError(f"{where}: no face found to score; pass the face's landmarks, or use an image "
                              f"where the face is clearly visible")
    return landmarks


def aligned_inputs(images: Sequence[np.ndarray], landmarks: Sequence[np.ndarray | None] | None
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pair every image (as RGB uint8) with its landmarks, detecting those that are missing."""
    if landmarks is None:
        landmarks = [None] * len(images)
    if len(landmarks) != len(images):
        raise ValueError(f"{len(images)} images but {len(landmarks)} landmark sets")
    pairs = []
    for i, (image, points) in enumerate(zip(images, landmarks)):
        rgb = as_rgb_uint8(image, f"image {i}")
        if points is None:
            points = find_landmarks(rgb, f"image {i}")
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[0] != NUM_LANDMARKS or not np.isfinite(points).all():
            raise InputImageError(f"image {i}: landmarks must be mediapipe's (478, 2|3) face mesh points, "
                                  f"got shape {points.shape}")
        pairs.append((rgb, points))
    return pairs


def make_scorer(name: str, config: PipelineConfig | None = None) -> IdentityScorer:
    """The identity backend called `name` ("dlib" or "insightface"), configured from `config.synth`."""
    return SCORERS.load(name).from_config(config or PipelineConfig())
