"""A clip's motion script: a smooth sequence of head poses and expressions.

Frame 0 is frontal and neutral (it reproduces the portrait). Yaw sweeps once through +-max_yaw and
pitch twice through +-max_pitch, the same in every clip. The expressions are a sequence of *moments*
after frame 0, each held at full strength over at least one frame between raised-cosine ramps (the
avatar cannot learn an expression it only sees half-way): every control alone, and natural
combinations of them (MOMENTS, a deck). Fourteen controls do not fit in one eight-frame clip, so each clip
shows its own run of moments, in its own order, from a deck that the clips deal out in turn
(`clip` is the clip's index in the run): across a run's clips every moment is shown many times, at
varied head poses, and the clips of one category (one look each) show different expressions, so a
look's code has no expression to absorb.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from perse.core.camera import head_pose_viewmat
from perse.core.expressions import EXPRESSION_NAMES

# The controls in an order that alternates the lower and the upper face, so that a run of moments
# shows both.
ALTERNATING = ("jawOpen", "eyeBlinkLeft", "mouthSmileRight", "browInnerUp", "mouthPucker", "eyeWide", "mouthStretch",
               "browDown", "cheekPuff", "eyeBlinkRight", "mouthFunnel", "browOuterUp", "mouthSmileLeft", "mouthPress")
# Combinations a face makes. Pairs that fight (blink + eye wide, pucker + funnel) are left out: the
# animator draws them sensibly, but no one makes them.
COMBINATIONS: tuple[dict[str, float], ...] = (
    {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},  # smile
    {"jawOpen": 0.6, "eyeWide": 1.0, "browInnerUp": 1.0, "browOuterUp": 1.0},  # surprise
    {"browDown": 1.0, "mouthPress": 1.0},  # anger
    {"mouthSmileLeft": 1.0, "eyeBlinkLeft": 1.0},  # wink
    {"mouthFunnel": 1.0, "jawOpen": 0.4, "browOuterUp": 1.0},  # "oh!"
    {"jawOpen": 1.0, "mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},  # laugh
    {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},  # blink
    {"browInnerUp": 1.0, "mouthStretch": 1.0},  # fear
    {"mouthPucker": 1.0, "eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},  # kiss
    {"cheekPuff": 1.0, "eyeWide": 1.0},
)
# The deck: every control alone twice (the avatar needs each on its own most), the second time in
# another neighbourhood, with a combination after every third.
MOMENTS: tuple[dict[str, float], ...] = tuple(
    moment
    for round_, shift in enumerate((0, 7))
    for i, name in enumerate(ALTERNATING[shift:] + ALTERNATING[:shift])
    for moment in ([{name: 1.0}] + ([COMBINATIONS[round_ * 5 + i // 3]] if i % 3 == 0 else []))
)
# Each clip deals this many moments on from the previous clip's: coprime with len(MOMENTS), so
# consecutive clips overlap by a few moments and every moment comes round again and again.
DEAL = 5
# How far each clip rotates the order of its moments (chosen by counting, over the presets' clip
# lengths and hold-outs, how often each control is held at full strength in a training frame).
SHIFT = 3
# A moment longer than a frame rises and falls over up to RAMP_FRAMES on each side of its plateau
# (one frame at least); clips long enough to give each moment FRAMES_PER_MOMENT frames show more
# moments rather than longer ones.
RAMP_FRAMES = 1.5
FRAMES_PER_MOMENT = 5
# A clip shows at least this many moments (one a frame when it has fewer frames after frame 0): an
# eight-frame clip shows seven.
MIN_MOMENTS = 7


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


# The head turns the clips show, hence the range an avatar is trained (and hole-free) over.
MAX_YAW, MAX_PITCH = 35.0, 20.0


def moment_vector(moment: dict[str, float]) -> np.ndarray:
    return np.array([moment.get(name, 0.0) for name in EXPRESSION_NAMES])


def clip_moments(clip: int, count: int) -> list[int]:
    """Indices into MOMENTS of the `count` moments clip number `clip` shows, in the order it shows them."""
    start = clip * DEAL
    picks = [(start + k) % len(MOMENTS) for k in range(count)]
    # Rotated by SHIFT per clip: a moment meets other head poses, and other held-out frames, in other clips.
    return [picks[(k + SHIFT * clip) % count] for k in range(count)]


def expression_schedule(frames: int, clip: int = 0) -> np.ndarray:
    """(frames, E) expression vectors of clip number `clip`: frame 0 neutral, then its moments, each in
    a slot of equal length holding 1 over at least one whole frame."""
    expressions = np.zeros((frames, len(EXPRESSION_NAMES)))
    if frames < 2:
        return expressions
    count = min(frames - 1, len(MOMENTS), max(math.ceil((frames - 1) / FRAMES_PER_MOMENT), MIN_MOMENTS))
    slot = (frames - 1) / count
    ramp = min(RAMP_FRAMES, (slot - 1) / 2)
    plateau = slot - 2 * ramp  # >= 1 frame, so some frame centre lies on it
    centres = np.arange(frames - 1) + 0.5  # of frames 1.., measured from the end of frame 0
    for k, moment in enumerate(clip_moments(clip, count)):
        beyond = np.abs(centres - (k + 0.5) * slot) - plateau / 2
        weight = np.where(beyond <= 0, 1.0, 0.5 * (1 + np.cos(np.pi * np.clip(beyond / max(ramp, 1e-9), 0, 1))))
        weight = np.where(beyond >= ramp, 0.0, weight)
        expressions[1:] += weight[:, None] * moment_vector(MOMENTS[moment])[None]
    return np.clip(expressions, 0.0, 1.0)


def motion_script(frames: int, fov_deg: float, pivot: np.ndarray, clip: int = 0, max_yaw: float = MAX_YAW,
                  max_pitch: float = MAX_PITCH) -> MotionScript:
    """The script of clip number `clip` of a run (its expressions; the head poses are every clip's)."""
    if frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {frames}")
    phase = np.arange(frames, dtype=np.float64) / frames
    yaw = max_yaw * np.sin(2 * math.pi * phase)
    pitch = max_pitch * np.sin(4 * math.pi * phase)
    return MotionScript(yaw, pitch, expression_schedule(frames, clip), np.asarray(pivot, np.float64), fov_deg)
