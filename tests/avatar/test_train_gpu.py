"""Training on CUDA: gsplat's MCMC strategy densifies the avatar's own parameters and optimizer state; the
trained avatar renders batches of frames as each frame alone."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from perse.avatar.avatar import Avatar
from perse.avatar.densify import GAUSSIAN_PARAMS, GsplatMCMC
from perse.avatar.train import Trainer, train
from perse.testing.training import tiny_config, training_frame_psnr

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _optimizer_params(trainer: Trainer) -> dict:
    return {group["name"]: group["params"][0] for group in trainer.optimizer.param_groups
            if group["name"] in GAUSSIAN_PARAMS}


def test_gsplat_strategy_relocates_faint_gaussians(procedural_run):
    trainer = Trainer(procedural_run, tiny_config(device="cuda"), "cuda")
    assert isinstance(trainer.densifier, GsplatMCMC)
    for _ in range(3):  # optimizer state exists for every parameter, as during training
        trainer.step()
    model = trainer.model
    faint = torch.arange(40, device="cuda")
    with torch.no_grad():
        model.opacity_logits[faint] = -12.0
    live_means = model.means.detach()[40:].clone()
    trainer.densifier.after_step(trainer.avatar_config.densify_every, trainer.avatar_config.means_lr)
    opacity = torch.sigmoid(model.opacity_logits.detach())
    # Teleported onto live Gaussians (copies of their positions, give or take the strategy's exploration
    # noise, a small fraction of a footprint), opacity back above the floor.
    assert (opacity >= trainer.avatar_config.prune_opacity * 0.999).all()
    offset = torch.cdist(model.means.detach()[faint], live_means).min(dim=1).values
    assert (offset < 0.1 * torch.exp(model.log_scales.detach()[faint]).min(dim=-1).values).all()
    # The optimizer steps exactly the model's tensors, whose state was carried over.
    for name, param in _optimizer_params(trainer).items():
        assert param is getattr(model, GAUSSIAN_PARAMS[name]), name
        assert trainer.optimizer.state[param]["exp_avg"].shape == param.shape
    losses = trainer.step()
    assert torch.isfinite(losses["total"])


def test_cuda_training_with_gsplat_strategy_overfits(procedural_run, tmp_path):
    run = tmp_path / "cuda"
    shutil.copytree(procedural_run / "dataset", run / "dataset")
    events = list(train(run, tiny_config(device="cuda")))
    assert events[-1].fraction == 1.0
    value = training_frame_psnr(run, "cuda")
    print(f"CUDA training-frame PSNR on the person: {value:.2f} dB")
    assert value >= 30.0
    # A driven video's frames are rendered in batches (perse.drive.run): gsplat's batch equals each frame alone.
    avatar = Avatar.load(run, "cuda")
    yaws, pitches, expressions = [0.0, 25.0, -10.0], [0.0, -5.0, 10.0], [{}, {"jawOpen": 1.0}, {"eyeBlinkLeft": 1.0}]
    frames = avatar.render_frames(None, yaws, pitches, expressions, size=96)
    alone = np.stack([avatar.render(None, yaw=y, pitch=p, expression=e, size=96)
                      for y, p, e in zip(yaws, pitches, expressions)])
    # Float noise of a differently ordered sum: within a grey level.
    assert np.abs(frames - alone).max() < 1 / 255
