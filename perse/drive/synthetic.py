"""Driving clips with known ground truth, for the tests and bench/drive.py: a portrait lifted to 3D by
the synthesis stage's animator, rendered with a scripted performance (head turns, every expression
control pulsing alone and in pairs) and encoded as an MP4. The clip is as redistributable as the
portrait (assets/ holds public-domain ones), and every frame's controls and head pose are known.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perse.config import PipelineConfig
from perse.core.expressions import EXPRESSION_NAMES
from perse.drive.video import Mp4Writer
from perse.ingest.portrait import Portrait

# Seconds the clip opens calm and frontal: the neutral frame a viewer would pick.
CALM_LEAD_S = 0.6
PULSE_S = 0.8  # one expression's rise, hold and fall
# (strength, strength of the next control pulsing with it) per round of pulses.
ROUNDS = ((1.0, 0.0), (0.5, 0.7))
YAW_DEG, PITCH_DEG = 20.0, 10.0
YAW_PERIOD_S, PITCH_PERIOD_S = 6.0, 4.0
# Frames the animator renders per call: bounds memory on long clips.
ANIMATE_BATCH = 32


@dataclass
class GroundTruth:
    fps: float
    controls: np.ndarray  # (T, 14) perse.core.expressions.EXPRESSION_NAMES, what each frame shows
    yaw: np.ndarray  # (T,) degrees
    pitch: np.ndarray

    def to_json(self) -> dict:
        return {"fps": self.fps, "controls": list(EXPRESSION_NAMES), "expressions": np.round(self.controls, 4).tolist(),
                "yaw": np.round(self.yaw, 3).tolist(), "pitch": np.round(self.pitch, 3).tolist()}


def _pulse(t: np.ndarray, start: float, length: float, height: float) -> np.ndarray:
    """A raised-cosine bump: 0 outside [start, start + length], `height` at its middle."""
    phase = np.clip((t - start) / length, 0.0, 1.0)
    return height * 0.5 * (1 - np.cos(2 * math.pi * phase))


def script(names: tuple[str, ...], seconds: float, fps: float, turn: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, len(names)) expressions and (T,) yaw, pitch: after a calm lead, each control pulses in turn,
    alone at full strength, then at half strength with the next control at ROUNDS' second strength, and
    again; the head turns throughout (`turn`)."""
    frames = max(1, round(seconds * fps))
    t = np.arange(frames) / fps
    expressions = np.zeros((frames, len(names)))
    cursor, round_ = CALM_LEAD_S, 0
    while cursor < seconds:
        strength, partner_strength = ROUNDS[round_ % len(ROUNDS)]
        for column in range(len(names)):
            expressions[:, column] += _pulse(t, cursor, PULSE_S, strength)
            if partner_strength:
                expressions[:, (column + 1) % len(names)] += _pulse(t, cursor, PULSE_S, partner_strength)
            cursor += PULSE_S
        round_ += 1
    calm = t >= CALM_LEAD_S
    yaw = YAW_DEG * np.sin(2 * math.pi * (t - CALM_LEAD_S) / YAW_PERIOD_S) * calm * turn
    pitch = PITCH_DEG * np.sin(2 * math.pi * (t - CALM_LEAD_S) / PITCH_PERIOD_S) * calm * turn
    return np.clip(expressions, 0.0, 1.0), yaw, pitch


def scripted_truth(seconds: float, fps: float = 25.0, turn: bool = True) -> GroundTruth:
    """What a clip of `seconds` that `write_clip` made shows: every frame's controls and head pose."""
    return GroundTruth(fps, *script(EXPRESSION_NAMES, seconds, fps, turn))


def write_clip(portrait: Portrait, config: PipelineConfig, out: Path, seconds: float, fps: float = 25.0,
               turn: bool = True) -> GroundTruth:
    """Animate `portrait` through `script` into the MP4 `out`, with the truth: each frame's controls and pose."""
    from perse.synth.animate import make_animator
    from perse.synth.animate.motion import MotionScript

    animator = make_animator(config.synth.animator, portrait, config)
    truth = scripted_truth(seconds, fps, turn)
    image = portrait.image.astype(np.float32) / 255
    writer = Mp4Writer(out, (portrait.size, portrait.size), fps)
    try:
        for start in range(0, len(truth.yaw), ANIMATE_BATCH):
            part = slice(start, start + ANIMATE_BATCH)
            motion = MotionScript(truth.yaw[part], truth.pitch[part], truth.controls[part], animator.pivot,
                                  portrait.fov_deg)
            for frame in animator.animate(image, portrait.matte, motion).images:
                writer.write(frame)
    finally:
        writer.close()
    return truth

