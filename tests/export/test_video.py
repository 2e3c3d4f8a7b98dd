"""Turntables and interpolations of a trained avatar become GIF/MP4; its Gaussians export to .ply."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perse.avatar.avatar import Avatar
from perse.core.ply import read_ply, write_ply
from perse.errors import PerseError
from perse.export.video import interpolation_frames, turntable_frames, write_video


def test_trained_avatar_exports(trained_run, tmp_path):
    import imageio.v2 as iio

    avatar = Avatar.load(trained_run, "cpu")
    g = avatar.gaussians({"glasses": 1}, {"jawOpen": 1.0})
    back = read_ply(write_ply(tmp_path / "glasses.ply", g))
    torch.testing.assert_close(back.means, g.means.detach(), rtol=1e-5, atol=1e-6)

    spin = turntable_frames(avatar, frames=6, size=32)
    assert len(spin) == 6 and not np.allclose(spin[0], spin[1])
    morph = interpolation_frames(avatar, "hair", 1, 2, frames=4, size=32)
    assert len(morph) == 6  # there and back
    gif = write_video(tmp_path / "spin.gif", spin, fps=12)
    mp4 = write_video(tmp_path / "morph.mp4", morph, fps=12)
    assert len(iio.mimread(gif)) == 6
    assert len(iio.mimread(mp4, format="FFMPEG")) == 6
    with pytest.raises(PerseError, match="choose a .mp4 or .gif"):
        write_video(tmp_path / "x.avi", spin)


def test_gif_keeps_the_colours_of_every_frame(tmp_path):
    """One palette serves the whole animation: a look whose colour changes along it (grey hair turning
    red) must keep both ends' colours, not just the first frame's."""
    import imageio.v2 as iio

    y, x = np.mgrid[0:96, 0:96] / 95.0
    face = np.stack([0.55 + 0.3 * x, 0.4 + 0.2 * y, 0.3 + 0.1 * x * y], -1)
    hair = (y < 0.35)[..., None]
    frames = [np.where(hair, (1 - t) * np.array([0.4, 0.4, 0.42]) + t * np.array([0.85, 0.1, 0.15]), face)
              * (0.8 + 0.2 * x[..., None]) for t in np.linspace(0, 1, 20)]
    back = np.asarray(iio.mimread(write_video(tmp_path / "tint.gif", frames, fps=10)))[..., :3] / 255.0
    assert back.shape == (20, 96, 96, 3)
    frames = np.stack(frames)
    assert np.abs(back - frames).mean(axis=(1, 2, 3)).max() < 0.02
    assert np.abs(back.mean(axis=(1, 2)) - frames.mean(axis=(1, 2))).max() < 0.02
