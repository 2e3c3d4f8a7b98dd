"""The run's motion script: one smooth sequence of head poses and expressions shared by every clip.

Frame 0 is frontal and neutral (it reproduces the portrait). Yaw sweeps once through +-max_yaw and
pitch twice through +-max_pitch; expressions rise and fall as raised-cosine bumps placed so that each
appears alone and in mixes (jaw open + brow raise = surprise, smile + jaw open = laugh). Because every
clip uses the same script, clips differ only in the attribute they show.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from perse.core.camera import head_pose_viewmat
from perse.dataset import EXPRESSION_NAMES

# (centre, half-width, height) bumps over the clip's phase in [0, 1) for each expression.
BUMPS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "jaw_open": ((0.18, 0.12, 1.0), (0.64, 0.10, 0.6)),
    "smile": ((0.38, 0.12, 1.0), (0.64, 0.10, 0.8)),
    "blink": ((0.50, 0.07, 1.0), (0.90, 0.07, 1.0)),
    "brow_raise": ((0.80, 0.10, 1.0), (0.18, 0.10, 0.6)),
}


@dataclass
class MotionScript:
    yaw: np.ndarray  # (T,) degrees
    pitch: np.ndarray  # (T,) degrees
    expressions: np.ndarray  # (T, E) in [0, 1], columns = EXPRESSION_NAMES
    pivot: np.ndarray  # (3,) world point the head turns about
    fov_deg: float

    def __len__(self) -> int:
        return int(len(self.yaw))

    def viewmats(self) -> np.ndarray:
        return np.stack([head_pose_viewmat(self.fov_deg, float(y), float(p), 0.0, self.pivot)
                         for y, p in zip(self.yaw, self.pitch)])


def _bump(phase: np.ndarray, centre: float, half_width: float) -> np.ndarray:
    distance = np.abs(phase - centre)
    return np.where(distance < half_width, 0.5 * (1 + np.cos(np.pi * distance / half_width)), 0.0)


def motion_script(frames: int, fov_deg: float, pivot: np.ndarray, max_yaw: float = 30.0,
                  max_pitch: float = 15.0) -> MotionScript:
    if frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {frames}")
    phase = np.arange(frames, dtype=np.float64) / frames
    yaw = max_yaw * np.sin(2 * math.pi * phase)
    pitch = max_pitch * np.sin(4 * math.pi * phase)
    expressions = np.zeros((frames, len(EXPRESSION_NAMES)))
    for column, name in enumerate(EXPRESSION_NAMES):
        for centre, half_width, height in BUMPS[name]:
            expressions[:, column] += height * _bump(phase, centre, half_width)
    return MotionScript(yaw, pitch, np.clip(expressions, 0, 1), np.asarray(pivot, np.float64), fov_deg)
