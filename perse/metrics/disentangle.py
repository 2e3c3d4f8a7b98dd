"""Disentanglement: how much an edit of one category leaks outside that category's region."""
from __future__ import annotations

import torch

# A pixel counts as changed when some channel moves by more than this (about 10 of 255 levels):
# below it, differences are within what the eye ignores and what JPEG-like noise produces.
CHANGE_THRESHOLD = 10 / 255


def changed_outside(base: torch.Tensor, edited: torch.Tensor, region: torch.Tensor,
                    threshold: float = CHANGE_THRESHOLD) -> float:
    """Fraction of pixels outside `region` (H, W, soft in [0, 1]) whose colour changed.

    base and edited are (H, W, 3) images in [0, 1]. The region is dilated by its soft edge: any pixel
    with region weight > 0 counts as inside, so feathered borders are not called leaks.
    """
    changed = (base - edited).abs().amax(dim=-1) > threshold
    outside = region <= 0
    return float((changed & outside).sum()) / max(int(outside.sum()), 1)
