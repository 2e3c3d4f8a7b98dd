"""Shared fixtures, created lazily once per test session: the public-domain portraits ingested at a
CPU-friendly size, and a procedural dataset with avatars trained on it (toy scale)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from perse.testing.procedural import write_procedural_dataset
from perse.testing.training import tiny_config

# The project's shared test portraits, committed in assets/ (see assets/README.md) so CI has them.
PORTRAITS = Path(__file__).resolve().parents[1] / "assets"
INGEST_TEST_SIZE = 256


def portrait_paths() -> dict[str, Path]:
    paths = {p.stem: p for p in sorted(PORTRAITS.glob("*")) if p.suffix.lower() in (".jpg", ".png")}
    assert {"obama", "biden2", "grace_hopper", "astronaut"} <= set(paths), f"test portraits missing from {PORTRAITS}"
    return paths


@pytest.fixture(scope="session")
def shared_portraits() -> dict[str, Path]:
    return portrait_paths()


@pytest.fixture(scope="session")
def ingest_config():
    from perse.config import build_config

    return build_config("fast", overrides={"ingest.size": INGEST_TEST_SIZE})


@pytest.fixture(scope="session")
def ingested(shared_portraits, ingest_config, tmp_path_factory):
    """name -> (Portrait, run folder) for every shared portrait, ingested to disk once."""
    from perse.ingest import ingest_to_run

    root = tmp_path_factory.mktemp("ingested")
    return {name: (ingest_to_run(path, root / name, ingest_config), root / name)
            for name, path in shared_portraits.items()}


@pytest.fixture(scope="session")
def procedural_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("procedural")
    write_procedural_dataset(run, size=64, frames=8, init_points=True, expression_range=0.5)
    return run


def _trained(procedural_run: Path, tmp_path_factory, name: str, **overrides) -> Path:
    from perse.avatar.train import train

    run = tmp_path_factory.mktemp(name)
    shutil.copytree(procedural_run / "dataset", run / "dataset")
    events = list(train(run, tiny_config(**overrides)))
    assert events[-1].fraction == 1.0
    return run


@pytest.fixture(scope="session")
def trained_run(procedural_run, tmp_path_factory) -> Path:
    return _trained(procedural_run, tmp_path_factory, "trained")


@pytest.fixture(scope="session")
def trained_run_without_interp(procedural_run, tmp_path_factory) -> Path:
    return _trained(procedural_run, tmp_path_factory, "trained_no_interp", **{"avatar.interp_weight": 0.0})
