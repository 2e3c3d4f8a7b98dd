"""Usage mistakes end in one line naming the mistake and where help is; --help still prints the help."""
import pytest

from perse.cli import main


def test_a_usage_mistake_is_one_line_pointing_at_the_commands_help(capsys):
    assert main(["render", "runs/x", "--yaw", "left", "-o", "x.png"]) == 2
    err = capsys.readouterr().err
    assert err == "error: argument --yaw: invalid float value: 'left' (see `perse render --help`)\n"


def test_help_still_prints_the_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["render", "--help"])
    assert exit_.value.code == 0 and "usage: perse render" in capsys.readouterr().out
