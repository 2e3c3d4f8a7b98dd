import pytest

from appserver import launch, stop


@pytest.fixture(scope="module")
def app_server(tmp_path_factory, request):
    """app.py on a free local port; a test module may set SERVER_ENV to add environment variables."""
    server = launch(tmp_path_factory.mktemp("app"), **getattr(request.module, "SERVER_ENV", {}))
    yield server
    stop(server)
