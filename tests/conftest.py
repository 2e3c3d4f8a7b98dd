"""Shared fixtures: the public-domain portraits, ingested once per test session at a CPU-friendly size."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_PORTRAITS = Path(__file__).resolve().parents[2] / "shared" / "portraits"
INGEST_TEST_SIZE = 256


def portrait_paths() -> dict[str, Path]:
    paths = {p.stem: p for p in sorted(SHARED_PORTRAITS.glob("*")) if p.suffix.lower() in (".jpg", ".png")}
    if not paths:
        pytest.skip(f"no shared portraits in {SHARED_PORTRAITS}")
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
