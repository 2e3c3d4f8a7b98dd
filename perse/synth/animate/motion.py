"""The run's motion script: one smooth sequence of head poses and expressions shared by every clip.

Frame 0 is frontal and neutral (it reproduces the portrait). Yaw sweeps once through +-max_yaw and
pitch twice through +-max_pitch. Each expression is held at full strength over a plateau, between
raised-cosine ramps, so that even an 8-frame clip shows every control at 1.0 in a training frame
(the avatar cannot learn an expression it only sees half-way); the holds are placed so that each
appears alone and in mixes (jaw open + smile = laugh, jaw open + brow raise = surprise). Because every
clip uses the same script, clips differ only in the attribute they show.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from perse.core.camera import head_pose_viewmat
from perse.dataset import EXPRESSION_NAMES

# (centre, plateau half-width, height) holds over the clip's phase in [0, 1) for each expression. With
# 8 frames (phases k/8) the plateaus cover: jaw 1/8-2/8, smile 3/8, blink 4/8, brow raise 5/8-6/8.
HOLDS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "jaw_open": ((0.19, 0.075, 1.0), (0.75, 0.02, 0.7)),
    "smile": ((0.375, 0.05, 1.0), (0.25, 0.02, 0.8)),
    "blink": ((0.50, 0.03, 1.0), (0.92, 0.02, 1.0)),
    "brow_raise": ((0.69, 0.075, 1.0), (0.19, 0.02, 0.5)),
}
# Phase over which a hold rises from 0 to its height: at 32 frames a step changes an expression by at
# most ~0.6, smooth enough for a video model's eye, steep enough to leave long plateaus.
RAMP = 0.08


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


def _hold(phase: np.ndarray, centre: float, plateau: float) -> np.ndarray:
    """1 within `plateau` of `centre`, falling to 0 over RAMP beyond it along a half cosine."""
    beyond = np.clip((np.abs(phase - centre) - plateau) / RAMP, 0, 1)
    return 0.5 * (1 + np.cos(np.pi * beyond))


# The head turns the clips show, hence the range an avatar is trained (and hole-free) over.
MAX_YAW, MAX_PITCH = 35.0, 20.0


def motion_script(frames: int, fov_deg: float, pivot: np.ndarray, max_yaw: float = MAX_YAW,
                  max_pitch: float = MAX_PITCH) -> MotionScript:
    if frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {frames}")
    phase = np.arange(frames, dtype=np.float64) / frames
    yaw = max_yaw * np.sin(2 * math.pi * phase)
    pitch = max_pitch * np.sin(4 * math.pi * phase)
    expressions = np.zeros((frames, len(EXPRESSION_NAMES)))
    for column, name in enumerate(EXPRESSION_NAMES):
        for centre, plateau, height in HOLDS[name]:
            expressions[:, column] += height * _hold(phase, centre, plateau)
    return MotionScript(yaw, pitch, np.clip(expressions, 0, 1), np.asarray(pivot, np.float64), fov_deg)
