"""Identity scoring: the same person scores clearly above different people; both backends batch, align
from our landmarks or detect, and fail with clear messages."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from perse.config import build_config
from perse.errors import ConfigError, InputImageError, PerseError
from perse.synth.identity import IdentityScorer, make_scorer


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def photos(shared_portraits) -> dict[str, np.ndarray]:
    obama = _rgb(shared_portraits["obama"])
    # The same photo cut tighter and shown at a third of its resolution: another scale, framing and blur.
    h, w = obama.shape[:2]
    crop = obama[int(0.05 * h): int(0.6 * h), int(0.2 * w): int(0.85 * w)]
    crop = cv2.resize(crop, (crop.shape[1] // 3, crop.shape[0] // 3), interpolation=cv2.INTER_AREA)
    return {"obama": obama, "obama_mirror": np.ascontiguousarray(obama[:, ::-1]), "obama_crop": crop,
            "biden": _rgb(shared_portraits["biden2"]), "grace_hopper": _rgb(shared_portraits["grace_hopper"])}


@pytest.fixture(scope="module")
def dlib_scorer() -> IdentityScorer:
    return make_scorer("dlib", build_config("fast"))


def test_dlib_same_person_scores_clearly_above_different_people(dlib_scorer, photos):
    s = dlib_scorer
    assert isinstance(s, IdentityScorer)
    emb = dict(zip(photos, s.embed_batch(list(photos.values()))))  # no landmarks: detected
    assert emb["obama"].shape == (128,)
    same = [s.similarity(emb["obama"], emb[k]) for k in ("obama_mirror", "obama_crop")]
    different = [s.similarity(emb["obama"], emb["biden"]), s.similarity(emb["obama"], emb["grace_hopper"]),
                 s.similarity(emb["biden"], emb["grace_hopper"])]
    assert min(same) > s.threshold > max(different), (same, different)
    assert min(same) - max(different) > 0.3, (same, different)
    assert s.similarity(emb["obama"], emb["obama"]) == pytest.approx(1.0)
    assert s.similarity(emb["obama"], emb["biden"]) == pytest.approx(s.similarity(emb["biden"], emb["obama"]))


def test_dlib_uses_given_landmarks_and_batches(dlib_scorer, ingested):
    portraits = [ingested[name][0] for name in ("obama", "biden2", "grace_hopper")]
    images = [p.image for p in portraits]
    landmarks = [p.landmarks for p in portraits]
    batch = dlib_scorer.embed_batch(images, landmarks)
    assert batch.shape == (3, 128)
    assert np.allclose(dlib_scorer.embed(images[1], landmarks[1]), batch[1], atol=1e-5)
    variants = dlib_scorer.embed_batch(
        [images[0], images[0].astype(np.float32) / 255, images[0]],
        # Detected landmarks; float images in [0, 1] (as renderers produce); another face's landmarks.
        [None, landmarks[0], landmarks[1] * 0.5])
    detected, as_float, misaligned = variants
    # Our mesh landmarks and dlib's alignment agree: given and detected landmarks give the same person.
    assert dlib_scorer.similarity(detected, batch[0]) > 0.9
    assert dlib_scorer.similarity(as_float, batch[0]) > 0.99
    # Wrong landmarks change the result: alignment really follows them.
    assert dlib_scorer.similarity(misaligned, batch[0]) < 0.9


def test_torch_network_reproduces_dlib(dlib_scorer, ingested):
    import dlib

    from perse.synth.identity.dlib import RECOGNITION_MODEL, model_dir

    native = dlib.face_recognition_model_v1(str(model_dir() / RECOGNITION_MODEL))
    portraits = [portrait for portrait, _ in ingested.values()]
    chips = [dlib_scorer.chip(p.image, p.landmarks.astype(np.float64)) for p in portraits]
    expected = np.array([np.array(v) for v in native.compute_face_descriptor(chips)])
    ours = dlib_scorer.embed_batch([p.image for p in portraits], [p.landmarks for p in portraits])
    assert np.abs(ours - expected).max() < 1e-4


@pytest.mark.gpu
def test_dlib_scorer_on_cuda_matches_cpu(ingested):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from perse.synth.identity.dlib import DlibScorer

    portrait = ingested["obama"][0]
    images, landmarks = [portrait.image] * 300, [portrait.landmarks] * 300
    gpu = DlibScorer.shared("cuda").embed_batch(images, landmarks)
    cpu = DlibScorer.shared("cpu").embed_batch(images[:1], landmarks[:1])
    assert gpu.shape == (300, 128)
    assert np.abs(gpu - cpu[0]).max() < 1e-3


def test_scorers_report_unusable_input(dlib_scorer):
    blank = np.full((200, 200, 3), 127, np.uint8)
    with pytest.raises(InputImageError, match="no face found to score"):
        dlib_scorer.embed(blank)
    with pytest.raises(InputImageError, match="478"):
        dlib_scorer.embed(blank, np.zeros((68, 2)))
    with pytest.raises(InputImageError, match="RGB image"):
        dlib_scorer.embed(np.zeros((10, 10, 5), np.uint8), np.zeros((478, 3)))


def test_unknown_backend_names_the_choices():
    with pytest.raises(ConfigError, match="dlib, insightface"):
        make_scorer("facenet", build_config("fast"))


# --- insightface, offline, on a tiny ArcFace-shaped model this test exports ------------------------------

def _export(path, side: int) -> str:
    import warnings

    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(256, 512)).eval()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but is the one that needs no onnxscript: fine for a test model.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, torch.zeros(1, 3, side, side), str(path), dynamo=False, input_names=["input"],
                          output_names=["embedding"], dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}})
    return str(path)


@pytest.fixture(scope="module")
def tiny_arcface(tmp_path_factory) -> str:
    return _export(tmp_path_factory.mktemp("onnx") / "tiny_arcface.onnx", 112)


def test_insightface_backend_aligns_with_our_landmarks_and_batches(tiny_arcface, ingested):
    scorer = make_scorer("insightface", build_config("fast", overrides={"synth.insightface_model": tiny_arcface}))
    assert isinstance(scorer, IdentityScorer)
    assert make_scorer("insightface", build_config("fast", overrides={"synth.insightface_model": tiny_arcface})) \
        is scorer, "the ONNX session is loaded once per process"
    obama, biden = ingested["obama"][0], ingested["biden2"][0]
    batch = scorer.embed_batch([obama.image, biden.image], [obama.landmarks, biden.landmarks])
    assert batch.shape == (2, 512) and np.isfinite(batch).all()
    assert np.allclose(scorer.embed(obama.image, obama.landmarks), batch[0], atol=1e-5)
    # Alignment normalises scale: the portrait at half size with halved landmarks gives the same chip.
    half = cv2.resize(obama.image, (obama.size // 2,) * 2, interpolation=cv2.INTER_AREA)
    scaled = obama.landmarks.copy()
    scaled[:, :2] /= 2
    assert scorer.similarity(scorer.embed(half, scaled), batch[0]) > 0.99
    # A different face gives a different embedding even from random weights.
    assert scorer.similarity(batch[0], batch[1]) < scorer.similarity(scorer.embed(half, scaled), batch[0])
    # Without landmarks the face is detected first.
    assert scorer.similarity(scorer.embed(obama.image), batch[0]) > 0.99


def test_insightface_model_errors_are_actionable(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="no such file"):
        make_scorer("insightface", build_config("fast", overrides={"synth.insightface_model": str(tmp_path / "x.onnx")}))
    not_arcface = _export(tmp_path / "landmark_shaped.onnx", 192)
    with pytest.raises(ConfigError, match="not an ArcFace recognition model"):
        make_scorer("insightface", build_config("fast", overrides={"synth.insightface_model": not_arcface}))
    # A hub path that cannot be fetched (offline here) says how to proceed without the hub.
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(PerseError, match="set synth.insightface_model to its local path"):
        make_scorer("insightface", build_config("fast", overrides={"synth.insightface_model": "someone/models/arc.onnx"}))
