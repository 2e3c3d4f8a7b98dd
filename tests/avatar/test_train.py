"""Trainer mechanics on a small procedural dataset: resume, cancellation, events, input errors."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from perse.avatar.avatar import Avatar
from perse.avatar.train import train
from perse.core.paths import RunPaths
from perse.errors import Cancelled, DatasetError, PerseError
from perse.events import CancelToken
from perse.testing.training import tiny_config

# Short, but covering stage 2 (interpolation pairs) and two densify/prune relocations.
SHORT = {"avatar.steps": 24, "avatar.checkpoint_every": 8, "avatar.densify_every": 6, "avatar.prune_opacity": 0.45,
         "avatar.preview_every": 12, "avatar.num_gaussians": 600}


@pytest.fixture
def small_run(procedural_run, tmp_path):
    def make(name):
        run = tmp_path / name
        shutil.copytree(procedural_run / "dataset", run / "dataset")
        return run
    return make


def test_resume_matches_uninterrupted_run(small_run):
    config = tiny_config(**SHORT)
    straight = small_run("straight")
    events = list(train(straight, config))
    steps = [e.metrics["step"] for e in events if "loss" in e.message]
    assert steps == list(range(1, 25))
    assert any(e.image for e in events) and all("total" in e.metrics for e in events if "loss" in e.message)

    interrupted = small_run("interrupted")
    cancel = CancelToken()
    with pytest.raises(Cancelled, match="--resume"):
        for event in train(interrupted, config, cancel=cancel):
            if event.metrics.get("step") == 13:
                cancel.cancel()
    saved = torch.load(RunPaths(interrupted).checkpoint, weights_only=False)
    assert saved["step"] == 13
    list(train(interrupted, config, resume=True))

    load = lambda run: torch.load(RunPaths(run).checkpoint, weights_only=False)  # noqa: E731
    a, b = load(straight), load(interrupted)
    assert a["step"] == b["step"] == 24
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-6, atol=1e-7, msg=name)
    torch.testing.assert_close(b["densify"]["grad_accum"], a["densify"]["grad_accum"], rtol=1e-6, atol=1e-7)


def test_resume_refuses_a_changed_config(small_run):
    run = small_run("changed")
    cancel = CancelToken()
    with pytest.raises(Cancelled):
        for event in train(run, tiny_config(**SHORT), cancel=cancel):
            if event.metrics.get("step") == 2:
                cancel.cancel()
    with pytest.raises(PerseError, match="decoder_width"):
        list(train(run, tiny_config(**SHORT, **{"avatar.decoder_width": 32}), resume=True))


def test_holdout_and_standalone_checkpoint(small_run):
    run = small_run("holdout")
    list(train(run, tiny_config(**SHORT)))
    holdout = json.loads((RunPaths(run).holdout).read_text())
    every = holdout["every"]
    # Every `every`-th frame of each 8-frame clip is held out (every procedural frame is kept).
    assert holdout["frames"] and all(frames == list(range(every - 1, 8, every)) for frames in holdout["frames"].values())
    shutil.rmtree(run / "dataset")  # an avatar renders from its run folder without the dataset
    avatar = Avatar.load(run, "cpu")
    image = avatar.render({"hair": "hair_b"}, yaw=10, expression={"jawOpen": 0.5}, size=48)
    assert image.shape == (48, 48, 3) and 0.0 <= image.min() and image.max() <= 1.0
    assert (RunPaths(run).avatar_ply).exists()


def test_bad_point_cloud_is_a_clear_error(small_run):
    run = small_run("badpoints")
    np.savez(run / "dataset" / "init_points.npz", points=np.zeros((5, 2)), colors=np.zeros((5, 3)))
    with pytest.raises(DatasetError, match="init_points.npz.*must both be"):
        list(train(run, tiny_config(**SHORT)))


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="meta.json is missing"):
        list(train(tmp_path, tiny_config(**SHORT)))


def test_relocation_moves_faint_gaussians_onto_busy_ones(procedural_run):
    from perse.avatar.train import Trainer

    trainer = Trainer(procedural_run, tiny_config(**SHORT), "cpu")
    model = trainer.model
    with torch.no_grad():
        model.opacity_logits[:50] = -10.0
    trainer.densifier.grad_accum[100:110] = 1.0  # only these have position gradients
    before = model.means.detach().clone()
    parent_scale = torch.exp(model.log_scales[100:110].detach()).max()
    trainer.densifier.relocate(step=100)
    moved = model.means.detach()[:50]
    parents = before[100:110]
    # Every faint Gaussian now sits next to one of the busy ones (within 5 sigma of the parent's
    # footprint), with its opacity restored.
    distance = torch.cdist(moved, parents).min(dim=1).values
    assert (distance < 5 * parent_scale).all()
    # ... and shares its parent's (halved) opacity instead of staying faint.
    assert torch.isin(model.opacity_logits[:50].detach(), model.opacity_logits[100:110].detach()).all()
    assert (model.opacity_logits[:50] > -5).all()
    assert torch.equal(model.means.detach()[50:100], before[50:100])


def test_ellipsoid_initialisation_fits_the_mattes(tmp_path):
    """Without a point cloud the head is an ellipsoid fitted to the most frontal matte."""
    from perse.avatar.train import Trainer
    from perse.core.camera import project
    from perse.testing.procedural import write_procedural_dataset

    write_procedural_dataset(tmp_path, size=64, frames=3, categories=("hair",), pair_ts=(0.5,))
    trainer = Trainer(tmp_path, tiny_config(**SHORT), "cpu")
    frames = trainer.frames
    frontal = int(torch.argmax(frames.viewmats[:, :3, :3].diagonal(dim1=1, dim2=2).sum(-1)))
    uv = project(trainer.model.means.detach().numpy().astype(float), frames.viewmats[frontal].numpy().astype(float),
                 trainer.dataset.intrinsics())
    pixels = np.clip(uv[:, :2].astype(int), 0, 63)
    matte = frames.masks[frontal].numpy() / 255
    assert (matte[pixels[:, 1], pixels[:, 0]] > 0.5).mean() > 0.95
    # The points cover the matte, not just its middle: their projected extent matches the matte's.
    ys, xs = np.nonzero(matte > 0.5)
    assert np.ptp(uv[:, 0]) > 0.85 * np.ptp(xs) and np.ptp(uv[:, 1]) > 0.85 * np.ptp(ys)
