"""Retargeting: frames without a face bridged, smoothing without lag, the neutral frame, the avatar's names."""
from __future__ import annotations

import numpy as np
import pytest

from perse.config import DriveConfig
from perse.core.expressions import EXPRESSION_NAMES
from perse.drive.geometric import FEATURES, GeometricEstimator
from perse.drive.retarget import Track, bridge, neutral_frame, one_euro, retarget, smooth
from perse.errors import PerseError

FPS = 30.0
SMOOTHING = (DriveConfig().smoothing_min_cutoff, DriveConfig().smoothing_beta)
LIMITS = (35.0, 20.0, 14.0)  # max yaw, max pitch, field of view


def test_missing_frames_are_interpolated_between_neighbours_and_held_at_the_ends():
    values = np.array([[np.nan], [np.nan], [2.0], [np.nan], [np.nan], [8.0], [np.nan]])
    found = ~np.isnan(values[:, 0])
    assert bridge(values, found)[:, 0].tolist() == [2.0, 2.0, 2.0, 4.0, 6.0, 8.0, 8.0]


def test_a_blink_keeps_its_strength():
    blink = np.zeros((40, 1))
    blink[20:23] = 1.0  # 100 ms
    assert smooth(blink, FPS, *SMOOTHING).max() > 0.9


def test_a_step_reaches_ninety_percent_within_three_frames_and_does_not_start_early():
    step = np.zeros((60, 1))
    step[30:] = 1.0
    out = smooth(step, FPS, *SMOOTHING)[:, 0]
    assert out[32] >= 0.9 and out[:27].max() <= 0.1  # no lag after the step, no long anticipation before it
    assert np.all(np.diff(out) >= -1e-9)  # and no overshoot or ringing


def test_a_still_face_is_steadied():
    noisy = 0.3 + 0.02 * np.random.default_rng(0).standard_normal((120, 1))
    assert smooth(noisy, FPS, *SMOOTHING).std() < 0.5 * noisy.std()
    causal = one_euro(noisy, FPS, *SMOOTHING)
    assert causal.std() < noisy.std() and abs(causal.mean() - 0.3) < 0.01


def _features(frames: int, **changes: tuple[slice, float]) -> np.ndarray:
    """Geometric features of a typical resting face, with `changes` (feature: (frames, added)) applied."""
    features = np.tile(GeometricEstimator.rest, (frames, 1))
    for name, (where, added) in changes.items():
        features[where, FEATURES.index(name)] += added
    return features


def test_the_neutral_frame_is_calm_frontal_and_still():
    frames = 40
    features = _features(frames, lip_gap=(slice(0, 10), 0.2), eye_opening_left=(slice(25, 40), -0.06),
                         corner_out_left=(slice(10, 20), 0.05))
    pose = np.zeros((frames, 3))
    pose[:10, 0] = 25.0  # turned away while the mouth is open
    pose[20:23, 1] = np.array([6.0, 0.0, 6.0])  # frame 21 is frontal but the head is nodding through it
    found = np.ones(frames, bool)
    found[24] = False
    assert neutral_frame(features, GeometricEstimator, pose, found) == 23


def _track(features: np.ndarray, found: np.ndarray | None = None) -> Track:
    frames = len(features)
    found = np.ones(frames, bool) if found is None else found
    rigid = np.tile(np.random.default_rng(1).uniform(100, 200, (1, 28, 3)), (frames, 1, 1))
    pose = np.zeros((frames, 3))
    features = features.copy()
    features[~found], pose[~found], rigid[~found] = np.nan, np.nan, np.nan
    return Track(FPS, features, pose, rigid, (320, 240), "geometric")


def test_controls_are_relative_to_the_neutral_face_and_in_range():
    # This face rests with its mouth a little open and brows high: calm must still drive a calm avatar.
    features = _features(30, lip_gap=(slice(None), 0.05), brow_outer_left=(slice(None), 0.03),
                         brow_outer_right=(slice(None), 0.03))
    features[10:20, FEATURES.index("lip_gap")] += 0.5  # then opens the jaw wide (twice the full scale)
    performance = retarget(_track(features), *SMOOTHING, *LIMITS, neutral=0)
    jaw = performance.controls[:, EXPRESSION_NAMES.index("jawOpen")]
    assert performance.controls.min() >= 0 and performance.controls.max() <= 1
    assert jaw[:5].max() < 0.05 and jaw[14] > 0.98  # (smoothing starts the rise a few frames early)
    assert np.abs(np.delete(performance.controls, EXPRESSION_NAMES.index("jawOpen"), axis=1)[:5]).max() < 0.02
    assert np.abs(performance.yaw).max() < 1e-6 and np.abs(performance.pitch).max() < 1e-6


def test_a_chosen_neutral_frame_must_exist_and_show_a_face():
    found = np.ones(10, bool)
    found[4] = False
    track = _track(_features(10), found)
    with pytest.raises(PerseError, match=r"neutral frame 12 is not in the video: it has 10 frames \(0 to 9\)"):
        retarget(track, *SMOOTHING, *LIMITS, neutral=12)
    with pytest.raises(PerseError, match="no face was found in frame 4.*the nearest with a face is 3"):
        retarget(track, *SMOOTHING, *LIMITS, neutral=4)
    assert retarget(track, *SMOOTHING, *LIMITS).bridged == 1
