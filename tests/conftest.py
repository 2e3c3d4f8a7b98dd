"""Shared fixtures: the public-domain portraits, ingested once per test session at a CPU-friendly size."""
from __future__ import annotations

from pathlib import Path

import pytest

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
