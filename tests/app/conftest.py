import logging

import pytest


@pytest.fixture(autouse=True)
def no_server_errors(caplog):
    """A handler that hits an unexpected error logs its traceback and shows a generic message: in these
    tests that is always a failure."""
    caplog.set_level(logging.WARNING, logger="perse.app")
    yield
    errors = [record for record in caplog.records if record.name.startswith("perse.app") and record.levelno >= logging.ERROR]
    assert not errors, "server error logged:\n" + "\n".join(record.getMessage() for record in errors)
