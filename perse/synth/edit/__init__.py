"""Editor protocol: one portrait + one catalog value at a strength -> an edited portrait.

Backends: `parametric` (embedded, exact at any strength and at mixed parameters) and `diffusers`
(hub inpainting). Every edit also reports the region it changed and the person matte after the edit
(a hat or earrings grow the silhouette), which pairs, metrics and the animator use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from perse.core.registry import Registry
from perse.errors import ConfigError

if TYPE_CHECKING:
    from perse.config import PipelineConfig
    from perse.ingest.portrait import Portrait
    from perse.synth.catalog import Category, Value
    from perse.synth.edit.accessories import Accessory


@dataclass
class EditResult:
    image: np.ndarray  # (S, S, 3) float32 in [0, 1]
    region: np.ndarray  # (S, S) float32 in [0, 1]: where the edit may have changed pixels
    matte: np.ndarray  # (S, S) float32 person alpha after the edit
    # A 3D accessory (hat, glasses, ...) for the animator to draw with the lifted head at every pose;
    # `image` is then its frontal render. None: the edit is all in `image` (e.g. hub editors).
    accessory: "Accessory | None" = None


class Editor(Protocol):
    name: str
    # True when the backend can render a value *between* two catalog values (interp target `exact`).
    exact: bool

    @classmethod
    def from_config(cls, config: "PipelineConfig") -> "Editor":
        ...

    def edit(self, portrait: "Portrait", category: "Category", value: "Value", strength: float = 1.0) -> EditResult:
        ...

    def edit_between(self, portrait: "Portrait", category: "Category", a: "Value | None", b: "Value | None",
                     t: float) -> EditResult:
        """The look at mix t in [0, 1] from value a to value b (None = the unedited source). Only backends
        with `exact` = True implement it; the others get morphed targets (perse.synth.interp)."""
        ...


EDITORS = Registry("editor", "synth.editor", {
    "parametric": "perse.synth.edit.parametric:ParametricEditor",
    "diffusers": "perse.synth.edit.diffusers:DiffusersEditor",
})


def make_editor(name: str, config: "PipelineConfig") -> Editor:
    return EDITORS.load(name).from_config(config)


def input_image(portrait: "Portrait") -> np.ndarray:
    image = np.asarray(portrait.image)
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)


def check_strength(strength: float) -> float:
    if not 0.0 <= float(strength) <= 1.0:
        raise ConfigError(f"edit strength must be in [0, 1], got {strength}")
    return float(strength)


def region_of(alpha: np.ndarray, grow_px: float = 1.0) -> np.ndarray:
    """Feathered support of an edit's alpha: a superset of every pixel it can change."""
    import cv2

    support = (alpha > 1e-3).astype(np.uint8)
    radius = max(1, int(round(grow_px)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * radius + 1, 4 * radius + 1))
    feathered = cv2.GaussianBlur(cv2.dilate(support, kernel).astype(np.float32), (0, 0), radius)
    return np.maximum(feathered, support.astype(np.float32))
