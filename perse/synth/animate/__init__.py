"""Animator protocol: an edited portrait + the run's motion script -> a clip of frames.

Every frame comes with the exact world-to-camera matrix (perse.core.camera convention) and expression
vector (perse.dataset.EXPRESSION_NAMES) it shows, the person alpha, and where the face landmarks
landed (the identity filter aligns faces with them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from perse.errors import ConfigError

if TYPE_CHECKING:
    from perse.config import PipelineConfig
    from perse.ingest.portrait import Portrait
    from perse.synth.animate.motion import MotionScript


@dataclass
class ClipFrames:
    images: np.ndarray  # (T, S, S, 3) float32 in [0, 1], composited over `background`
    alphas: np.ndarray  # (T, S, S) float32 person alpha
    viewmats: np.ndarray  # (T, 4, 4) world-to-camera
    expressions: np.ndarray  # (T, E)
    landmarks: np.ndarray  # (T, 478, 2) projected landmark pixels


class Animator(Protocol):
    name: str
    background: tuple[float, float, float]

    def animate(self, image: np.ndarray, matte: np.ndarray, script: "MotionScript") -> ClipFrames:
        """`image` (S, S, 3) float in [0, 1] (an edit of the portrait), `matte` its person alpha."""
        ...


ANIMATORS = ("lift",)


def make_animator(name: str, portrait: "Portrait", config: "PipelineConfig") -> Animator:
    if name == "lift":
        from perse.synth.animate.lift import LiftAnimator

        return LiftAnimator(portrait, device=config.resolved_device(), renderer=config.synth.lift_renderer)
    raise ConfigError(f"unknown animator '{name}' (synth.animator); choose one of: {', '.join(ANIMATORS)}")
