import logging

import pytest

from perse.avatar.train import train
from perse.config import build_config
from perse.testing.procedural import write_procedural_dataset


@pytest.fixture(scope="session")
def tiny_avatar(tmp_path_factory):
    """(run folder, config) of an avatar trained a dozen steps on a procedural dataset: enough for the hair
    codes to render visibly apart, which is all the app's wiring tests need."""
    run = tmp_path_factory.mktemp("avatar-run")
    write_procedural_dataset(run, size=32, frames=2, n_gaussians=300)
    config = build_config("tiny", overrides=["device=cpu", "avatar.steps=12", "avatar.num_gaussians=300"])
    for _ in train(run, config):
        pass
    return run, config


@pytest.fixture(autouse=True)
def no_server_errors(caplog):
    """A handler that hits an unexpected error logs its traceback and shows a generic message: in these
    tests that is always a failure."""
    caplog.set_level(logging.WARNING, logger="perse.app")
    yield
    errors = [record for record in caplog.records if record.name.startswith("perse.app") and record.levelno >= logging.ERROR]
    assert not errors, "server error logged:\n" + "\n".join(record.getMessage() for record in errors)
