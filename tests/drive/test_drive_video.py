"""Driving videos in (every format, streamed, checked) and performances out (MP4 with or without sound, GIF)."""
from __future__ import annotations

import numpy as np
import pytest

from perse.drive import video as videos
from perse.errors import PerseError
from driveclips import pattern_frames, read_back, write_clip


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".webm", ".gif"])
def test_each_format_streams_every_frame(tmp_path, suffix):
    frames = pattern_frames(7)
    info = videos.probe(write_clip(tmp_path / f"clip{suffix}", frames), max_seconds=10)
    assert info.size == (64, 48) and info.fps == pytest.approx(10.0, rel=0.01)
    decoded = list(videos.frames(info, max_seconds=10))
    assert len(decoded) == 7 and decoded[0].shape == (48, 64, 3)
    # Lossy codecs: the frames, not their exact values, must come back in order.
    errors = [np.abs(d.astype(int) - f.astype(int)).mean() for d, f in zip(decoded, frames)]
    assert max(errors) < 12


def test_the_length_limit_is_named(tmp_path):
    clip = write_clip(tmp_path / "long.mp4", pattern_frames(25))  # 2.5 s
    with pytest.raises(PerseError, match=r"long\.mp4 is 2\.5 s long; the limit is 1 s \(drive\.max_seconds\)"):
        videos.probe(clip, max_seconds=1)


def test_a_clip_running_past_the_limit_unannounced_stops_there(tmp_path):
    info = videos.probe(write_clip(tmp_path / "clip.mp4", pattern_frames(25)), max_seconds=10)
    unknown_length = videos.VideoInfo(info.path, info.fps, info.size, None, False)
    with pytest.raises(PerseError, match=r"runs past 1 s, the limit \(drive\.max_seconds\)"):
        list(videos.frames(unknown_length, max_seconds=1))


def test_unusable_files_say_what_is_wrong(tmp_path):
    with pytest.raises(PerseError, match="does not exist"):
        videos.probe(tmp_path / "missing.mp4", 10)
    (tmp_path / "clip.avi").write_bytes(b"RIFF")
    with pytest.raises(PerseError, match=r"'\.avi' is not a supported video format; use \.mp4, \.mov, \.webm, \.gif"):
        videos.probe(tmp_path / "clip.avi", 10)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(PerseError, match=r"empty \(0 bytes\)"):
        videos.probe(tmp_path / "empty.mp4", 10)
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(PerseError, match="cannot be read as a video .*convert it to MP4"):
        videos.probe(tmp_path / "noise.mp4", 10)


def test_a_file_without_pictures_is_refused(tmp_path):
    import subprocess

    sound = tmp_path / "sound.mp4"
    subprocess.run([videos.ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1",
                    "-c:a", "aac", str(sound)], check=True)
    with pytest.raises(PerseError, match="has no video stream"):
        videos.probe(sound, 10)


@pytest.mark.parametrize("with_audio", [True, False])
def test_the_writer_streams_mp4_and_muxes_sound_when_there_is_some(tmp_path, with_audio):
    source = write_clip(tmp_path / "source.mp4", pattern_frames(10), audio_seconds=1.0 if with_audio else None)
    out = tmp_path / "out.mp4"
    with videos.performance_writer(out, (33, 21), 10.0, source if with_audio else None, 256) as writer:
        for frame in pattern_frames(10, 33, 21):
            writer.write(frame)
    meta, frames = read_back(out)
    assert len(frames) == 10 and meta["size"] == (34, 22)  # padded to even sides for H.264
    assert bool(meta.get("audio_codec")) == with_audio
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["source.mp4", "out.mp4"])  # no leftovers


def test_gif_output_is_one_palette_pass_over_the_mp4(tmp_path):
    out = tmp_path / "out.gif"
    with videos.performance_writer(out, (64, 48), 10.0, None, gif_height=24) as writer:
        for frame in pattern_frames(6):
            writer.write(frame)
    meta, frames = read_back(out)
    assert len(frames) == 6 and meta["size"] == (32, 24)
    assert [p.name for p in tmp_path.iterdir()] == ["out.gif"]


def test_a_failed_render_leaves_no_file(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="render failed"):
        with videos.performance_writer(out, (16, 16), 10.0, None, 256) as writer:
            writer.write(pattern_frames(1, 16, 16)[0])
            raise RuntimeError("render failed")
    assert list(tmp_path.iterdir()) == []


def test_side_by_side_scales_the_driving_frame_to_the_render():
    row = videos.side_by_side(np.zeros((48, 64, 3), np.uint8), np.ones((32, 32, 3)))
    assert row.shape == (32, 43 + 32, 3) and row[0, -1, 0] == 255
