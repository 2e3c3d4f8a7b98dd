"""Shared avatar fixtures: a procedural dataset and avatars trained on it once per test session."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from perse.config import build_config
from perse.testing.procedural import write_procedural_dataset

# Toy scale (bench/ holds the GPU scale): 64 px, <= 2k Gaussians, a few hundred steps.
TRAIN_OVERRIDES = {"avatar.steps": 400, "avatar.checkpoint_every": 1000, "avatar.preview_every": 1000}


def tiny_config(**overrides):
    return build_config("tiny", overrides={"device": "cpu", **TRAIN_OVERRIDES, **overrides})


def training_frame_psnr(run: Path, device: str) -> float:
    """PSNR of a trained avatar's renders of its training frames, scored on the person only (matte or
    render covers the pixel), not the easy empty background."""
    from perse.avatar.avatar import Avatar
    from perse.avatar.losses import psnr
    from perse.avatar.train import load_frames
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


@pytest.fixture(scope="session")
def procedural_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("procedural")
    write_procedural_dataset(run, size=64, frames=8, init_points=True, expression_range=0.5)
    return run


def _trained(procedural_run: Path, tmp_path_factory, name: str, **overrides) -> Path:
    from perse.avatar.train import train

    run = tmp_path_factory.mktemp(name)
    shutil.copytree(procedural_run / "dataset", run / "dataset")
    events = list(train(run, tiny_config(**overrides)))
    assert events[-1].fraction == 1.0
    return run


@pytest.fixture(scope="session")
def trained_run(procedural_run, tmp_path_factory) -> Path:
    return _trained(procedural_run, tmp_path_factory, "trained")


@pytest.fixture(scope="session")
def trained_run_without_interp(procedural_run, tmp_path_factory) -> Path:
    return _trained(procedural_run, tmp_path_factory, "trained_no_interp", **{"avatar.interp_weight": 0.0})
