"""A procedural avatar with held-out looks, trained once per test session at toy scale."""
from __future__ import annotations

from pathlib import Path

import pytest

from perse.config import build_config
from perse.testing.procedural import write_procedural_dataset

# Per category, two held-out looks between its trained looks (blends of codes 1 and 2), as synth
# holds out two looks of every category.
HELD_OUT_BLENDS = (0.35, 0.65)


def toy_config():
    return build_config("tiny", overrides={"device": "cpu", "avatar.steps": 200, "avatar.checkpoint_every": 1000,
                                           "avatar.preview_every": 1000})


@pytest.fixture(scope="session")
def held_out_run(tmp_path_factory) -> Path:
    from perse.avatar.train import train

    run = tmp_path_factory.mktemp("held_out")
    write_procedural_dataset(run, size=64, frames=8, init_points=True, expression_range=0.5,
                             held_out_blends=HELD_OUT_BLENDS)
    events = list(train(run, toy_config()))
    assert events[-1].fraction == 1.0
    return run
