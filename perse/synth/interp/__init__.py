"""2D interpolation targets between two values of one category (docs/architecture.md section 1, latent regularisation).

`exact`: the parametric editor at mixed parameters (perse/synth/edit/parametric.py documents what
mixing means per kind) -- true ground truth, available when the editor can draw in-between values.
`morph`: for backends without such a path (hub editors): a dense-correspondence morph of the two
edited portraits (optical flow inside the category's region, both images warped towards each other by
t and cross-dissolved), the weight-free stand-in for PERSE's DiffMorpher.

Targets are frontal and neutral (frame 0 of every clip), each with the region mask it may differ in.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from perse.errors import ConfigError

METHODS = ("exact", "morph")


@dataclass
class Target:
    image: np.ndarray  # (S, S, 3) float32
    region: np.ndarray  # (S, S) float32
    matte: np.ndarray  # (S, S) float32


def morph(image_a: np.ndarray, image_b: np.ndarray, matte_a: np.ndarray, matte_b: np.ndarray,
          region: np.ndarray, t: float) -> Target:
    """Warp a forward and b backward along their dense correspondence by t, then cross-dissolve."""
    gray = [cv2.cvtColor(np.clip(x * 255, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for x in (image_a, image_b)]
    size = image_a.shape[0]
    flow = cv2.calcOpticalFlowFarneback(gray[0], gray[1], None, 0.5, 4, max(5, size // 24), 4, 5, 1.1, 0)
    # Outside the region both images agree: no motion there.
    flow = flow * cv2.GaussianBlur(region.astype(np.float32), (0, 0), max(1.0, size / 128))[..., None]
    grid = np.stack(np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32)), -1)

    def warp(array: np.ndarray, offset: np.ndarray) -> np.ndarray:
        maps = grid + offset
        return cv2.remap(array.astype(np.float32), maps[..., 0], maps[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)

    # Backward warps: the in-between pixel p came from p - t*flow in a and from p + (1-t)*flow in b.
    a_t = warp(image_a, -t * flow)
    b_t = warp(image_b, (1 - t) * flow)
    image = (1 - t) * a_t + t * b_t
    matte = (1 - t) * warp(matte_a, -t * flow) + t * warp(matte_b, (1 - t) * flow)
    weight = region[..., None]
    # Only the region is interpolated; elsewhere the images are equal and stay exactly as they are.
    blended = image_a * (1 - weight) + image * weight
    return Target(np.clip(blended, 0, 1).astype(np.float32), region.astype(np.float32),
                  np.clip(matte, 0, 1).astype(np.float32))


def check_method(name: str, editor_exact: bool) -> str:
    if name not in METHODS:
        raise ConfigError(f"unknown interpolation target '{name}' (synth.interp); choose one of: {', '.join(METHODS)}")
    if name == "exact" and not editor_exact:
        raise ConfigError("synth.interp=exact needs an editor that can draw in-between values (the parametric "
                          "editor); with this editor set synth.interp=morph")
    return name
