"""Embedded identity scorer: dlib's face-recognition ResNet (128-D), weights from face-recognition-models.

dlib aligns a face from its 5-point landmarks (eye corners and the base of the nose) into a 150 px chip.
We build those five points from the mediapipe mesh instead of running dlib's detector and predictor, so
every frame is aligned exactly as its landmarks say. dlib cuts the chips; the network itself runs in
torch (perse.synth.identity.dlib_net: the same weights, the same descriptors), batched and on the GPU
when there is one -- dlib alone takes ~0.1 s per face on the CPU, too slow for hundreds of frames.
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
CHIP_SIZE, CHIP_PADDING = 150, 0.25  # dlib's get_face_chip defaults, which the network was trained with
BATCH = {"cpu": 32, "cuda": 256}  # chips per forward pass: bounds activation memory
# dlib's documented decision rule: two descriptors closer than this (Euclidean) show the same person.
SAME_PERSON_DISTANCE = 0.6


def model_dir() -> Path:
    """face-recognition-models' data folder, found without importing it (its import needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise PerseError("the dlib identity scorer needs the face-recognition-models package: "
                         "pip install face-recognition-models==0.3.0 (or set synth.identity=insightface)")
    return Path(spec.origin).parent / "models"


def _import_dlib():
    try:
        import dlib
    except ImportError as exc:
        raise PerseError(f"dlib cannot be imported ({exc}); pip install dlib-bin==20.0.1.post1") from exc
    return dlib


class DlibScorer:
    """`similarity` = 1 - distance / (2 * 0.6): 1 for identical faces, 0.5 exactly at dlib's own
    same-person threshold, lower for different people. (Cosine is a poor fit here: dlib descriptors are
    not normalised and different people still score ~0.8 cosine.)"""

    name = "dlib"
    threshold = 0.5
    _shared: dict[str, "DlibScorer"] = {}
    _shared_lock = threading.Lock()

    def __init__(self, device: str = "cpu", weights: Path | None = None):
        from perse.synth.identity.dlib_net import (
            DlibFormatError,
            build_module,
            read_weights,
        )

        self._dlib = _import_dlib()
        weights = Path(weights) if weights else model_dir() / RECOGNITION_MODEL
        if not weights.is_file():
            raise PerseError(f"{weights}: dlib's face-recognition weights are missing; reinstall "
                             f"face-recognition-models (pip install --force-reinstall face-recognition-models)")
        try:
            self.network = build_module(read_weights(weights)).to(device)
        except (DlibFormatError, IndexError, ValueError) as exc:
            raise PerseError(f"{weights}: cannot read dlib's network ({exc}); reinstall "
                             f"face-recognition-models") from exc
        self.device = device

    @classmethod
    def from_config(cls, config) -> "DlibScorer":
        return cls.shared(config.resolved_device())

    @classmethod
    def shared(cls, device: str = "cpu") -> "DlibScorer":
        """One loaded network per device per process (reading the weights takes ~0.1 s)."""
        with cls._shared_lock:
            if device not in cls._shared:
                cls._shared[device] = cls(device)
            return cls._shared[device]

    def chip(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The 150 px face chip dlib's network expects, aligned from our landmarks."""
        dlib = self._dlib
        xy = landmarks[:, :2] - 0.5  # dlib puts pixel centres at integers; landmarks at +0.5
        (x0, y0), (x1, y1) = np.floor(xy.min(0)), np.ceil(xy.max(0))
        rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
        points = [dlib.point(round(float(x)), round(float(y))) for x, y in xy[list(DLIB_FIVE_POINTS)]]
        return dlib.get_face_chip(rgb, dlib.full_object_detection(rect, points), size=CHIP_SIZE,
                                  padding=CHIP_PADDING)

    def embed_batch(self, images: Sequence[np.ndarray],
                    landmarks: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        import torch

        chips = [self.chip(rgb, points) for rgb, points in aligned_inputs(images, landmarks)]
        if not chips:
            return np.zeros((0, 128), dtype=np.float32)
        batch = BATCH["cuda" if self.device.startswith("cuda") else "cpu"]
        out = []
        with torch.inference_mode():
            for start in range(0, len(chips), batch):
                stack = torch.from_numpy(np.stack(chips[start:start + batch])).to(self.device)
                out.append(self.network(stack).float().cpu().numpy())
        return np.concatenate(out)

    def embed(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        return self.embed_batch([image], [landmarks])[0]

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
        if a.shape != b.shape:
            raise ValueError(f"embeddings of different sizes cannot be compared: {a.shape} vs {b.shape}")
        return float(1.0 - np.linalg.norm(a - b) / (2 * SAME_PERSON_DISTANCE))
