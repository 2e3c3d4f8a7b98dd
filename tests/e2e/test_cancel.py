"""Cancel stops a build in the middle of training; pressing Run again resumes instead of starting over."""
from __future__ import annotations

import re
import time

import pytest
from appserver import PORTRAITS

pytestmark = pytest.mark.slow


def _statuses(job) -> list[str]:
    return [output[0] for output in job.outputs() if output and isinstance(output[0], str)]


def test_cancel_then_run_again_resumes(app_server):
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False)
    photo = handle_file(str(PORTRAITS / "obama.jpg"))
    job = client.submit(photo, ["hair"], "tiny", api_name="/run")
    deadline = time.monotonic() + 120
    # Cancel once training has taken a few steps, so there is progress to resume from.
    while not any(int(m) >= 5 for s in _statuses(job) for m in re.findall(r"step (\d+)/", s)):
        assert not job.done(), f"the run ended before training: {_statuses(job)[-1:]}\n{app_server.log_tail()}"
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.2)
    assert "Stopping" in client.predict(api_name="/cancel")
    stopped = job.result(timeout=120)[0]
    assert stopped.startswith("**Stopped.**"), stopped

    again = client.submit(photo, ["hair"], "tiny", api_name="/run")
    assert "Avatar ready" in again.result(timeout=300)[0]
    statuses = _statuses(again)
    for stage in ("ingest", "synth"):
        assert any(f"{stage}: up to date, skipped" in s for s in statuses), f"{stage} was redone: {statuses}"
    resumed_at = [int(m) for s in statuses for m in re.findall(r"from step (\d+)", s)]
    assert resumed_at and resumed_at[0] >= 5, f"training restarted instead of resuming: {statuses}"
