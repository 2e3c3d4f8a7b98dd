"""Where on the face each expression control may act: the avatar's expression features, masked by area.

The expression basis is shared by every Gaussian, so in a frame that blinks, every Gaussian's
reconstruction error pushes the blink's basis, and the eyes' few hundred pixels lose to the noise of
the whole head: at `fast` on obama, with all 80 blink frames kept, the blinks learned 1-2 grey levels
while the mouth learned 12-30. So each control acts only through the expression features of its face
areas (perse.core.expressions.CONTROL_AREAS), and a Gaussian's features of an area are weighted by how
far inside that area it lies: a soft mask drawn from the portrait's landmarks, sampled where the
Gaussian projects in the frontal view (canonical space is the frontal head pose). Gaussians behind the
head's pivot (the back of the head) project onto the face without being on it and get none. A blink
then moves the eyes and nothing else, and only the eyes' errors teach it.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perse.core.expressions import CONTROL_AREAS, EXPRESSION_NAMES, FACE_AREAS
from perse.errors import ConfigError

# The masks are kept at this many pixels a side: areas are smooth, and the checkpoint stays small.
AREA_RESOLUTION = 128


def feature_areas(expression_feature_dim: int) -> list[int]:
    """The face area (index into FACE_AREAS) of each expression feature: FACE_AREAS's shares of 16,
    scaled to `expression_feature_dim`, every area at least one."""
    names = list(FACE_AREAS)
    if expression_feature_dim < len(names):
        raise ConfigError(f"avatar.expression_feature_dim must be 0 (expressions share the categories' "
                          f"features) or at least {len(names)} (one for each face area: {', '.join(names)}), "
                          f"got {expression_feature_dim}")
    total = sum(FACE_AREAS.values())
    counts = [max(1, round(expression_feature_dim * share / total)) for share in FACE_AREAS.values()]
    counts[0] += expression_feature_dim - sum(counts)  # the lower face, the largest, absorbs the rounding
    return [area for area, count in enumerate(counts) for _ in range(count)]


def control_mask(expression_feature_dim: int, outputs: int) -> torch.Tensor:
    """(Fe * outputs, E) 0/1: which rows of the expression basis (feature-major, as Decoder lays them out)
    each control may write, those of the features of its areas."""
    areas = feature_areas(expression_feature_dim)
    names = list(FACE_AREAS)
    allowed = torch.tensor([[names[area] in CONTROL_AREAS[control] for control in EXPRESSION_NAMES]
                            for area in areas], dtype=torch.float32)
    return allowed.repeat_interleave(outputs, dim=0)


def area_maps(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(len(FACE_AREAS), size, size) float32 soft masks in [0, 1] from (478, 2+) landmarks at `size`."""
    from perse.synth import face as F_

    face = F_.FaceFrame(np.asarray(landmarks, np.float64))
    xy = face.xy
    height = face.face_height
    up = np.array([0.0, -0.12 * height])  # raised brows carry the forehead above them
    groups = {
        "lowerFace": [xy[list(F_.JAW + F_.LIPS_OUTER + F_.RIGHT_CHEEK + F_.LEFT_CHEEK + (F_.SUBNASALE,))]],
        "brows": [np.concatenate([xy[list(brow)], xy[list(brow)] + up])
                  for brow in (F_.RIGHT_BROW_UPPER + F_.RIGHT_BROW_LOWER, F_.LEFT_BROW_UPPER + F_.LEFT_BROW_LOWER)],
        "eyeLeft": [xy[list(F_.LEFT_EYE)]],
        "eyeRight": [xy[list(F_.RIGHT_EYE)]],
    }
    # Beyond the landmarks: the jaw drops below them, the lids and lashes reach past the eye's outline.
    reach = {"lowerFace": 0.08, "brows": 0.05, "eyeLeft": 0.06, "eyeRight": 0.06}
    maps = []
    for name in FACE_AREAS:
        mask = np.zeros((size, size), np.uint8)
        for points in groups[name]:
            cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points - 0.5).astype(np.int32)), 1)
        radius = max(1, int(round(reach[name] * height)))
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
        # Soft edges: a hard one would tear the skin where a moving area meets a still one.
        soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(0.5, 0.03 * height))
        maps.append(np.clip(soft * 1.5, 0.0, 1.0))
    return np.stack(maps).astype(np.float32)


class FaceAreas(nn.Module):
    """The face areas' masks in the frontal view, and where a canonical Gaussian falls in them."""

    def __init__(self, maps: torch.Tensor, intrinsics: torch.Tensor, viewmat: torch.Tensor, pivot: torch.Tensor):
        super().__init__()
        self.register_buffer("maps", maps.float())  # (A, S, S)
        self.register_buffer("intrinsics", intrinsics.float())  # (3, 3) at S pixels
        self.register_buffer("viewmat", viewmat.float())  # (4, 4) world to frontal camera
        self.register_buffer("pivot", pivot.float())  # (3,) the head's pivot, world

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray, size: int, intrinsics: np.ndarray, viewmat: np.ndarray,
                       pivot: np.ndarray) -> "FaceAreas":
        """From landmarks and intrinsics at `size` pixels, the frontal camera and the head's pivot."""
        maps = area_maps(landmarks, size)
        scale = AREA_RESOLUTION / size
        small = np.stack([cv2.resize(m, (AREA_RESOLUTION, AREA_RESOLUTION), interpolation=cv2.INTER_AREA) for m in maps])
        K = np.asarray(intrinsics, np.float64).copy()
        K[:2] *= scale
        as_tensor = lambda x: torch.as_tensor(np.asarray(x, np.float32))  # noqa: E731
        return cls(as_tensor(small), as_tensor(K), as_tensor(viewmat), as_tensor(pivot))

    @classmethod
    def for_run(cls, run: Path, dataset) -> "FaceAreas | None":
        """The areas of a run's portrait in its dataset's frontal frame; None for a dataset made without
        one (a procedural head) or without a head pivot, whose expressions may act anywhere."""
        from perse.core.paths import RunPaths
        from perse.dataset import SOURCE
        from perse.ingest.portrait import Portrait

        pivot = dataset.meta.extra.get("pivot")
        source = next((clip for clip in dataset.meta.clips if clip.category == SOURCE and clip.frames), None)
        if pivot is None or source is None or not RunPaths(run).portrait_meta.exists():
            return None
        portrait = Portrait.load(run)
        size = dataset.meta.image_size
        landmarks = np.asarray(portrait.landmarks, np.float64)[:, :2] * (size / portrait.size)
        return cls.from_landmarks(landmarks, size, dataset.intrinsics(), np.asarray(source.frames[0].world_to_camera),
                                  np.asarray(pivot))

    def weights(self, means: torch.Tensor) -> torch.Tensor:
        """(N, 3) canonical positions -> (N, A) how far inside each area each lies, in [0, 1]."""
        cam = means @ self.viewmat[:3, :3].T + self.viewmat[:3, 3]
        depth = cam[:, 2:3].clamp_min(1e-6)
        uv = cam[:, :2] / depth * torch.diagonal(self.intrinsics)[:2] + self.intrinsics[:2, 2]
        grid = (uv / self.maps.shape[-1]) * 2 - 1
        sampled = F.grid_sample(self.maps[None], grid[None, None], align_corners=False, padding_mode="zeros")
        pivot_depth = (self.viewmat[:3, :3] @ self.pivot + self.viewmat[:3, 3])[2]
        in_front = (cam[:, 2] < pivot_depth).float()
        return sampled[0, :, 0].T * in_front[:, None]
