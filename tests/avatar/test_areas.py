"""Face areas: each expression control acts only on the Gaussians of its part of the face."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perse.avatar.areas import FaceAreas, area_maps, feature_areas
from perse.avatar.model import AvatarModel
from perse.config import build_config
from perse.core.camera import camera_distance, head_pose_viewmat, unproject
from perse.core.expressions import EXPRESSION_NAMES, FACE_AREAS
from perse.errors import ConfigError
from perse.synth import face as F


def test_expression_features_split_by_area():
    assert np.bincount(feature_areas(16)).tolist() == list(FACE_AREAS.values())
    for dim in (4, 6, 24):
        counts = np.bincount(feature_areas(dim), minlength=len(FACE_AREAS))
        assert counts.sum() == dim and counts.min() >= 1
    with pytest.raises(ConfigError, match="expression_feature_dim must be 0 .* or at least 4"):
        feature_areas(3)


@pytest.fixture(scope="module")
def obama(ingested):
    portrait, _ = ingested["obama"]
    return portrait


def test_area_maps_cover_their_part_of_the_face_only(obama):
    maps = dict(zip(FACE_AREAS, area_maps(obama.landmarks, obama.size)))
    xy = np.asarray(obama.landmarks)[:, :2]
    at = lambda name, points: float(maps[name][tuple(np.round(xy[list(points)].mean(0)).astype(int)[::-1])])  # noqa: E731
    assert at("eyeLeft", F.LEFT_EYE) > 0.9 and at("eyeRight", F.LEFT_EYE) < 0.05
    assert at("eyeRight", F.RIGHT_EYE) > 0.9 and at("lowerFace", F.RIGHT_EYE) < 0.05
    assert at("lowerFace", F.LIPS_OUTER) > 0.9 and at("brows", F.LIPS_OUTER) < 0.05
    assert at("brows", F.LEFT_BROW_UPPER) > 0.9 and at("eyeLeft", (F.FOREHEAD_TOP,)) < 0.05


def test_a_blink_moves_the_eye_and_nothing_else(obama):
    K, fov = np.asarray(obama.intrinsics), obama.fov_deg
    viewmat = head_pose_viewmat(fov)
    pivot = np.array([0.0, 0.0, 0.35])
    areas = FaceAreas.from_landmarks(obama.landmarks[:, :2], obama.size, K, viewmat, pivot)
    xy = np.asarray(obama.landmarks)[:, :2]
    pixels = np.stack([xy[list(F.LEFT_EYE)].mean(0), xy[list(F.LIPS_OUTER)].mean(0), xy[list(F.LEFT_EYE)].mean(0)])
    face_depth = camera_distance(fov)
    # The eye and the mouth on the face; the last point behind the head, where the eye is in the picture.
    depths = np.array([face_depth, face_depth, face_depth + 0.7])
    points = torch.tensor(unproject(pixels, depths, viewmat, K), dtype=torch.float32)
    config = build_config("tiny").avatar
    model = AvatarModel(config, {"hair": 2}, len(EXPRESSION_NAMES), points, torch.rand(3, 3), torch.full((1,), 0.01),
                        areas=areas)
    torch.nn.init.normal_(model.decoder.expression.weight)
    with torch.no_grad():
        model.features.normal_()
        latent = torch.zeros(1, config.latent_dim)
        neutral = model.decode(latent, torch.zeros(1, len(EXPRESSION_NAMES))).means[0]
        blink = torch.zeros(1, len(EXPRESSION_NAMES))
        blink[0, EXPRESSION_NAMES.index("eyeBlinkLeft")] = 1.0
        moved = (model.decode(latent, blink).means[0] - neutral).norm(dim=1)
        jaw = torch.zeros(1, len(EXPRESSION_NAMES))
        jaw[0, EXPRESSION_NAMES.index("jawOpen")] = 1.0
        jaw_moved = (model.decode(latent, jaw).means[0] - neutral).norm(dim=1)
    # The areas' soft edges overlap a little (the cheeks reach the lower lids): a trace, not a move.
    assert moved[0] > 1e-3 and moved[1] < 0.02 * moved[0] and moved[2] == 0
    assert jaw_moved[1] > 1e-3 and jaw_moved[0] < 0.02 * jaw_moved[1] and jaw_moved[2] == 0
