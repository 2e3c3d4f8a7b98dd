"""The app's storage bounds, on a real server process: a killed predecessor's root is swept at start-up,
an upload over the limit is refused, and SIGTERM removes everything the process kept."""
from __future__ import annotations

import json
import subprocess
import sys

import httpx
from appserver import launch, stop


def test_start_up_sweep_upload_limit_and_sigterm_cleanup(tmp_path):
    work = tmp_path / "app"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    stale = work / "sessions" / "perse-studio-killed"
    (stale / "sessions" / "0123" / "builds" / "001").mkdir(parents=True)
    (stale / "cache" / "upload.png").parent.mkdir(parents=True)
    (stale / "cache" / "upload.png").write_bytes(b"old")
    (stale / "owner.json").write_text(json.dumps({"pid": int(dead.stdout), "start": None}))

    server = launch(work, PERSE_MAX_UPLOAD_MB="1")
    try:
        assert not stale.exists(), "the root of a process that is gone must be swept at start-up"
        [root] = list(server.work_root.glob("perse-studio-*"))
        small = httpx.post(f"{server.url}/gradio_api/upload", files={"files": ("small.png", b"x" * 1000)}, timeout=30)
        assert small.status_code == 200, small.text
        big = httpx.post(f"{server.url}/gradio_api/upload", files={"files": ("big.png", b"x" * 1_500_000)}, timeout=30)
        assert big.status_code == 413, (big.status_code, big.text)
        assert (root / "cache").is_dir() and any((root / "cache").rglob("small.png")), "uploads land in the root"
    finally:
        stop(server)  # SIGTERM
    assert server.process.returncode is not None
    assert not root.exists(), f"SIGTERM left {sorted(root.rglob('*'))}\n{server.log_tail()}"
    assert "Traceback" not in server.log.read_text()
