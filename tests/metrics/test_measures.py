"""The measures on a trained avatar: held-out looks are kept out of training and scored by fitting a
code; a deliberately ghosted or holed avatar scores badly where the same avatar untouched scores well."""
import json

import numpy as np
import torch
from conftest import HELD_OUT_BLENDS

from perse.avatar.avatar import Avatar
from perse.core.camera import project
from perse.core.gaussians import Gaussians
from perse.core.paths import RunPaths
from perse.dataset import read_dataset
from perse.metrics import faults
from perse.metrics.looks import held_out_looks


def test_held_out_looks_are_not_trained(held_out_run):
    dataset = read_dataset(held_out_run)
    held_out = {clip.id for clip in dataset.held_out_looks}
    assert len(held_out) == len(HELD_OUT_BLENDS) * len(dataset.meta.categories)
    avatar = Avatar.load(held_out_run, "cpu")
    # No code was learned for them: the avatar knows the trained looks only.
    assert avatar.categories == {name: ["source", f"{name}_a", f"{name}_b"] for name in dataset.meta.categories}
    record = json.loads(RunPaths(held_out_run).holdout.read_text())
    assert set(record["looks"]) == held_out and not held_out & set(record["frames"])


def test_a_held_out_look_is_reached_by_fitting_its_code(held_out_run):
    avatar = Avatar.load(held_out_run, "cpu")
    report, tiles = held_out_looks(avatar, read_dataset(held_out_run), dilation_px=2, steps=60)
    assert report["looks"] == len(HELD_OUT_BLENDS) * len(avatar.categories)
    # The blends lie between trained looks: the fitted code reproduces them far better than leaving
    # the category at its source look, which is what an unreachable look would score.
    assert report["psnr"] > report["psnr_source_code"] + 4
    for result in report["per_look"].values():
        assert result["psnr"] > result["psnr_source_code"] and result["frames"] == 7
    assert len(tiles) == 3 * report["looks"] and tiles[0][1].shape == (64, 64, 3)


def with_extra_gaussians(decode, means: torch.Tensor, opacity: float):
    """A decoder that also emits Gaussians at `means` (N, 3) of the given opacity, red, in every scene."""
    def decode_with_extra(latents, expressions):
        g = decode(latents, expressions)
        batch, n = g.means.shape[0], len(means)
        extra = Gaussians(means.expand(batch, n, 3), torch.tensor([1.0, 0, 0, 0]).expand(batch, n, 4),
                          torch.full((batch, n, 3), 0.02), torch.full((batch, n), opacity),
                          torch.tensor([0.9, 0.1, 0.1]).expand(batch, n, 3))
        return Gaussians(*(torch.cat([a, b], dim=1) for a, b in zip(g.tensors(), extra.tensors())))
    return decode_with_extra


def test_ghost_measure_sees_a_streak_beside_the_head(held_out_run, monkeypatch):
    avatar = Avatar.load(held_out_run, "cpu")
    dataset = read_dataset(held_out_run)
    clean, _ = faults.ghost(avatar, dataset, seed=0)
    assert clean["share"] <= faults.GHOST_GOAL
    assert set(clean["sets"]) == {"samples", "interpolation", "extremes"}

    # A faint streak fanning out of the side of the head, in every render.
    streak = torch.stack([torch.linspace(0.55, 0.95, 40), torch.linspace(0.0, -0.3, 40), torch.full((40,), 0.4)], 1)
    monkeypatch.setattr(avatar.model, "decode", with_extra_gaussians(avatar.model.decode, streak, opacity=0.35))
    ghosted, image = faults.ghost(avatar, dataset, seed=0)
    assert ghosted["share"] > 2 * faults.GHOST_GOAL
    assert image is not None and np.all(image[np.all(image == (1.0, 0.0, 1.0), axis=-1)] == (1.0, 0.0, 1.0))


def test_hole_measure_sees_a_see_through_gap(held_out_run, monkeypatch):
    avatar = Avatar.load(held_out_run, "cpu")
    clean, _ = faults.holes(avatar)
    assert clean["share"] <= faults.HOLE_GOAL

    decode = avatar.model.decode
    cameras = [avatar.camera(yaw=yaw) for yaw in faults.HOLE_YAWS]
    centre = np.array([[0.0, 0.0, 0.4]])  # the procedural head's centre

    def decode_with_gap(latents, expressions):
        """Drops every Gaussian seen within 5 px of the head's centre at either turned view."""
        g = decode(latents, expressions)
        keep = torch.ones_like(g.opacities, dtype=torch.bool)
        for camera in cameras:
            target = project(centre, camera.viewmat, camera.K)[0, :2]
            for b in range(len(keep)):
                uv = project(g.means[b].detach().numpy(), camera.viewmat, camera.K)[:, :2]
                keep[b] &= torch.as_tensor(np.linalg.norm(uv - target, axis=1) > 5)
        return Gaussians(g.means, g.quats, g.scales, g.opacities * keep, g.colors)

    monkeypatch.setattr(avatar.model, "decode", decode_with_gap)
    holed, images = faults.holes(avatar)
    assert holed["share"] > 2 * faults.HOLE_GOAL
    assert min(holed["yaw-35"], holed["yaw+35"]) > faults.HOLE_GOAL
    assert len(images) == 2
