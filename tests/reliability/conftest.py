"""One finished run of the whole pipeline, built once per session at the smallest useful scale, that
the reliability tests copy and then damage, interrupt or feed bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest

from perse.config import PipelineConfig, build_config

PHOTO = Path(__file__).resolve().parents[2] / "assets" / "obama.jpg"
# One category, no held-out looks, a handful of steps and frames: every stage runs, fast.
MINI = ["device=cpu", "synth.categories=hair", "synth.holdout_looks=0", "synth.frames=4", "avatar.num_gaussians=300",
        "avatar.steps=6", "avatar.checkpoint_every=3", "avatar.preview_every=3", "avatar.holdout_every=2",
        "export.turntable_formats=gif", "export.turntable_frames=2", "export.interp_frames=2"]


@pytest.fixture(scope="session")
def mini_config() -> Callable[..., PipelineConfig]:
    """The MINI config, with more `section.key=value` overrides on top."""
    return lambda *overrides: build_config("tiny", overrides=MINI + list(overrides))


@pytest.fixture(scope="session")
def mini_args() -> list[str]:
    """MINI as CLI arguments."""
    return ["--preset", "tiny", *(arg for item in MINI for arg in ("--override", item))]


@pytest.fixture(scope="session")
def photo() -> Path:
    return PHOTO


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, mini_config) -> Path:
    from perse.pipeline import run

    folder = tmp_path_factory.mktemp("finished") / "run"
    events = list(run(PHOTO, folder, mini_config()))
    assert events[-1].stage == "metrics" and (folder / "report.json").is_file()
    return folder


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    """A private copy of the finished run (its workspace links copied as links)."""
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy, symlinks=True)
    return copy


def snapshot(run: Path) -> dict[str, str]:
    """Every committed file's content hash, plus the settings and stage records: what a user has."""
    from perse.pipeline import STAGES, manifest

    files = {name: digest for stage in STAGES for name, (_, digest) in manifest(run, stage).items()}
    state = json.loads((run / "stages.json").read_text())
    return {**files, "config.json": (run / "config.json").read_text(), "done": json.dumps(state["done"]),
            "files": json.dumps(state["files"], sort_keys=True)}


@pytest.fixture(scope="session")
def take_snapshot() -> Callable[[Path], dict[str, str]]:
    return snapshot


@pytest.fixture(scope="session")
def assert_usable() -> Callable[[Path], None]:
    """The run's avatar loads, renders, and its report is there: the result is not lost."""

    def check(run: Path) -> None:
        from perse.avatar.avatar import Avatar

        image = Avatar.load(run, device="cpu").render({"hair": 1}, yaw=10)
        assert image.shape[-1] == 3 and image.max() > 0
        assert json.loads((run / "report.json").read_text())["reconstruction"]["frames"] > 0
        assert not (run / ".lock").exists(), "the writer left its lock behind"

    return check
