import os
from pathlib import Path

import pytest
from appserver import launch, stop


@pytest.fixture(scope="module")
def app_server(tmp_path_factory, request):
    """app.py on a free local port; a test module may set SERVER_ENV to add environment variables."""
    server = launch(tmp_path_factory.mktemp("app"), **getattr(request.module, "SERVER_ENV", {}))
    yield server
    stop(server)


@pytest.fixture
def shots(tmp_path):
    """Where a test saves images for a person to look at: PERSE_E2E_SCREENSHOTS, else the test's tmp dir."""
    folder = Path(os.environ.get("PERSE_E2E_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nimages for review: {folder}")
    return folder
