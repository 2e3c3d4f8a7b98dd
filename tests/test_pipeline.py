"""End to end on a real portrait at tiny scale: every output exists, a report metric recomputed
independently matches, and re-runs skip exactly the stages whose inputs did not change."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from perse.config import build_config
from perse.core.expressions import EXPRESSION_NAMES
from perse.pipeline import run

PHOTO = Path(__file__).resolve().parents[1] / "assets" / "obama.jpg"
FAST = ["avatar.steps=40", "avatar.checkpoint_every=20", "avatar.preview_every=20", "synth.frames=6",
        "avatar.holdout_every=3", "export.turntable_frames=4", "export.interp_frames=4"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    config = build_config("tiny", overrides=FAST + ["device=cpu"])
    events = list(run(PHOTO, run_dir, config))
    return run_dir, config, events


def test_every_output_exists(tiny_run):
    run_dir, _, events = tiny_run
    for path in ["portrait.png", "portrait.json", "debug.png", "dataset/meta.json", "avatar/checkpoint.pt",
                 "avatar/avatar.ply", "avatar/train_log.jsonl", "renders/turntable.gif", "renders/turntable.mp4",
                 "renders/samples.png", "renders/interp_hair.gif", "renders/interp_glasses.gif",
                 "renders/interp_lips.gif", "report.json", "report.html", "stages.json", "config.json"]:
        assert (run_dir / path).is_file(), path
    assert [e.stage for e in events][0] == "ingest" and events[-1].stage == "metrics"
    # Committed: no writer holds the folder, and its workspace only links to the finished outputs.
    assert not (run_dir / ".lock").exists()
    assert all(entry.is_symlink() for entry in (run_dir / ".work").iterdir())
    stages_in_order = list(dict.fromkeys(e.stage for e in events))
    assert stages_in_order == ["ingest", "synth", "train", "export", "metrics"]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["reconstruction"]["frames"] > 0
    assert set(report["interpolation"]["categories"]) == {"hair", "glasses", "lips"}
    assert report["interpolation"]["distance"] in {"lpips_vgg", "dssim"}
    # The faults a visitor sees, each with its goal; two looks of every category were held out and fitted.
    assert [g["measure"] for g in report["goals"]] == [
        "ghost pixels", "holes at yaw +-35", "held-out looks PSNR", "identity, worst pose",
        "expression visibility, weakest control"]
    assert 0.0 <= report["ghost"]["share"] <= 1.0 and 0.0 <= report["holes"]["share"] <= 1.0
    # (A look is scored on its kept frames besides the fitted one; at 64 px dlib may drop every
    # expressive frame of a glasses look, so one look in a category may go unscored.)
    assert 3 <= report["held_out_looks"]["looks"] <= 2 * 3
    assert set(report["held_out_looks"]["categories"]) == {"hair", "glasses", "lips"}
    assert {"yaw-35", "yaw+35"} <= set(report["identity"])
    assert list(report["expressions"]["grey_levels"]) == list(EXPRESSION_NAMES)
    assert report["expressions"]["weakest"] in EXPRESSION_NAMES
    html = (run_dir / "report.html").read_text()
    assert "plotly" in html and "<h2>Goals</h2>" in html and html.count("data:image/png;base64,") >= 3


def test_held_out_psnr_recomputed_independently(tiny_run):
    """Render each held-out frame through the single-camera API and pool the squared error in numpy."""
    from perse.avatar.avatar import Avatar
    from perse.core.camera import Camera
    from perse.core.render import render
    from perse.dataset import read_dataset

    run_dir, _, _ = tiny_run
    dataset = read_dataset(run_dir)
    avatar = Avatar.load(run_dir, device="cpu")
    holdout = json.loads((run_dir / "avatar" / "holdout.json").read_text())["frames"]
    errors = []
    for clip_id, indices in holdout.items():
        clip = dataset.clips[clip_id]
        selection = clip.changes or None
        for frame in (f for f in clip.frames if f.index in indices):
            camera = Camera(dataset.intrinsics(), np.asarray(frame.world_to_camera), dataset.meta.image_size,
                            dataset.meta.image_size)
            with torch.no_grad():
                out = render(avatar.gaussians(selection, frame.expression), camera)
            alpha = dataset.frame_mask(clip, frame)[..., None]
            target = dataset.frame_image(clip, frame) * alpha
            errors.append((out.rgb.clamp(0, 1).numpy() - target) ** 2)
    expected = 10 * np.log10(1.0 / np.mean(errors))
    report = json.loads((run_dir / "report.json").read_text())
    assert report["reconstruction"]["frames"] == len(errors)
    assert report["reconstruction"]["psnr"] == pytest.approx(expected, abs=0.02)


def test_rerun_skips_finished_stages_and_redoes_changed_ones(tiny_run):
    run_dir, config, _ = tiny_run
    again = list(run(PHOTO, run_dir, config))
    assert all(e.message.endswith("up to date, skipped") for e in again)

    changed = build_config("tiny", overrides=FAST + ["device=cpu", "export.turntable_frames=6"])
    events = list(run(PHOTO, run_dir, changed))
    skipped = {e.stage for e in events if e.message.endswith("up to date, skipped")}
    assert skipped == {"ingest", "synth", "train"}
    import imageio.v3 as iio

    assert len(iio.imread(run_dir / "renders" / "turntable.gif", index=None)) == 6


def test_commands_on_the_trained_avatar(tiny_run, tmp_path, capsys):
    from perse.cli import main
    from perse.core.ply import read_ply

    run_dir, _, _ = tiny_run
    out = tmp_path / "r.png"
    assert main(["render", str(run_dir), "--set", "hair=0.5,glasses=1", "--yaw", "15", "--expr", "smile=0.5",
                 "-o", str(out)]) == 0
    import imageio.v3 as iio

    assert iio.imread(out).shape[-1] == 3
    assert main(["interp", str(run_dir), "--category", "hair", "--to", "2", "--frames", "4",
                 "-o", str(tmp_path / "h.gif")]) == 0
    assert len(iio.imread(tmp_path / "h.gif", index=None)) == 6  # 4 there, 2 back
    assert main(["export", str(run_dir), "--ply", str(tmp_path / "a.ply"), "--max-gaussians", "100"]) == 0
    assert len(read_ply(tmp_path / "a.ply")) == 100
    assert main(["render", str(run_dir), "--set", "hat=1", "-o", str(out)]) == 2
    assert "unknown category 'hat'" in capsys.readouterr().err


def test_a_draft_avatar_opens_before_the_full_one(tmp_path):
    from perse.avatar.avatar import Avatar

    config = build_config("tiny", overrides=FAST + ["device=cpu", "draft.enabled=true", "draft.steps=10",
                                                    "draft.frames=2", "draft.num_gaussians=300"])
    events = list(run(PHOTO, tmp_path, config, until="train"))
    assert list(dict.fromkeys(e.stage for e in events)) == ["ingest", "draft", "synth", "train"]
    draft_events = [e for e in events if e.stage == "draft"]
    fractions = [e.fraction for e in draft_events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert draft_events[-1].avatar == str(tmp_path / "draft")
    # Ingested once: the draft starts from the run's own portrait.
    assert (tmp_path / "draft" / "portrait.png").read_bytes() == (tmp_path / "portrait.png").read_bytes()
    draft = Avatar.load(tmp_path / "draft", "cpu")
    full = Avatar.load(tmp_path, "cpu")
    assert list(draft.categories) == list(full.categories) and draft.expression_names == full.expression_names
    assert len(draft.model.means) == 300 < len(full.model.means)
    assert draft.render(size=32).shape == (32, 32, 3)
    # Training's checkpoints and its end each name the folder it trains in (the workspace, which links
    # to the committed outputs once the run is done) to reopen.
    trained = [e.avatar for e in events if e.stage == "train" and e.avatar]
    assert len(trained) == 2 and set(trained) == {str(tmp_path / ".work")}
    assert Avatar.load(tmp_path / ".work", "cpu").categories == full.categories
    assert not (tmp_path / "renders").exists()
    # Once the full avatar is trained, a rerun neither rebuilds nor shows the draft.
    again = list(run(PHOTO, tmp_path, config, until="train"))
    assert {e.stage for e in again} == {"ingest", "synth", "train"}
    assert all(e.message.endswith("up to date, skipped") for e in again)
