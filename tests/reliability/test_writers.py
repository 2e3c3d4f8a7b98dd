"""One writer per run folder: a second one is refused with the holder named, in the pipeline and in every
stage command; a holder that dies, however abruptly, releases the folder."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from perse.cli import main
from perse.core.lock import RunBusy, run_lock
from perse.pipeline import run


def test_a_second_pipeline_on_the_same_folder_is_refused(tmp_path, photo, mini_config):
    folder = tmp_path / "run"
    with run_lock(folder, "perse run"):
        with pytest.raises(RunBusy, match=rf"is being written by pid {os.getpid()} \(perse run, started "):
            list(run(photo, folder, mini_config()))
    assert not (folder / ".lock").exists()


@pytest.mark.parametrize("command", [["run", "PHOTO", "--out", "RUN"], ["ingest", "PHOTO", "--out", "RUN"],
                                     ["synth", "RUN"], ["train", "RUN"]])
def test_every_writing_command_names_the_holder(tmp_path, photo, capsys, command):
    folder = tmp_path / "run"
    argv = [{"PHOTO": str(photo), "RUN": str(folder)}.get(arg, arg) for arg in command] + ["--preset", "tiny"]
    with run_lock(folder, "perse train"):
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"pid {os.getpid()} (perse train" in err and "wait for it" in err


def test_a_killed_holder_releases_the_folder(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from perse.core.lock import run_lock
        with run_lock({str(folder)!r}, "perse run"):
            print("holding", flush=True)
            time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(RunBusy, match=f"pid {holder.pid} "):
            with run_lock(folder, "perse run"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # It could not clean up: its lock file is still there, naming a dead process, and is taken over.
    assert (folder / ".lock").exists()
    with run_lock(folder, "perse run"):
        assert f'"pid": {os.getpid()}' in (folder / ".lock").read_text()
    assert not (folder / ".lock").exists()
