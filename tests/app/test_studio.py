"""The app's calls on a trained avatar: slider blending, edits, clips, exports and the web bundle (CPU, tiny scale)."""
import os
import zipfile

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from perse.app import studio
from perse.core.expressions import EXPRESSION_NAMES
from perse.core.ply import read_ply
from perse.errors import PerseError
from perse.export.splat import read_splat


@pytest.fixture(scope="module")
def run_dir(tiny_avatar):
    return str(tiny_avatar[0])


@pytest.fixture(scope="module")
def opened(run_dir):
    return studio.open_avatar(run_dir, studio.View())


def _sub(latent, info, category):
    d = latent.shape[0] // len(info.categories)
    i = list(info.categories).index(category)
    return latent[i * d:(i + 1) * d]


def test_open_describes_the_avatar_and_renders_it(run_dir, opened):
    info, latent, image = opened
    assert list(info.categories) == ["hair", "glasses", "lips"]
    assert info.categories["hair"][0] == "source"
    assert info.expressions == list(EXPRESSION_NAMES)
    assert image.dtype == np.uint8 and image.shape == (256, 256, 3), "32 px avatars are shown at 256 px"
    assert image.std() > 1, "a rendered head, not a blank frame"


def test_slider_positions_blend_neighbouring_codes(run_dir):
    avatar = studio.AVATARS.get(run_dir)
    code = lambda k: avatar.code("hair", k)  # noqa: E731
    assert torch.allclose(avatar.slider_code("hair", 1.0), code(1))
    assert torch.allclose(avatar.slider_code("hair", 1.25), 0.75 * code(1) + 0.25 * code(2))
    assert torch.allclose(avatar.slider_code("hair", 2.0), code(2))
    with pytest.raises(PerseError, match=r"\[0, 2\]"):
        avatar.slider_code("hair", 7.0)


def test_a_slider_edits_only_its_category(run_dir, opened):
    info, latent, image = opened
    edited, new_image = studio.edit(run_dir, latent, studio.View(), "slider", "hair", 2.0)
    assert not torch.allclose(_sub(edited, info, "hair"), _sub(latent, info, "hair"))
    assert np.abs(new_image.astype(int) - image).mean() > 1
    for other in ("glasses", "lips"):
        assert torch.equal(_sub(edited, info, other), _sub(latent, info, other))
    reset, reset_image = studio.edit(run_dir, edited, studio.View(), "reset")
    assert torch.allclose(reset, latent) and np.array_equal(reset_image, image)


def test_pose_and_expression_change_the_render(run_dir, opened):
    _, latent, image = opened
    _, turned = studio.edit(run_dir, latent, studio.View(yaw=25.0, pitch=-10.0))
    assert np.abs(turned.astype(int) - image).mean() > 1


def test_random_samples_are_reproducible_and_per_category(run_dir, opened):
    info, latent, _ = opened
    a, _ = studio.edit(run_dir, latent, studio.View(), "sample", "lips", 11)
    b, _ = studio.edit(run_dir, latent, studio.View(), "sample", "lips", 11)
    c, _ = studio.edit(run_dir, latent, studio.View(), "sample", "lips", 12)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(_sub(a, info, "hair"), _sub(latent, info, "hair"))
    everything, _ = studio.edit(run_dir, latent, studio.View(), "sample", None, 5)
    assert any(not torch.equal(_sub(everything, info, c), _sub(latent, info, c)) for c in info.categories)


def test_sliders_follow_a_random_look(run_dir, opened):
    info, latent, _ = opened
    avatar = studio.AVATARS.get(run_dir)
    two = avatar.with_code(latent, "hair", avatar.code("hair", 2))
    assert studio.slider_positions(run_dir, two) == {"hair": 2.0, "glasses": 0.0, "lips": 0.0}
    for seed in range(4):
        sample, _ = studio.edit(run_dir, latent, studio.View(), "sample", None, seed)
        positions = studio.slider_positions(run_dir, sample)
        for name, position in positions.items():
            shown, drawn = avatar.slider_code(name, position), _sub(sample, info, name)
            # No learned code is nearer the drawn one than the slider's blend.
            assert all((shown - drawn).norm() <= (avatar.code(name, k) - drawn).norm() + 1e-5
                       for k in range(len(info.categories[name])))


def test_interpolation_gif_loops_between_two_positions(run_dir, opened, tmp_path):
    _, latent, _ = opened
    path = studio.interpolation_clip(run_dir, latent, "hair", 0.5, 2.0, 5, studio.View(), str(tmp_path / "c.gif"))
    frames = iio.imread(path, index=None)[..., :3].astype(int)
    assert frames.shape[0] == 2 * 5 - 2 and frames.shape[1:3] == (256, 256)
    _, first = studio.edit(run_dir, latent, studio.View(), "slider", "hair", 0.5)
    _, last = studio.edit(run_dir, latent, studio.View(), "slider", "hair", 2.0)
    # GIF palettes shift colours a little; each end frame must still be nearer its own render.
    distance = lambda a, b: np.abs(a - b.astype(int)).mean()  # noqa: E731
    assert distance(frames[0], first) < distance(frames[0], last)
    assert distance(frames[4], last) < distance(frames[4], first)
    assert np.abs(frames[1] - frames[-1]).mean() < 1, "it bounces back: a seamless loop"


def test_interpolation_mp4_plays_in_browsers(run_dir, opened, tmp_path):
    _, latent, _ = opened
    path = studio.interpolation_clip(run_dir, latent, "lips", 0.0, 1.0, 3, studio.View(), str(tmp_path / "c.mp4"))
    frames = iio.imread(path, index=None)
    assert frames.shape[0] == 2 * 3 - 2 and frames.shape[1:3] == (256, 256)


def test_look_exports_hold_every_gaussian_at_the_stated_size(run_dir, opened, tmp_path):
    _, latent, _ = opened
    for suffix, read in ((".ply", read_ply), (".splat", read_splat)):
        path, count = studio.export_look(run_dir, latent, studio.View(), str(tmp_path / f"look{suffix}"))
        assert count == 300 and len(read(path)) == 300
        header = os.path.getsize(path) - count * studio.BYTES_PER_GAUSSIAN[suffix]
        assert 0 <= header < 1024, "the size the page states before the download is the file's"


def test_web_bundle_is_written_once_and_zipped(run_dir, tmp_path):
    folder, archive = studio.web_bundle(run_dir, str(tmp_path / "web" / "001"))
    assert sorted(os.listdir(folder)) == ["bundle.bin", "index.html", "manifest.json", "viewer.js"]
    with zipfile.ZipFile(archive) as packed:
        assert sorted(packed.namelist()) == sorted(os.listdir(folder))
    stamp = os.path.getmtime(os.path.join(folder, "bundle.bin"))
    assert studio.web_bundle(run_dir, str(tmp_path / "web" / "001")) == (folder, archive)
    assert os.path.getmtime(os.path.join(folder, "bundle.bin")) == stamp
    assert sorted(p.name for p in (tmp_path / "web").iterdir()) == ["001", "001.zip"], "no staging left behind"


def test_transferred_codes_stay_where_the_decoder_was_trained(run_dir):
    avatar = studio.AVATARS.get(run_dir)
    mean, std = avatar.prior("hair")
    learned = avatar.code("hair", 2)
    assert torch.equal(avatar.within_learned_codes("hair", learned), learned)
    far = mean + std * 50 * torch.ones_like(mean)
    pulled = avatar.within_learned_codes("hair", far)
    radius = max(((avatar.code("hair", k) - mean) / std).norm() for k in range(3))
    assert torch.isclose(((pulled - mean) / std).norm(), radius)
    assert torch.allclose((pulled - mean) / (pulled - mean).norm(), (far - mean) / (far - mean).norm(), atol=1e-5)
