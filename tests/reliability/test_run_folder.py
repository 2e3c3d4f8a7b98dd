"""A run folder is changed as a transaction: a re-run that fails or is interrupted at any stage leaves
the previous complete result, report included, exactly as it was; an interrupted build resumes (training
bit-exactly); a damaged output is never called up to date; an interrupted swap is completed."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from perse.cli import main
from perse.errors import Cancelled
from perse.events import CancelToken
from perse.pipeline import STAGES, Workspace, run

# A setting that makes each stage (and those after it) redo its work.
CHANGES = {
    "ingest": "ingest.matte_feather_px=3.0",
    "synth": "synth.frames=3",
    "train": "avatar.steps=7",
    "export": "export.turntable_frames=3",
    "metrics": "export.turntable_frames=3",
}


def _interrupt(events, stage: str, how: str, cancel: CancelToken) -> None:
    """Consume `events` until `stage` starts working, then stop them: `cancel` as Ctrl-C does (the stage
    stops at its next check), or `kill`: stop pulling events and close the generator, as a killed process
    stops, mid-stage."""
    if how == "cancel":
        with pytest.raises(Cancelled, match=f"stopped during ({'|'.join(STAGES)}); the run folder still holds"):
            for event in events:
                if event.stage == stage and "skipped" not in event.message:
                    cancel.cancel()
        return
    for event in events:
        if event.stage == stage and "skipped" not in event.message:
            events.close()
            return
    pytest.fail(f"{stage} never started")


@pytest.mark.parametrize("how", ["cancel", "kill"])
@pytest.mark.parametrize("stage", STAGES)
def test_an_interrupted_rerun_with_a_changed_setting_keeps_the_previous_result(
        run_copy, photo, mini_config, take_snapshot, assert_usable, stage, how):
    before = take_snapshot(run_copy)
    cancel = CancelToken()
    _interrupt(run(photo, run_copy, mini_config(CHANGES[stage]), cancel=cancel), stage, how, cancel)
    assert take_snapshot(run_copy) == before
    assert_usable(run_copy)


def test_a_failed_rerun_with_a_faceless_photo_keeps_the_previous_result(run_copy, mini_args, tmp_path, capsys,
                                                                      take_snapshot, assert_usable):
    from perse.core.io import save_png

    blank = tmp_path / "wall.png"
    save_png(blank, np.full((256, 256, 3), 0.6, np.float32))
    before = take_snapshot(run_copy)
    assert main(["run", str(blank), "--out", str(run_copy), *mini_args]) == 2
    err = capsys.readouterr().err.strip()
    # Progress lines, then the error as the one last line.
    assert err.splitlines()[-1].startswith("error: ") and "no face found" in err and "Traceback" not in err
    assert take_snapshot(run_copy) == before
    assert_usable(run_copy)


def test_interrupted_training_resumes_bit_exactly(run_copy, finished_run, photo, mini_config, take_snapshot):
    """Lose the trained avatar, rebuild it, stop half-way, then finish: the same model as never stopped."""
    import shutil

    shutil.rmtree(run_copy / "avatar")
    config = mini_config()
    cancel = CancelToken()
    with pytest.raises(Cancelled):
        for event in run(photo, run_copy, config, cancel=cancel):
            if event.stage == "train" and event.metrics.get("step", 0) >= 3:
                cancel.cancel()
    staged = torch.load(run_copy / ".work" / "avatar" / "checkpoint.pt", weights_only=True)
    assert 3 <= staged["step"] < config.avatar.steps
    messages = [event.message for event in run(photo, run_copy, config)]
    assert any(f"from step {staged['step']}" in message for message in messages), messages
    resumed = torch.load(run_copy / "avatar" / "checkpoint.pt", weights_only=True)
    original = torch.load(finished_run / "avatar" / "checkpoint.pt", weights_only=True)
    assert resumed["step"] == original["step"] == config.avatar.steps
    for name, tensor in original["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    # Export and metrics were made from this same avatar: still current, kept.
    assert take_snapshot(run_copy)["renders/samples.png"] == take_snapshot(finished_run)["renders/samples.png"]


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_checkpoint_is_not_called_up_to_date(run_copy, photo, mini_config, damage):
    checkpoint = run_copy / "avatar" / "checkpoint.pt"
    data = checkpoint.read_bytes()
    if damage == "truncate":
        checkpoint.write_bytes(data[: len(data) // 2])
    else:
        middle = len(data) // 2
        checkpoint.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    events = run(photo, run_copy, mini_config())
    for event in events:
        if event.stage == "train":
            assert "up to date" not in event.message
            events.close()
            break
    else:
        pytest.fail("training never started")


def test_a_run_from_before_manifests_is_verified_and_gets_them(run_copy, photo, mini_config):
    stages = run_copy / "stages.json"
    recorded = json.loads(stages.read_text())
    stages.write_text(json.dumps({"done": recorded["done"], "started": recorded["done"]}))
    assert all(event.message.endswith("up to date, skipped") for event in run(photo, run_copy, mini_config()))
    assert json.loads(stages.read_text())["files"] == recorded["files"]


def test_an_interrupted_swap_is_completed_by_the_next_writer(tmp_path, monkeypatch):
    """A crash between moving two rebuilt outputs into place: the next writer finishes the journal."""
    run_dir = tmp_path / "run"
    (run_dir / "renders").mkdir(parents=True)
    (run_dir / "renders" / "old.gif").write_text("old")
    (run_dir / "report.json").write_text("old")
    work = Workspace(run_dir)
    (work.root / "renders").mkdir(parents=True)
    (work.root / "renders" / "new.gif").write_text("new")
    (work.root / "report.json").write_text("new")
    (work.journal).write_text(json.dumps({"move": ["renders", "report.json"], "config": {"seed": 1},
                                          "state": {"done": {"export": "k"}, "files": {}}}))
    real_rename = os.rename
    calls = []

    def crash_on_third(src, dst):
        calls.append(src)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process dies here
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        work.finish()
    monkeypatch.setattr(os, "rename", real_rename)
    Workspace(run_dir).finish()
    assert sorted(p.name for p in (run_dir / "renders").iterdir()) == ["new.gif"]
    assert (run_dir / "report.json").read_text() == "new"
    assert json.loads((run_dir / "stages.json").read_text())["done"] == {"export": "k"}
    assert not work.journal.exists() and (work.root / "renders").is_symlink()


def test_a_stage_redone_for_a_damaged_output_redoes_every_later_stage(run_copy, photo, mini_config):
    """The dataset fails verification (as an old one does after an upgrade): the avatar, renders and report
    that came from it must not be called up to date, though their settings did not change."""
    frame = next((run_copy / "dataset" / "clips").rglob("*.png"))
    frame.write_bytes(frame.read_bytes()[:-10])
    events = list(run(photo, run_copy, mini_config()))
    skipped = {e.stage for e in events if e.message.endswith("up to date, skipped")}
    worked = {e.stage for e in events if not e.message.endswith("up to date, skipped")}
    assert skipped == {"ingest"} and worked == {"synth", "train", "export", "metrics"}
