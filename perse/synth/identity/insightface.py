"""Hub identity scorer: an insightface ArcFace ONNX model (the paper's identity metric), cosine similarity.

The model comes from a local .onnx path, or from the Hugging Face hub as "owner/repo/path/in/repo.onnx"
(downloaded once into the hub cache; offline runs then find it there). Faces are aligned to ArcFace's
5-point template (eye centres, nose tip, mouth corners) taken from the mediapipe mesh.
insightface's pretrained models are licensed for non-commercial research only; the default backend
(dlib) has no such restriction.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from perse.errors import ConfigError, PerseError
from perse.ingest import mesh
from perse.synth.identity import aligned_inputs, cosine_similarity

# ArcFace's template order: image-left eye, image-right eye, nose tip, image-left and image-right mouth corner.
ARCFACE_FIVE_POINTS = (mesh.IRIS_LEFT, mesh.IRIS_RIGHT, mesh.NOSE_TIP, mesh.MOUTH_LEFT, mesh.MOUTH_RIGHT)
# buffalo_l's recognition model (w600k_r50), mirrored on the hub by the insightface Spaces' maintainers.
DEFAULT_HUB_MODEL = "public-data/insightface/models/w600k_r50.onnx"
BATCH = 64


def resolve_model(spec: str) -> Path:
    """A local .onnx path as is; "owner/repo/file.onnx" downloaded from the Hugging Face hub (or its cache)."""
    spec = spec or DEFAULT_HUB_MODEL
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    parts = spec.split("/")
    if path.is_absolute() or spec.startswith(".") or len(parts) < 3:
        raise ConfigError(f"insightface model {spec}: no such file; set synth.insightface_model to an ArcFace "
                          f".onnx file or a hub path like {DEFAULT_HUB_MODEL}")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as exc:  # network, auth, missing file and offline-cache misses all mean "not available"
        raise PerseError(f"insightface model {spec}: cannot get it from the Hugging Face hub ({type(exc).__name__}: "
                         f"{exc}); download it elsewhere and set synth.insightface_model to its local path, or "
                         f"use synth.identity=dlib, which needs no download") from exc


class InsightFaceScorer:
    name = "insightface"
    # Cosine similarity of ArcFace embeddings; ~0.3 is the usual same-person cut for insightface's models.
    threshold = 0.3
    _cache: dict[tuple[Path, str], "InsightFaceScorer"] = {}
    _cache_lock = threading.Lock()

    def __init__(self, model_path: Path, device: str = "cpu"):
        try:
            import onnxruntime
            from insightface.model_zoo import get_model
        except ImportError as exc:
            raise PerseError(f"insightface cannot be imported ({exc}); pip install insightface==2.1 "
                             f"onnxruntime==1.22.1") from exc
        providers = ["CPUExecutionProvider"]
        # The GPU only where onnxruntime was built with CUDA (onnxruntime-gpu); the CPU build runs everywhere.
        if device.startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        model = get_model(str(model_path), providers=providers)
        if model is None or getattr(model, "taskname", None) != "recognition":
            raise ConfigError(f"{model_path} is not an ArcFace recognition model (it needs one square input "
                              f"of 112 px or more and one embedding output)")
        self.model = model
        self.input_size = int(model.input_size[0])
        self.path = model_path

    @classmethod
    def from_config(cls, config) -> "InsightFaceScorer":
        return cls.from_spec(config.synth.insightface_model, config.resolved_device())

    @classmethod
    def from_spec(cls, spec: str, device: str = "cpu") -> "InsightFaceScorer":
        """One loaded session per model file and device per process."""
        key = (resolve_model(spec).resolve(), device)
        with cls._cache_lock:
            if key not in cls._cache:
                cls._cache[key] = cls(*key)
            return cls._cache[key]

    def _aligned_bgr(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        from insightface.utils import face_align

        # OpenCV (which norm_crop warps with) puts pixel centres at integers; landmarks at +0.5.
        five = (landmarks[list(ARCFACE_FIVE_POINTS), :2] - 0.5).astype(np.float32)
        # insightface models were trained on OpenCV (BGR) images; get_feat swaps the channels back.
        return face_align.norm_crop(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), five, image_size=self.input_size)

    def embed_batch(self, images: Sequence[np.ndarray],
                    landmarks: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        chips = [self._aligned_bgr(rgb, points) for rgb, points in aligned_inputs(images, landmarks)]
        features = [self.model.get_feat(chips[i:i + BATCH]) for i in range(0, len(chips), BATCH)]
        return np.concatenate(features).astype(np.float32) if features else np.zeros((0, 0), np.float32)

    def embed(self, image: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        return self.embed_batch([image], [landmarks])[0]

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        return cosine_similarity(a, b)
