"""`perse batch` at tiny scale on CPU: two real portraits and a text file named x.jpg, run once on a
local Ray (two workers of one core each) and shared by the tests; then what a re-run, a renamed photo
and a damaged run folder do."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from perse.batch import run_batch
from perse.batch.plan import Portrait, is_finished, plan
from perse.batch.summary import PortraitStatus, write_summary
from perse.config import build_config

ASSETS = Path(__file__).resolve().parents[2] / "assets"
OBAMA, GRACE = ASSETS / "obama.jpg", ASSETS / "grace_hopper.jpg"
SMALL = ["device=cpu", "avatar.steps=40", "avatar.checkpoint_every=20", "avatar.preview_every=20", "synth.frames=6",
         "synth.holdout_looks=1", "avatar.holdout_every=3", "export.turntable_frames=4", "export.interp_frames=4"]


@pytest.fixture(scope="module")
def config():
    return build_config("tiny", overrides=SMALL)


@pytest.fixture(scope="module")
def batch(tmp_path_factory, config):
    root = tmp_path_factory.mktemp("batch")
    bad = root / "x.jpg"
    bad.write_text("not a photo, only text with an image's name\n")
    out = root / "out"
    events = []
    # The failing photo first: it ends within seconds and frees its worker for the second portrait.
    rows = run_batch([bad, OBAMA, GRACE], out, config, workers=2, cpus_per_portrait=1, progress=events.append)
    return out, {row.name: row for row in rows}, events


def test_both_portraits_finish_and_the_failing_one_is_reported(batch):
    out, rows, _ = batch
    assert list(rows) == ["x", "obama", "grace_hopper"]
    assert rows["obama"].state == rows["grace_hopper"].state == "done"
    assert rows["x"].state == "failed" and "text file" in rows["x"].message
    for name in ("obama", "grace_hopper"):
        assert (out / name / "report.json").is_file() and (out / name / "avatar" / "avatar.ply").is_file()
    assert not (out / ".lock").exists()


def test_the_summary_lists_every_portrait_with_its_measures(batch):
    out, rows, _ = batch
    report = json.loads((out / "obama" / "report.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    by_name = {row["name"]: row for row in summary["portraits"]}
    assert summary["counts"]["done"] == 2 and summary["counts"]["failed"] == 1
    assert by_name["obama"]["measures"]["psnr"] == report["reconstruction"]["psnr"]
    assert by_name["obama"]["measures"]["identity"] == report["identity"]["mean"]
    assert [g["measure"] for g in by_name["obama"]["goals"]] == [g["measure"] for g in report["goals"]]
    met = sum(g["met"] for g in report["goals"])
    assert by_name["obama"]["goals_met"] == f"{met}/{len(report['goals'])}"
    assert by_name["x"]["measures"] == {} and "text file" in by_name["x"]["message"]

    table = {row["name"]: row for row in csv.DictReader((out / "summary.csv").open())}
    assert set(table) == {"x", "obama", "grace_hopper"}
    for name in ("obama", "grace_hopper"):
        assert table[name]["state"] == "done"
        assert float(table[name]["psnr"]) > 10 and 0 < float(table[name]["ssim"]) <= 1
        assert table[name]["ghost pixels met"] in {"True", "False"}
    assert table["x"]["state"] == "failed" and table["x"]["psnr"] == ""

    page = (out / "summary.html").read_text()
    assert "href='obama/report.html'" in page and "href='grace_hopper/report.html'" in page
    assert "<th title=" in page and "x</th>" in page and "text file" in page


def test_progress_covers_the_whole_batch(batch):
    _, _, events = batch
    assert {event.stage for event in events} == {"batch"}
    last = events[-1]
    assert last.fraction == 1.0
    assert last.metrics["counts"]["done"] == 2 and last.metrics["counts"]["failed"] == 1
    # Each portrait's own stages were shown while it ran.
    seen = {(name, p["stage"]) for event in events for name, p in event.metrics["portraits"].items()
            if p["state"] == "running"}
    assert {("obama", "train"), ("grace_hopper", "train")} <= seen
    assert any(event.message.startswith("x failed: ") for event in events)


def test_a_rerun_skips_finished_portraits_without_starting_ray(batch, config):
    import ray

    out, _, _ = batch
    stages = {name: (out / name / "stages.json").read_bytes() for name in ("obama", "grace_hopper")}
    rows = run_batch([GRACE, OBAMA], out, config, workers=2, cpus_per_portrait=1)
    assert [(row.name, row.state) for row in rows] == [("grace_hopper", "skipped"), ("obama", "skipped")]
    assert not ray.is_initialized()
    assert all((out / name / "stages.json").read_bytes() == data for name, data in stages.items())
    assert rows[1].measures["psnr"] == json.loads((out / "obama" / "report.json").read_text())["reconstruction"]["psnr"]


def test_a_damaged_or_resettled_run_is_not_finished(batch, config, tmp_path):
    out, _, _ = batch
    copy = tmp_path / "obama"
    shutil.copytree(out / "obama", copy, symlinks=True)
    assert is_finished(Portrait("obama", OBAMA, copy), config)
    # Other settings, another photo, or a changed output: the worker's pipeline redoes what is needed.
    assert not is_finished(Portrait("obama", OBAMA, copy), build_config("tiny", overrides=SMALL[:1]))
    assert not is_finished(Portrait("obama", GRACE, copy), config)
    checkpoint = copy / "avatar" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:-10])
    assert not is_finished(Portrait("obama", OBAMA, copy), config)


def test_names_that_collide_get_a_suffix_and_keep_it(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "Obama.jpg", tmp_path / "b" / "obama.png"
    out = tmp_path / "out"
    planned = plan([first, second, first], out)
    assert [(p.name, p.photo) for p in planned] == [("Obama", first), ("obama-2", second)]
    out.mkdir()
    names = {str(p.photo): p.name for p in planned}
    write_summary(out, [PortraitStatus(p.name, str(p.photo), str(p.run_dir)) for p in planned], {}, names)
    # Later batches, in another order or with only one of them, find each photo's folder again.
    assert [p.name for p in plan([second, first], out)] == ["obama-2", "Obama"]
    assert [p.name for p in plan([second], out)] == ["obama-2"]
    third = tmp_path / "summary.json.png"
    assert plan([third], out)[0].name == "summary.json-2"


def test_the_batch_command_is_registered_and_ray_loads_only_when_a_batch_runs():
    from perse.cli import build_parser
    from perse.cli.batch import run

    args = build_parser().parse_args(["batch", "a.jpg", "b.jpg", "--out", "runs", "--workers", "2",
                                      "--address", "auto", "--preset", "tiny"])
    assert args.handler is run and args.photos == [Path("a.jpg"), Path("b.jpg")] and args.workers == 2
    code = "import sys, perse, perse.batch, perse.cli; perse.cli.build_parser(); print('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
