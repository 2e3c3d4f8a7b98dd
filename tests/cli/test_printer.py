import io
import os
import signal

import pytest

from perse.cli.progress import ProgressPrinter, stop_on_ctrl_c
from perse.events import Progress

EVENTS = [Progress("synth", 0.0, "lifting"), Progress("synth", 0.5, "half"),
          Progress("synth", 1.0, "written", image="edits.png"), Progress("train", 0.25, "step 50/200")]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_plain_line_per_event():
    log = io.StringIO()
    ProgressPrinter(log).show(EVENTS)
    lines = log.getvalue().splitlines()
    assert lines == ["[synth   0%] lifting", "[synth  50%] half", "[synth 100%] written  (edits.png)",
                     "[train  25%] step 50/200"]
    assert "\r" not in log.getvalue()


def test_a_terminal_gets_a_live_bar_per_stage():
    terminal = Terminal()
    ProgressPrinter(terminal).show(EVENTS)
    text = terminal.getvalue()
    # Redrawn in place within a stage, one kept line per stage, the last one closed.
    assert text.count("\r") == len(EVENTS)
    lines = text.split("\n")
    assert len(lines) == 3 and lines[-1] == ""
    assert "written" in lines[0].split("\r")[-1] and "train" in lines[1]


def test_the_bar_line_is_closed_when_a_stage_fails():
    def failing():
        yield Progress("train", 0.1, "step 1")
        raise RuntimeError("boom")

    terminal = Terminal()
    with pytest.raises(RuntimeError):
        ProgressPrinter(terminal).show(failing())
    assert terminal.getvalue().endswith("\n")


def test_first_ctrl_c_cancels_the_token_second_interrupts():
    with stop_on_ctrl_c() as token:
        os.kill(os.getpid(), signal.SIGINT)
        assert token.cancelled
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
