"""Interpolation smoothness as PERSE measures it.

PPL is the sum of perceptual distances between adjacent frames along a latent path; PDV is the
variance of those distances (reported x100, as in the paper). A smooth slider spreads the change evenly
(low PDV); a "jumping" latent concentrates it in a few steps. The distance is LPIPS (VGG) where its
backbone loads; otherwise DSSIM = (1 - SSIM) / 2, which is named in every result so the two are never
mixed up.
"""
from __future__ import annotations

from typing import Callable

import torch

from perse.avatar.losses import load_lpips, ssim

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def dssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (1.0 - ssim(a, b)) / 2.0


def image_distance(device: torch.device | str) -> tuple[Distance, str, str]:
    """(distance on (B, H, W, 3) images, its name, why LPIPS was not used or "")."""
    lpips_fn, reason = load_lpips(device)
    if lpips_fn is not None:
        return lpips_fn, "lpips_vgg", ""
    return dssim, "dssim", reason


def adjacent_distances(frames: torch.Tensor, distance: Distance) -> torch.Tensor:
    """frames (T, H, W, 3) -> (T - 1,) distances between consecutive frames."""
    return torch.stack([distance(frames[i:i + 1], frames[i + 1:i + 2]) for i in range(len(frames) - 1)])


def path_metrics(frames: torch.Tensor, distance: Distance, name: str) -> dict[str, float | str]:
    steps = adjacent_distances(frames, distance)
    return {
        "ppl": float(steps.sum()),
        "pdv_x100": float(steps.var(unbiased=False) * 100),
        "max_step": float(steps.max()),
        "distance": name,
    }
