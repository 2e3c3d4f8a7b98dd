"""Fixtures of the drive tests: a public-domain portrait animated by the synthesis stage's animator (a real
face with known controls) into frames and a short clip with sound, and a toy avatar to drive."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from driveclips import write_clip

# Small enough for a CPU in a few seconds, large enough for mediapipe's mesh to find the face.
PORTRAIT_SIZE = 256


@pytest.fixture(scope="session")
def portrait(shared_portraits):
    from perse.config import build_config
    from perse.ingest import ingest

    return ingest(shared_portraits["grace_hopper"], build_config("fast", overrides={"ingest.size": PORTRAIT_SIZE}))


@pytest.fixture(scope="session")
def animator(portrait):
    from perse.config import build_config
    from perse.synth.animate import make_animator

    return make_animator("lift", portrait, build_config("tiny", overrides={"device": "cpu"}))


@pytest.fixture(scope="session")
def animate(portrait, animator):
    """(expressions as [{control: value}], yaw degrees) -> uint8 frames of the portrait performing them."""
    from perse.dataset import EXPRESSION_NAMES
    from perse.synth.animate.motion import MotionScript

    def frames(expressions: list[dict[str, float]], yaw: list[float] | None = None) -> list[np.ndarray]:
        matrix = np.array([[e.get(name, 0.0) for name in EXPRESSION_NAMES] for e in expressions])
        turns = np.asarray(yaw if yaw is not None else np.zeros(len(expressions)), np.float64)
        script = MotionScript(turns, np.zeros(len(turns)), matrix, animator.pivot, portrait.fov_deg)
        images = animator.animate(portrait.image.astype(np.float32) / 255, portrait.matte, script).images
        return [np.round(image * 255).astype(np.uint8) for image in images]

    return frames


@pytest.fixture(scope="session")
def face_clip(animate, tmp_path_factory) -> Path:
    """12 frames at 10 fps with a sound track: calm, then the jaw opens and closes, then a blink while
    the head turns."""
    jaw = [0, 0, 0, 0, 0.5, 1, 0.5, 0, 0, 0, 0, 0]
    blink = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]
    yaw = [0, 0, 0, 0, 0, 0, 0, 0, 8, 16, 16, 8]
    frames = animate([{"jawOpen": j, "eyeBlinkLeft": b, "eyeBlinkRight": b} for j, b in zip(jaw, blink)], yaw)
    return write_clip(tmp_path_factory.mktemp("clips") / "face.mp4", frames, audio_seconds=2.0)


@pytest.fixture(scope="session")
def tiny_avatar_run(tmp_path_factory) -> Path:
    """A toy avatar trained for a few steps: the drive tests need its names and renders, not its quality."""
    from perse.avatar.train import train
    from perse.testing.procedural import write_procedural_dataset
    from perse.testing.training import tiny_config

    run = tmp_path_factory.mktemp("tiny_avatar")
    write_procedural_dataset(run, size=32, frames=4, categories=("hair", "glasses"), n_gaussians=300)
    list(train(run, tiny_config(**{"avatar.steps": 10, "avatar.num_gaussians": 300})))
    return run
