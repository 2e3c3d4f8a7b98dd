"""The face tracker's worker processes: the same tracks as one process, and kept for the next clip."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from perse.config import build_config
from perse.drive import track as tracking


def test_workers_track_each_chunk_as_a_fresh_tracker_would_and_stay_for_the_next_clip(animate):
    config = build_config("tiny", overrides={"device": "cpu"}).drive
    frames = animate([{"jawOpen": value} for value in np.linspace(0.0, 1.0, tracking.CHUNK + 4)])
    try:
        tracking.start_tracking(replace(config, track_workers=2), frames=tracking.MIN_FRAMES_FOR_WORKERS)
        pool = tracking.tracker_pool(config, 2)
        first = list(tracking.track(frames, config, workers=2))
        again = list(tracking.track(frames, config, workers=2))
        assert tracking.tracker_pool(config, 2) is pool
    finally:
        tracking.stop_tracking()
    # A chunk follows on from another worker's, so each starts by detecting the face.
    expected = []
    for start in range(0, len(frames), tracking.CHUNK):
        tracker = tracking.FaceTracker(config)
        expected += [tracker(frame) for frame in frames[start:start + tracking.CHUNK]]
    assert all(frame.found for frame in first)
    for pooled in (first, again):
        for one, alone in zip(pooled, expected, strict=True):
            np.testing.assert_allclose(one.features, alone.features, atol=1e-6)
            np.testing.assert_allclose(one.pose, alone.pose, atol=1e-6)
