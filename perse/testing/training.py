"""Helpers that tests and benches of training share: the toy-scale config and a training-frame score."""
from __future__ import annotations

from pathlib import Path

import torch

from perse.config import PipelineConfig, build_config

# Toy scale (bench/ holds the GPU scale): 64 px, <= 2k Gaussians, a few hundred steps.
TRAIN_OVERRIDES = {"avatar.steps": 400, "avatar.checkpoint_every": 1000, "avatar.preview_every": 1000}


def tiny_config(**overrides) -> PipelineConfig:
    return build_config("tiny", overrides={"device": "cpu", **TRAIN_OVERRIDES, **overrides})


def training_frame_psnr(run: Path, device: str) -> float:
    """PSNR of a trained avatar's renders of its training frames, scored on the person only (matte or
    render covers the pixel), not the easy empty background."""
    from perse.avatar.avatar import Avatar
    from perse.avatar.losses import psnr
    from perse.dataset.tensors import load_frames
    from perse.core.render import render_batch
    from perse.dataset import read_dataset

    avatar = Avatar.load(run, device)
    dataset = read_dataset(run)
    frames = load_frames(dataset, avatar.config.avatar.holdout_every, False, device)
    size = dataset.meta.image_size
    with torch.no_grad():
        g = avatar.model.decode(avatar.model.latent(frames.codes), frames.expressions)
        out = render_batch(g, frames.viewmats, torch.tensor(dataset.meta.intrinsics, dtype=torch.float32), size, size)
    alpha = frames.masks.float() / 255
    target = frames.images.float() / 255 * alpha[..., None]
    person = ((alpha > 0.01) | (out.alpha > 0.01)).float()[..., None]
    return psnr(out.rgb, target, person)
