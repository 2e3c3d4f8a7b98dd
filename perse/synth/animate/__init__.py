"""Animator protocol: an edited portrait + the run's motion script -> a clip of frames.

Every frame comes with the exact world-to-camera matrix (perse.core.camera convention) and expression
vector (perse.dataset.EXPRESSION_NAMES) it shows, the person alpha, and where the face landmarks
landed (the identity filter aligns faces with them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from perse.core.registry import Registry

if TYPE_CHECKING:
    from perse.config import PipelineConfig
    from perse.ingest.portrait import Portrait
    from perse.synth.animate.motion import MotionScript
    from perse.synth.edit.accessories import Accessory


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

    @classmethod
    def from_config(cls, portrait: "Portrait", config: "PipelineConfig") -> "Animator":
        ...

    @property
    def pivot(self) -> np.ndarray:
        """(3,) world point the head turns about; motion scripts and the frontal camera are built on it."""
        ...

    def point_cloud(self, image: np.ndarray, matte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) and colours (N, 3) of the lifted portrait: the avatar's initial Gaussians."""
        ...

    def animate(self, image: np.ndarray, matte: np.ndarray, script: "MotionScript",
                accessory: "Accessory | None" = None) -> ClipFrames:
        """`image` (S, S, 3) float in [0, 1] (an edit of the portrait), `matte` its person alpha;
        `accessory` (perse.synth.edit.accessories), when the edit carries one, is drawn in 3D with the
        head at every frame's pose (a backend that cannot must refuse it rather than drop it)."""
        ...


ANIMATORS = Registry("animator", "synth.animator", {"lift": "perse.synth.animate.lift:LiftAnimator"})


def make_animator(name: str, portrait: "Portrait", config: "PipelineConfig") -> Animator:
    return ANIMATORS.load(name).from_config(portrait, config)
