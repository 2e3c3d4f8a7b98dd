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
    g = avatar.gaussians({"glasses": 1}, {"jaw_open": 1.0})
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
