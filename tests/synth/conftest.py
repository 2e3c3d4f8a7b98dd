"""Synth fixtures: the shared portraits (ingested once per session by tests/conftest.py) at test sizes."""
from __future__ import annotations

import pytest

EDIT_SIZE = 96


@pytest.fixture(scope="session")
def small_portraits(ingested):
    """name -> Portrait resized to EDIT_SIZE: real masks and landmarks, CPU-cheap."""
    from perse.synth.run import resize_portrait

    return {name: resize_portrait(portrait, EDIT_SIZE) for name, (portrait, _) in ingested.items()}
