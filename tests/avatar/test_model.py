"""Trained on the procedural dataset: reconstruction, disentanglement, interpolation, the Avatar API."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perse.avatar.avatar import SAMPLE_SPREAD, Avatar
from perse.core.expressions import EXPRESSION_NAMES
from perse.core.io import to_uint8
from perse.dataset import read_dataset
from perse.errors import PerseError
from perse.testing.training import training_frame_psnr


def test_overfits_training_frames(trained_run):
    value = training_frame_psnr(trained_run, "cpu")
    print(f"training-frame PSNR on the person: {value:.2f} dB")
    assert value >= 30.0


def _region(dataset, category, grow: int = 2):
    from scipy.ndimage import binary_dilation

    pair = next(p for p in dataset.meta.pairs if p.category == category)
    mask = dataset.pair_mask(pair) > 0.5
    # Edge pixels are shared between a region and its neighbours through the splats' blur.
    return binary_dilation(mask, iterations=grow) if grow else mask


@pytest.mark.parametrize("category", ["hair", "glasses", "lips"])
def test_category_codes_act_locally(trained_run, category):
    avatar = Avatar.load(trained_run, "cpu")
    dataset = read_dataset(trained_run)
    region, core = _region(dataset, category), _region(dataset, category, grow=0)
    source = avatar.render(None, background=(0, 0, 0))
    for value in avatar.categories[category][1:]:
        edited = avatar.render({category: value}, background=(0, 0, 0))
        changed = np.abs(edited - source).max(-1) > 0.1
        print(f"{category}={value}: changed inside {changed[core].mean():.3f}, outside {changed[~region].mean():.4f}")
        assert changed[core].mean() > 0.3, f"{category}={value} barely changes its own region"
        assert changed[~region].mean() < 0.02, f"{category}={value} changes pixels outside its region"


def test_composition_sets_several_categories(trained_run):
    avatar = Avatar.load(trained_run, "cpu")
    dataset = read_dataset(trained_run)
    both = avatar.render({"hair": 1, "glasses": 2}, background=(0, 0, 0))
    for category, value, other in (("hair", 1, "glasses"), ("glasses", 2, "hair")):
        single = avatar.render({category: value}, background=(0, 0, 0))
        # Where only this category's region lies, adding the other category's edit changes nothing.
        own = _region(dataset, category, grow=0) & ~_region(dataset, other)
        difference = np.abs(both - single)[own].mean()
        print(f"composition: {category} region differs by {difference:.4f}")
        assert difference < 0.03


def _path(avatar: Avatar, region: np.ndarray, steps: int = 13):
    """Renders along hair code 1 -> 2 and the distances between adjacent renders inside the hair region."""
    images = [avatar.render(avatar.interpolate("hair", 1, 2, t), background=(0, 0, 0))
              for t in np.linspace(0, 1, steps)]
    return images, np.array([np.linalg.norm((b - a)[region]) for a, b in zip(images, images[1:])])


def test_interpolation_loss_shortens_and_evens_paths(trained_run, trained_run_without_interp):
    """PERSE's interpolation metrics are PPL (sum of adjacent-frame distances) and PDV (their variance).
    The procedural targets blend colours linearly, so the true path is a straight line. Without the
    loss, intermediate latents are never seen: the look detours and jumps in the middle of the path.
    With it, the path is shorter, nearly straight and moves at an even pace."""
    dataset = read_dataset(trained_run)
    region = _region(dataset, "hair")
    images_with, steps_with = _path(Avatar.load(trained_run, "cpu"), region)
    images_without, steps_without = _path(Avatar.load(trained_run_without_interp, "cpu"), region)
    # Length over the distance between the endpoints: 1 for a straight path.
    straightness_with = steps_with.sum() / np.linalg.norm((images_with[-1] - images_with[0])[region])
    straightness_without = steps_without.sum() / np.linalg.norm((images_without[-1] - images_without[0])[region])
    # Variance of the step distances relative to their mean: PDV made scale-free.
    pdv_with = steps_with.var() / steps_with.mean() ** 2
    pdv_without = steps_without.var() / steps_without.mean() ** 2
    print(f"hair path (with / without the loss): length {steps_with.sum():.2f} / {steps_without.sum():.2f}, "
          f"length over endpoint distance {straightness_with:.3f} / {straightness_without:.3f}, "
          f"relative PDV {pdv_with:.4f} / {pdv_without:.4f}")
    assert steps_with.sum() < 0.9 * steps_without.sum()
    assert straightness_with < 1.05 < straightness_without
    assert pdv_with < 0.5 * pdv_without
    # No single step carries the change: the largest step is at most twice the mean one.
    assert steps_with.max() < 2 * steps_with.mean()


def test_sample_fit_and_api_errors(trained_run):
    avatar = Avatar.load(trained_run, "cpu")
    a, b = avatar.sample(seed=1), avatar.sample(seed=2)
    assert a.shape == (avatar.latent_size,) and not torch.allclose(a, b)
    assert torch.equal(avatar.sample(seed=1), a)
    # Samples lie on the trained paths, near one end: a learned look, or a short way from it towards
    # a look it has in-between targets with; over seeds they visit different looks. An accessory
    # (glasses) is exactly one learned look: worn or not, never a ghost.
    codes = avatar.learned_codes("hair")
    near = set()
    for seed in range(12):
        hair = avatar.sample(seed=seed, categories=["hair"])[: avatar.model.latent_dim]
        ends = [(a, b) for a in range(len(codes)) for b in avatar.trained_paths("hair", a)]
        fits = []
        for a, b in ends:
            along = codes[b] - codes[a]
            t = float((hair - codes[a]) @ along / along.dot(along))
            if 0 <= t <= SAMPLE_SPREAD + 1e-6 and (codes[a] + t * along - hair).norm() < 1e-5:
                fits.append(a)
        assert fits, f"seed {seed}: hair sample lies on no trained path"
        near.update(fits)
        glasses = avatar.sample(seed=seed, categories=["glasses"]).reshape(len(avatar.categories), -1)[
            list(avatar.categories).index("glasses")]
        assert (avatar.learned_codes("glasses") - glasses).norm(dim=1).min() < 1e-6
    assert len(near) > 1
    # Sampling every category changes some and keeps the others.
    d = avatar.model.latent_dim
    source = avatar.latent(None)
    changed = [[not torch.equal(avatar.sample(seed=s)[c * d:(c + 1) * d], source[c * d:(c + 1) * d])
                for c in range(len(avatar.categories))] for s in range(12)]
    assert all(any(row) for row in changed) and not all(all(row) for row in changed)
    # One accessory at most: tiny trains one (glasses), so hair is made to count as one too here.
    assert not Avatar.is_accessory("hair") and Avatar.is_accessory("glasses")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Avatar, "is_accessory", staticmethod(lambda name: name in {"hair", "glasses"}))
        worn = [sum(not torch.equal(avatar.sample(seed=s)[c * d:(c + 1) * d], source[c * d:(c + 1) * d])
                    for c, name in enumerate(avatar.categories) if name in {"hair", "glasses"}) for s in range(24)]
    assert max(worn) == 1
    # Other categories keep the base look.
    assert torch.equal(avatar.sample(seed=3, categories=["hair"])[d:], avatar.latent(None)[d:])
    # Fit the hair code to a render of hair code 2: the fitted look matches it inside the hair region.
    dataset = read_dataset(trained_run)
    region = _region(dataset, "hair").astype(np.float32)
    target = avatar.render({"hair": 2}, background=(0.5, 0.5, 0.5))
    code = avatar.fit_code(target, region, "hair")
    fitted = avatar.render({"hair": code}, background=(0.5, 0.5, 0.5))
    source = avatar.render(None, background=(0.5, 0.5, 0.5))
    mask = region > 0
    assert np.abs(fitted - target)[mask].mean() < 0.5 * np.abs(source - target)[mask].mean()
    with pytest.raises(PerseError, match="unknown category"):
        avatar.latent({"moustache": 1})
    with pytest.raises(PerseError, match="has no value"):
        avatar.code("hair", "purple")
    with pytest.raises(PerseError, match="expression needs"):
        avatar.render(None, expression=[1.0])


@pytest.fixture(scope="module")
def expressive_run(tmp_path_factory):
    """A procedural avatar trained on frames that move its expression controls at full range: one
    category and longer clips, so each control moves in a dozen training frames. 800 steps: the expression
    basis and the expressions' own features both start near zero, so the weakest controls need twice the
    tiny preset's run to rise clear of noise."""
    from perse.avatar.train import train
    from perse.testing.procedural import write_procedural_dataset
    from perse.testing.training import tiny_config

    run = tmp_path_factory.mktemp("expressive")
    write_procedural_dataset(run, size=64, frames=24, init_points=True, expression_range=1.0, categories=("lips",))
    assert list(train(run, tiny_config(**{"avatar.steps": 800})))[-1].fraction == 1.0
    return run


def test_the_avatar_learns_every_expression_control(expressive_run):
    """Each control moves its own mark on the procedural head (perse.testing.procedural.MARKS): the
    trained avatar's render at full strength changes where the ground truth's does, well above the
    change elsewhere."""
    from perse.core.camera import Camera
    from perse.core.render import render
    from perse.testing.procedural import ProceduralHead

    avatar = Avatar.load(expressive_run, "cpu")
    head = ProceduralHead.build(1200, tuple(avatar.categories))
    camera = avatar.camera()
    truth = lambda vector: render(head.gaussians(None, vector), Camera(camera.K, camera.viewmat, 64, 64)).rgb.numpy()  # noqa: E731
    neutral, truth_neutral = avatar.render(), truth(np.zeros(len(EXPRESSION_NAMES)))
    for index, name in enumerate(EXPRESSION_NAMES):
        moved = np.abs(truth(np.eye(len(EXPRESSION_NAMES))[index]) - truth_neutral).mean(-1) > 0.05
        change = np.abs(avatar.render(expression={name: 1.0}) - neutral).mean(-1)
        # Grey levels: the ground truth changes its mark by 15-60, the avatar learns 4-36 of it.
        assert change[moved].mean() > 2 / 255, f"{name}: {255 * change[moved].mean():.1f} grey levels where it acts"
        assert change[moved].mean() > 3 * change[~moved].mean(), name


def test_expressions_by_old_and_new_names(trained_run):
    avatar = Avatar.load(trained_run, "cpu")
    smile = avatar.render(expression={"smile": 0.5, "blink": 1.0})
    both = avatar.render(expression={"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5, "eyeBlinkLeft": 1.0,
                                     "eyeBlinkRight": 1.0})
    np.testing.assert_allclose(smile, both, atol=1e-6)
    with pytest.raises(PerseError, match=r"expression 'smile' must be a number in \[0, 1\]"):
        avatar.render(expression={"smile": 1.5})
    with pytest.raises(PerseError, match="unknown expression.*mouthSmileLeft.*old names jaw_open"):
        avatar.render(expression={"grin": 1.0})


def test_a_batch_of_frames_renders_as_each_frame_alone(trained_run):
    avatar = Avatar.load(trained_run, "cpu")
    yaws, pitches = [0.0, 20.0, -15.0], [0.0, -10.0, 5.0]
    expressions = [{}, {"jawOpen": 1.0}, {"smile": 0.5, "eyeBlinkLeft": 1.0}]
    frames = avatar.render_frames({"hair": 1}, yaws, pitches, expressions, size=48)
    alone = [avatar.render({"hair": 1}, yaw=y, pitch=p, expression=e, size=48)
             for y, p, e in zip(yaws, pitches, expressions)]
    np.testing.assert_allclose(frames, np.stack(alone), atol=1e-5)
    as_bytes = avatar.render_frames({"hair": 1}, yaws, pitches, expressions, size=48, uint8=True)
    assert as_bytes.dtype == np.uint8
    np.testing.assert_array_equal(as_bytes, to_uint8(frames))
    with pytest.raises(PerseError, match="as many yaws, pitches and expressions, got 3, 2, 3"):
        avatar.render_frames(None, yaws, pitches[:2], expressions)
    with pytest.raises(PerseError, match=r"yaw must be a number in \[-180, 180\], got 400"):
        avatar.render_frames(None, [400], [0], [{}])


def test_a_checkpoint_of_the_four_old_controls_asks_for_a_rebuild(trained_run, tmp_path):
    from perse.core.paths import RunPaths

    state = torch.load(RunPaths(trained_run).checkpoint, weights_only=True)
    state["expression_names"] = ["jaw_open", "smile", "blink", "brow_raise"]
    RunPaths(tmp_path).checkpoint.parent.mkdir(parents=True)
    torch.save(state, RunPaths(tmp_path).checkpoint)
    with pytest.raises(PerseError, match=r"jaw_open, smile, blink, brow_raise.*rebuild it .*`perse run PHOTO --out"):
        Avatar.load(tmp_path, "cpu")


def test_an_avatar_from_before_expression_features_loads_as_it_was(trained_run, tmp_path):
    """Avatars trained when the expressions shared the categories' features (no
    avatar.expression_feature_dim in their config) keep that structure when loaded."""
    from perse.avatar.model import AvatarModel
    from perse.config import config_from_dict
    from perse.core.paths import RunPaths

    state = torch.load(RunPaths(trained_run).checkpoint, weights_only=True)
    del state["config"]["avatar"]["expression_feature_dim"]
    config = config_from_dict(state["config"])
    assert config.avatar.expression_feature_dim == 0
    n = state["model"]["means"].shape[0]
    old = AvatarModel(config.avatar, {name: len(v) for name, v in state["categories"].items()},
                      len(state["expression_names"]), torch.rand(n, 3), torch.rand(n, 3), torch.full((1,), 0.02))
    torch.nn.init.normal_(old.decoder.expression.weight, std=0.1)
    state["model"] = old.state_dict()
    RunPaths(tmp_path).checkpoint.parent.mkdir(parents=True)
    torch.save(state, RunPaths(tmp_path).checkpoint)
    loaded = Avatar.load(tmp_path, "cpu").model
    latent = torch.zeros(1, loaded.codes[0].shape[1] * len(loaded.codes))
    expression = torch.rand(1, len(EXPRESSION_NAMES))
    assert loaded.features.shape[1] == config.avatar.feature_dim
    torch.testing.assert_close(loaded.decode(latent, expression).colors, old.decode(latent, expression).colors)
