"""`perse drive` and drive(): a short clip of a real face drives a tiny avatar into a playable file."""
from __future__ import annotations

import numpy as np
import pytest

from perse.cli import main
from perse.config import build_config
from perse.drive import drive, track_events, track_video
from perse.errors import Cancelled, PerseError
from perse.events import CancelToken
from driveclips import pattern_frames, read_back, write_clip

ONE_PROCESS = ["--override", "drive.track_workers=1", "--device", "cpu"]


def test_perse_drive_renders_every_frame_beside_the_video_with_its_sound(tiny_avatar_run, face_clip, tmp_path,
                                                                          capsys):
    out = tmp_path / "performance.mp4"
    assert main(["drive", str(tiny_avatar_run), str(face_clip), "-o", str(out), "--set", "glasses=1", "--size", "32",
                 "--side-by-side", "--keep-audio", *ONE_PROCESS]) == 0
    meta, frames = read_back(out)
    assert len(frames) == 12 and meta["size"] == (64, 32)  # the 256 px clip scaled to 32, then the render
    assert meta["fps"] == pytest.approx(10.0) and meta.get("audio_codec") == "aac"
    printed = capsys.readouterr().out
    assert "12 frames at 10 fps, neutral frame" in printed
    # The avatar moves with the video: its frames are not all alike.
    renders = np.stack(frames)[:, :, 32:].astype(float)
    assert np.abs(renders - renders[0]).mean(axis=(1, 2, 3)).max() > 0.5


def test_a_gif_says_it_cannot_keep_the_sound(tiny_avatar_run, face_clip, tmp_path, capsys):
    out = tmp_path / "performance.gif"
    assert main(["drive", str(tiny_avatar_run), str(face_clip), "-o", str(out), "--keep-audio", "--neutral", "0",
                 *ONE_PROCESS]) == 0
    meta, frames = read_back(out)
    assert len(frames) == 12 and meta["size"] == (32, 32)
    assert "note: a GIF has no sound" in capsys.readouterr().out


def test_a_video_without_a_face_says_so(tiny_avatar_run, tmp_path, capsys):
    clip = write_clip(tmp_path / "wall.mp4", pattern_frames(6))
    assert main(["drive", str(tiny_avatar_run), str(clip), "-o", str(tmp_path / "out.mp4"), *ONE_PROCESS]) == 2
    assert "wall.mp4: no face found in any of its 6 frames" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()


def test_the_api_reports_progress_and_stops_when_cancelled(tiny_avatar_run, face_clip, tmp_path):
    config = build_config("tiny", overrides={"drive.track_workers": 1, "device": "cpu"})
    events = list(drive(tiny_avatar_run, face_clip, tmp_path / "out.mp4", {"hair": 2}, config=config))
    fractions = [event.fraction for event in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert events[-1].clip == str(tmp_path / "out.mp4") and events[-1].metrics["frames"] == 12
    assert events[-1].metrics["audio"] is False  # not asked for
    assert events[-1].metrics["track_seconds"] >= 0 and events[-1].metrics["render_seconds"] >= 0

    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        list(drive(tiny_avatar_run, face_clip, tmp_path / "stopped.mp4", config=config, cancel=cancel))
    assert not (tmp_path / "stopped.mp4").exists()
    with pytest.raises(PerseError, match="must be an .mp4 or a .gif"):
        next(drive(tiny_avatar_run, face_clip, tmp_path / "out.webm", config=config))


def test_a_clip_tracked_beforehand_renders_as_one_tracked_by_drive_itself(tiny_avatar_run, face_clip, tmp_path):
    from perse.drive.video import frames, probe

    config = build_config("tiny", overrides={"drive.track_workers": 1, "device": "cpu"})
    tracking = list(track_events(face_clip, config.drive))
    assert tracking and all(event.fraction <= 0.5 for event in tracking)
    tracked = track_video(face_clip, config.drive)
    events = list(drive(tiny_avatar_run, face_clip, tmp_path / "given.mp4", config=config, tracked=tracked))
    assert all(event.fraction >= 0.5 for event in events)
    list(drive(tiny_avatar_run, face_clip, tmp_path / "own.mp4", config=config))
    given, own = (list(frames(probe(tmp_path / name, 60), 60)) for name in ("given.mp4", "own.mp4"))
    assert len(given) == len(own) == 12
    np.testing.assert_array_equal(np.stack(given), np.stack(own))
