"""run_synth end to end at toy size: the dataset contract, progress events, skip on re-run, CLI."""
import shutil

import numpy as np
import pytest

from perse.cli import main
from perse.config import build_config
from perse.core.camera import head_pose_viewmat
from perse.dataset import MIX, read_dataset
from perse.errors import ConfigError, PerseError
from perse.ingest.portrait import Portrait
from perse.synth import run_synth
from perse.synth.catalog import CATALOG
from perse.synth.edit.parametric import ParametricEditor
from perse.synth.interp import morph
from perse.synth.run import resize_portrait

OVERRIDES = {"synth.categories": "hair,glasses", "synth.values": 1, "synth.holdout_looks": 1, "synth.frames": 4,
             "synth.size": 64, "synth.interp_ts": "0.25,0.75"}


@pytest.fixture
def run_dir(ingested, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ingested["obama"][1], run)
    return run


def test_run_synth_writes_a_valid_dataset_and_skips_it_next_time(run_dir):
    config = build_config("tiny", overrides=OVERRIDES)
    events = list(run_synth(run_dir, config))
    fractions = [e.fraction for e in events]
    assert all(e.stage == "synth" for e in events)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(e.image is None or (run_dir / e.image).exists() for e in events)
    clip_events = [e for e in events if "kept" in e.metrics and "clip" in e.metrics]
    assert len(clip_events) == 7

    dataset = read_dataset(run_dir)
    meta = dataset.meta
    assert set(meta.categories) == {"hair", "glasses"}
    assert all(labels[0] == "source" and len(labels) == 3 for labels in meta.categories.values())
    assert sorted(dataset.clips) == ["glasses-1", "glasses-2", "hair-1", "hair-2", "mix-1", "mix-2", "source"]
    # The last look of each category is held out: animated, but never trained on nor paired.
    assert sorted(clip.id for clip in dataset.held_out_looks) == ["glasses-2", "hair-2"]
    assert all(len(labels) == 2 for labels in dataset.trained_categories.values())
    assert not any(dataset.clips[p.clip_b].holdout for p in meta.pairs)
    pivot = np.asarray(meta.extra["pivot"])
    for clip in meta.clips:
        assert len(clip.frames) == 4
        assert all(isinstance(f.identity, float) and isinstance(f.kept, bool) for f in clip.frames)
        np.testing.assert_allclose(clip.frames[0].world_to_camera, head_pose_viewmat(14.0, 0, 0, 0, pivot))
        assert dataset.frame_image(clip, clip.frames[1]).shape == (64, 64, 3)
        event = next(e for e in clip_events if e.metrics["clip"] == clip.id)
        assert event.metrics["kept"] == len(clip.kept_frames)
    assert len(meta.pairs) == 4
    # Mixed looks combine trained looks (never held-out ones): the glasses worn over the recoloured hair.
    mixes = [clip for clip in meta.clips if clip.category == MIX]
    assert all(clip.codes == {"hair": 1, "glasses": 1} and not clip.holdout for clip in mixes)
    assert all(dataset.code_vector(clip).tolist() == [1, 1] for clip in mixes)
    first = lambda clip_id: dataset.frame_image(dataset.clips[clip_id], dataset.clips[clip_id].frames[0])  # noqa: E731
    source, hair, glasses, mixed = first("source"), first("hair-1"), first("glasses-1"), first("mix-1")
    by_glasses = np.abs(glasses - source).max(-1) > 0.02
    by_hair = (np.abs(hair - source).max(-1) > 0.02) & ~by_glasses
    assert by_hair.sum() > 20 and by_glasses.sum() > 20
    assert np.abs(mixed - hair)[by_hair].mean() < 0.03 < np.abs(mixed - source)[by_hair].mean()
    assert np.abs(mixed - glasses)[by_glasses].mean() < np.abs(mixed - source)[by_glasses].mean()
    with np.load(dataset.root / meta.extra["init_points"]) as cloud:
        assert cloud["points"].shape == cloud["colors"].shape and cloud["points"].shape[1] == 3
        assert len(cloud["points"]) > 500

    # An exact pair target is the editor's image at that strength, composited like the frames.
    portrait = resize_portrait(Portrait.load(run_dir), 64)
    pair = next(p for p in meta.pairs if p.category == "hair" and p.t == 0.25)
    value = CATALOG["hair"].value(meta.categories["hair"][1])
    expected = ParametricEditor(seed=config.seed).edit(portrait, CATALOG["hair"], value, 0.25)
    background = np.asarray(meta.extra["background"])
    composite = expected.image * expected.matte[..., None] + (1 - expected.matte[..., None]) * background
    assert np.abs(dataset.pair_image(pair) - composite).max() <= 1.5 / 255
    assert dataset.pair_mask(pair).max() == 1.0
    assert np.abs(dataset.pair_matte(pair) - expected.matte).max() <= 1.5 / 255

    again = list(run_synth(run_dir, config))
    assert len(again) == 1 and "skipped" in again[0].message


def test_run_synth_refuses_bad_requests_before_writing(run_dir, tmp_path):
    with pytest.raises(ConfigError, match="unknown attribute category 'wings'"):
        list(run_synth(run_dir, build_config("tiny", overrides={**OVERRIDES, "synth.categories": "wings"})))
    with pytest.raises(ConfigError, match="synth.interp=exact needs"):
        list(run_synth(run_dir, build_config("tiny", overrides={**OVERRIDES, "synth.editor": "diffusers",
                                                                 "synth.diffusers_model": str(tmp_path)})))
    with pytest.raises(PerseError, match="perse ingest"):
        list(run_synth(tmp_path / "empty", build_config("tiny", overrides=OVERRIDES)))
    assert not (run_dir / "dataset" / "meta.json").exists()


def test_morph_target_runs_from_one_edit_to_the_other(small_portraits):
    portrait = small_portraits["astronaut"]
    editor = ParametricEditor()
    a = editor.edit(portrait, CATALOG["glasses"], CATALOG["glasses"].value("round glasses"))
    b = editor.edit(portrait, CATALOG["glasses"], CATALOG["glasses"].value("aviator sunglasses"))
    region = np.maximum(a.region, b.region)
    start = morph(a.image, b.image, a.matte, b.matte, region, 0.0)
    end = morph(a.image, b.image, a.matte, b.matte, region, 1.0)
    middle = morph(a.image, b.image, a.matte, b.matte, region, 0.5)
    np.testing.assert_allclose(start.image, a.image, atol=1e-5)
    inside = region > 0.99
    assert np.abs(end.image - b.image)[inside].mean() < 0.02
    outside = region == 0
    assert np.array_equal(middle.image[outside], a.image[outside])
    between = np.abs(middle.image - a.image)[inside].mean()
    assert 0.2 < between / np.abs(b.image - a.image)[inside].mean() < 0.8


def test_cli_writes_the_dataset_and_reports_bad_input(run_dir, capsys):
    code = main(["synth", str(run_dir), "--preset", "tiny", "--categories", "lips", "--values", "2",
                 "--frames", "2", "--size", "64"])
    assert code == 0
    assert "dataset written" in capsys.readouterr().err
    assert read_dataset(run_dir).meta.categories["lips"][0] == "source"
    code = main(["synth", str(run_dir), "--preset", "tiny", "--categories", "lips", "--frames", "0", "--force"])
    assert code == 2
    assert "'synth.frames': 0 is out of range" in capsys.readouterr().err


def test_cancel_stops_between_clips_and_leaves_no_dataset(run_dir):
    from perse.dataset import is_complete
    from perse.errors import Cancelled
    from perse.events import CancelToken

    token = CancelToken()
    events = run_synth(run_dir, build_config("tiny", overrides=OVERRIDES), cancel=token)
    first, second = next(events), next(events)
    assert second.metrics["clip"] == "source" and first.fraction == 0.0
    token.cancel()
    with pytest.raises(Cancelled):
        list(events)
    assert not is_complete(run_dir)
    assert not (run_dir / "dataset" / "clips" / "glasses-1").exists()


def test_morph_targets_and_odd_sizes_through_run_synth(run_dir):
    overrides = {**OVERRIDES, "synth.categories": "lips", "synth.frames": 2, "synth.size": 72,
                 "synth.interp": "morph", "synth.interp_ts": "0.5"}
    list(run_synth(run_dir, build_config("tiny", overrides=overrides)))
    dataset = read_dataset(run_dir)
    assert dataset.meta.image_size == 72 and dataset.meta.extra["interp"] == "morph"
    (pair,) = dataset.meta.pairs
    assert pair.clip_a == "source" and pair.clip_b == "lips-1" and pair.t == 0.5
    lips = dataset.pair_mask(pair) > 0.5
    portrait = resize_portrait(Portrait.load(run_dir), 72)
    config = build_config("tiny", overrides=overrides)
    look = ParametricEditor(seed=config.seed).edit(portrait, CATALOG["lips"], CATALOG["lips"].value(
        dataset.clips["lips-1"].value))
    background = np.asarray(dataset.meta.extra["background"])
    source = portrait.image / 255.0 * portrait.matte[..., None] + (1 - portrait.matte[..., None]) * background
    edited = look.image * look.matte[..., None] + (1 - look.matte[..., None]) * background
    middle = dataset.pair_image(pair)
    # Halfway between the unedited and the lipstick look where the lips are.
    between = np.abs(middle - source)[lips].mean() / max(np.abs(edited - source)[lips].mean(), 1e-6)
    assert 0.25 < between < 0.75


def test_interpolation_targets_do_not_hold_up_the_next_clips(run_dir, monkeypatch):
    """A category's targets are made on the editing threads while the next category's clips animate."""
    import threading

    from perse.synth import run as synth_run

    monkeypatch.setattr(synth_run, "cores", lambda: 1)  # one editing thread, one writer
    release = threading.Event()
    make = synth_run._Synthesis._pair_target

    def held(self, *args):
        assert release.wait(30), "the main thread waited for the interpolation targets"
        return make(self, *args)

    monkeypatch.setattr(synth_run._Synthesis, "_pair_target", held)
    events = run_synth(run_dir, build_config("tiny", overrides={**OVERRIDES, "synth.interp_ts": "0.2,0.4,0.6,0.8"}))
    for event in events:
        if event.metrics.get("clip") == "glasses-1":  # animated after the hair's 4 targets were queued
            break
    release.set()
    list(events)
    assert len(read_dataset(run_dir).meta.pairs) == 8
