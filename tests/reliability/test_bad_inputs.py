"""A corpus of bad command lines and API values: each ends with one line saying what is wrong and what is
allowed, a non-zero exit, no traceback, and no file written."""
from __future__ import annotations

import errno
import math
import os
import tempfile

import pytest

from perse.avatar.avatar import Avatar
from perse.cli import main
from perse.errors import PerseError

# {run}: the finished run, {tmp}: an empty folder, {photo}: a good portrait; (argv, what the message says).
CORPUS = [
    ("", "required: COMMAND"),
    ("bogus", "invalid choice: 'bogus'"),
    ("run {photo}", "required: --out"),
    ("run {tmp}/missing.jpg --out {tmp}/r", "no such file"),
    ("run {tmp} --out {tmp}/r", "is a folder, not a photo"),
    ("run /dev/zero --out {tmp}/r", "not a regular file"),
    ("run {tmp}/fifo --out {tmp}/r", "not a regular file"),
    ("run {tmp}/huge.jpg --out {tmp}/r --override ingest.max_megapixels=1", "more than any photo"),
    ("run {tmp}/empty.jpg --out {tmp}/r", "is empty"),
    ("run {photo} --out {photo}", "is a file, not a run folder"),
    ("run {photo} --out {tmp}/r --preset huge", "unknown preset 'huge'"),
    ("run {photo} --out {tmp}/r --override avatar.steps=0", "allowed: an integer >= 1"),
    ("run {photo} --out {tmp}/r --override avatar.steps=-5", "allowed: an integer >= 1"),
    ("run {photo} --out {tmp}/r --override avatar.num_gaussians=0", "allowed: an integer >= 1"),
    ("run {photo} --out {tmp}/r --override synth.frames=0", "allowed: an integer >= 1"),
    ("run {photo} --out {tmp}/r --override synth.size=8", "allowed: an integer in [32, 4096]"),
    ("run {photo} --out {tmp}/r --override export.fps=0", "allowed: an integer in [1, 120]"),
    ("run {photo} --out {tmp}/r --override avatar.lr=nan", "not a finite number"),
    ("run {photo} --out {tmp}/r --override avatar.lr=inf", "not a finite number"),
    ("run {photo} --out {tmp}/r --override avatar.interp_start=1.5", "allowed: a number in [0, 1]"),
    ("run {photo} --out {tmp}/r --override avatar.holdout_every=1", "allowed: 0 or an integer >= 2"),
    ("run {photo} --out {tmp}/r --override synth.interp_ts=0,0.5", "allowed: a number in (0, 1)"),
    ("run {photo} --out {tmp}/r --seed -1", "allowed: an integer in [0, 4294967295]"),
    ("run {photo} --out {tmp}/r --override avatar.stepz=3", "unknown config key"),
    ("synth {tmp}/missing", "no such run folder"),
    ("train {tmp}/missing", "no such run folder"),
    ("render {run} -o {tmp}/x.png --yaw nan", "yaw must be a number in [-180, 180]"),
    ("render {run} -o {tmp}/x.png --yaw inf", "yaw must be a number in [-180, 180]"),
    ("render {run} -o {tmp}/x.png --pitch 91", "pitch must be a number in [-90, 90]"),
    ("render {run} -o {tmp}/x.png --pitch abc", "invalid float value: 'abc'"),
    ("render {run} -o {tmp}/x.png --size 0", "--size must be a whole number in [1, 4096]"),
    ("render {run} -o {tmp}/x.png --size 100000", "--size must be a whole number in [1, 4096]"),
    ("render {run} -o {tmp}/x.png --set hair=nan", "'hair' slider position must be a number in [0, 2]"),
    ("render {run} -o {tmp}/x.png --set hair=3", "'hair' slider position must be a number in [0, 2]"),
    ("render {run} -o {tmp}/x.png --set hair=-1", "'hair' slider position must be a number in [0, 2]"),
    ("render {run} -o {tmp}/x.png --set hat=1", "unknown category 'hat'"),
    ("render {run} -o {tmp}/x.png --set hair", "must look like name=value"),
    ("render {run} -o {tmp}/x.png --expr smile=nan", "expression 'smile' must be a number in [0, 1]"),
    ("render {run} -o {tmp}/x.png --expr smile=5", "expression 'smile' must be a number in [0, 1]"),
    ("render {run} -o {tmp}/x.png --expr grin=1", "unknown expression"),
    ("render {run} -o {tmp}/x.png --sample -1", "--sample must be a whole number"),
    ("render {run} -o {tmp}", "is a folder; give a file name ending in .png"),
    ("render {run} -o {tmp}/x.jpg", "must end in .png"),
    ("render {run} -o {tmp}/missing/x.png", "does not exist; create the folder first"),
    ("render {photo} -o {tmp}/x.png", "is missing: this run has no trained avatar"),
    ("interp {run} --category hair --to 1 --frames 0 -o {tmp}/a.gif", "--frames must be a whole number"),
    ("interp {run} --category hair --to 1 --fps 0 -o {tmp}/a.gif", "--fps must be a whole number in [1, 120]"),
    ("interp {run} --category hair --to 1 --yaw nan -o {tmp}/a.gif", "yaw must be a number"),
    ("interp {run} --category hair --to 9 -o {tmp}/a.gif", "slider position must be a number in [0, 2]"),
    ("interp {run} --category hair --to 1 -o {tmp}/a.png", "must end in .gif or .mp4"),
    ("sample {run} -n 0 -o {tmp}/s.png", "-n must be a whole number in [1, 64]"),
    ("sample {run} -n 2 --size -4 -o {tmp}/s.png", "--size must be a whole number"),
    ("sample {run} -o {tmp}/s.gif", "must end in .png"),
    ("export {run} --ply {tmp}/a.txt", "must end in .ply"),
    ("export {run} --ply {tmp}", "is a folder"),
    ("export {run} --ply {tmp}/a.ply --max-gaussians 0", "--max-gaussians must be a whole number"),
    ("export {run} --ply {tmp}/a.ply --expr blink=-0.5", "expression 'blink' must be a number in [0, 1]"),
]


@pytest.fixture
def places(finished_run, photo, tmp_path) -> dict[str, str]:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "empty.jpg").touch()
    with (tmp_path / "huge.jpg").open("wb") as handle:
        handle.truncate(64 << 20)  # sparse: costs no disk
    return {"run": str(finished_run), "photo": str(photo), "tmp": str(tmp_path)}


@pytest.mark.parametrize("command, message", CORPUS, ids=[argv or "(none)" for argv, _ in CORPUS])
def test_a_bad_command_line_gets_one_clear_line(places, capsys, command, message):
    before = sorted(os.listdir(places["tmp"]))
    code = main(command.format(**places).split())
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and message in err, err
    assert sorted(os.listdir(places["tmp"])) == before, "a failed command left a file behind"


def _refuse(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


@pytest.mark.parametrize("code, advice", [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only"),
                                          (errno.EACCES, "permission denied")])
@pytest.mark.parametrize("stage", ["create", "replace"])
def test_refused_writes_give_advice_and_leave_no_partial_file(finished_run, tmp_path, capsys, monkeypatch,
                                                              code, advice, stage):
    """Disk full or read-only: when the temporary file is created, or when it replaces the target."""
    if stage == "create":
        monkeypatch.setattr(tempfile, "mkstemp", _refuse(code))
    else:
        monkeypatch.setattr(os, "replace", _refuse(code))
    out = tmp_path / "out.png"
    assert main(["render", str(finished_run), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and advice in err, err
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def avatar(finished_run) -> Avatar:
    return Avatar.load(finished_run, device="cpu")


@pytest.mark.parametrize("call, message", [
    (lambda a: a.render(yaw=math.nan), r"yaw must be a number in \[-180, 180\]"),
    (lambda a: a.render(yaw=181), r"yaw must be a number in \[-180, 180\]"),
    (lambda a: a.render(pitch=-math.inf), r"pitch must be a number in \[-90, 90\]"),
    (lambda a: a.render(size=0), r"size must be a number in \[1, 4096\]"),
    (lambda a: a.render(size=32.5), r"size must be a whole number"),
    (lambda a: a.render(expression={"smile": math.nan}), r"expression 'smile' must be a number in \[0, 1\]"),
    (lambda a: a.render(expression=[0] * 7 + [2] + [0] * 6), r"expression 'eyeBlinkLeft' must be a number in \[0, 1\]"),
    (lambda a: a.slider_code("hair", math.nan), r"'hair' slider position must be a number in \[0, 2\]"),
    (lambda a: a.slider_code("hair", 2.5), r"'hair' slider position must be a number in \[0, 2\]"),
    (lambda a: a.slider_code("hat", 0), r"unknown category 'hat'"),
])
def test_the_api_refuses_values_outside_their_range(avatar, call, message):
    with pytest.raises(PerseError, match=message):
        call(avatar)


def test_the_api_accepts_the_ends_of_every_range(avatar):
    image = avatar.render(avatar.latent({"hair": avatar.slider_code("hair", 2.0)}), yaw=-180, pitch=90,
                          expression={name: 1.0 for name in avatar.expression_names}, size=8)
    assert image.shape == (8, 8, 3)
