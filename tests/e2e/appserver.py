"""Launch app.py in a subprocess on 127.0.0.1 (free port, CPU, its own session root) for end-to-end tests."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PORTRAITS = REPO / "assets"
# What each end-to-end run trains: the tiny preset made cheaper still, so that a whole browser session
# (upload, run, sliders, GIF, 3D view) stays under 3 minutes on two CPU cores.
E2E_OVERRIDES = os.environ.get(
    "PERSE_E2E_OVERRIDES", "synth.values=2;synth.frames=4;avatar.steps=60;avatar.preview_every=20;avatar.holdout_every=4;"
                           "export.interp_frames=4;export.turntable_frames=4")


@dataclass
class Server:
    url: str
    work_root: Path
    log: Path
    process: subprocess.Popen

    def sessions(self) -> list[Path]:
        """The session folders of the app's root (perse.app.session: <root>/sessions/<id>)."""
        return sorted(p for p in self.work_root.glob("perse-studio-*/sessions/*") if p.is_dir())

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tmp: Path, **env: str) -> Server:
    port = _free_port()
    work_root = tmp / "sessions"
    work_root.mkdir(parents=True, exist_ok=True)
    log = tmp / "server.log"
    environment = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1", "PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
        "PERSE_DEVICE": "cpu", "PERSE_WORK_ROOT": str(work_root), "PERSE_APP_OVERRIDES": E2E_OVERRIDES, **env,
    }
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, str(REPO / "app.py")], cwd=REPO, env=environment,
                                   stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", work_root, log, process)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + "/", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    stop(server)
    raise RuntimeError(f"app.py did not answer on {server.url} within 120 s:\n{server.log_tail()}")


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
