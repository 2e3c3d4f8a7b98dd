"""Per frame of a driving video: the face mesh (the ingest stage's mediapipe models), the head pose (the
ingest stage's head rotation) and the blendshape estimator's features (perse.drive.blendshapes).

The face is followed from frame to frame: the mesh is run around where the previous frame's face was,
and the detector only runs when that fails (the first frame, a cut, a face coming back). Long clips
are tracked by worker processes, each with its own mediapipe graphs, on chunks of consecutive frames;
the process keeps them for the next clip (TrackerPool).
"""
from __future__ import annotations

import multiprocessing
import os
import tempfile
import threading
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from perse.drive.blendshapes import make_estimator
from perse.errors import PerseError
from perse.ingest import mesh
from perse.ingest.face import MESH_INPUT, FaceBox, detect_faces, head_pose, mesh_landmarks

# The detector's box spans about this much of the mesh's extent (brow to chin of forehead-to-chin):
# a box made from the previous frame's landmarks then frames the mesh's close-up as a detection would.
BOX_OF_MESH = 0.8
# Frames a worker tracks in one go: long enough that following the face pays, short enough that the
# workers stay busy and little is held in flight.
CHUNK = 16
AUTO_WORKERS_MAX = 16
# Below this many frames, starting worker processes (each imports mediapipe) costs more than it saves.
MIN_FRAMES_FOR_WORKERS = 4 * CHUNK
# Mesh points that no expression moves (forehead, nose, eye corners, the face's sides above the jaw):
# the head's rigid shape, which perse.drive.retarget fits each frame's head rotation to.
RIGID_POINTS = (10, 109, 338, 67, 297, 168, 6, 197, 195, 5, 4, mesh.NOSE_TIP, mesh.EYE_OUTER_LEFT,
                mesh.EYE_INNER_LEFT, mesh.EYE_INNER_RIGHT, mesh.EYE_OUTER_RIGHT, mesh.NOSE_WING_LEFT,
                mesh.NOSE_WING_RIGHT, mesh.SIDE_LEFT, mesh.SIDE_RIGHT, 127, 356, 93, 323, 21, 251, 162, 389)


@dataclass
class FrameTrack:
    landmarks: np.ndarray | None  # (478, 3) in frame pixels, None when no face was found
    features: np.ndarray  # the blendshape estimator's (perse.drive.blendshapes); NaN without a face
    pose: np.ndarray  # (3,) yaw, pitch, roll in degrees (perse.core.camera's convention); NaN without a face

    @property
    def found(self) -> bool:
        return self.landmarks is not None

    @property
    def rigid(self) -> np.ndarray:
        """(len(RIGID_POINTS), 3) of the landmarks; NaN without a face."""
        if self.landmarks is None:
            return np.full((len(RIGID_POINTS), 3), np.nan)
        return self.landmarks[list(RIGID_POINTS)]


def box_from_landmarks(landmarks: np.ndarray) -> FaceBox:
    """A detection-like box around a face mesh, to find the same face in the next frame."""
    xy = np.asarray(landmarks)[:, :2]
    low, high = xy.min(axis=0), xy.max(axis=0)
    side = BOX_OF_MESH * float((high - low).max())
    centre = (low + high) / 2
    eyes = xy[[mesh.IRIS_LEFT, mesh.IRIS_RIGHT]]  # the person's right, then left eye (FaceBox's order)
    return FaceBox(centre[0] - side / 2, centre[1] - side / 2, side, side, 1.0, eyes)


class FaceTracker:
    def __init__(self, config):
        self.estimator = make_estimator(config)
        self.previous: np.ndarray | None = None

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        if self.previous is not None:
            found = mesh_landmarks(rgb, box_from_landmarks(self.previous), eyes_in_order=True)
            if found is not None:
                return found
        boxes = detect_faces(rgb)
        return mesh_landmarks(rgb, boxes[0]) if boxes else None

    @staticmethod
    def warm_up() -> None:
        """Load the detectors' and the mesh's graphs, which load on first use, on an empty picture."""
        blank = np.zeros((MESH_INPUT, MESH_INPUT, 3), np.uint8)
        detect_faces(blank)
        mesh.FACE_MESH.process(blank)

    def __call__(self, rgb: np.ndarray) -> FrameTrack:
        landmarks = self.landmarks(rgb)
        features = None if landmarks is None else self.estimator.features(rgb, landmarks)
        self.previous = landmarks if features is not None else None
        if features is None:
            return FrameTrack(None, np.full(len(self.estimator.rest), np.nan), np.full(3, np.nan))
        pose = head_pose(landmarks)
        return FrameTrack(landmarks, features, np.array([pose["yaw"], pose["pitch"], pose["roll"]]))


_worker_tracker: FaceTracker | None = None


def _start_worker(config) -> None:
    global _worker_tracker
    _worker_tracker = FaceTracker(config)


def _warm_worker() -> None:
    """Load this worker's mediapipe graphs (each loads on its first frame, 0.5 s in all)."""
    _worker_tracker.warm_up()


def _track_chunk(ring: str, shape: tuple[int, ...], first: int, count: int) -> list[FrameTrack]:
    """Track frames first..first+count of the frame ring file `ring` (FrameRing)."""
    frames = np.memmap(ring, np.uint8, "r", shape=(first + count, *shape))
    _worker_tracker.previous = None  # a chunk follows on from another worker's
    return [_worker_tracker(np.asarray(frames[first + index])) for index in range(count)]


class FrameRing:
    """Frames handed to the workers through a file they map, a block of CHUNK frames per chunk in flight.

    Sent through the pool's pipes instead, a 512 px frame cost 2.5 ms to pickle and pass, more than
    tracking it: 500 such frames took 1.2 s with 16 workers doing nothing (H200 machine, 16 cores). A
    file in the temporary folder, not POSIX shared memory: containers often cap /dev/shm at 64 MB, and
    a frame that the page cache holds is read as fast."""

    def __init__(self, shape: tuple[int, ...], blocks: int):
        self.shape = shape
        self.blocks = blocks
        handle, self.path = tempfile.mkstemp(prefix="perse-frames-", suffix=".rgb")
        os.close(handle)
        self.frames = np.memmap(self.path, np.uint8, "w+", shape=(blocks * CHUNK, *shape))

    def put(self, index: int, chunk: list[np.ndarray]) -> int:
        """Copy chunk number `index` into its block; returns the block's first frame."""
        first = (index % self.blocks) * CHUNK
        self.frames[first:first + len(chunk)] = chunk
        return first

    def release(self) -> None:
        del self.frames
        os.unlink(self.path)


class TrackerPool:
    """Worker processes that track chunks of frames, started and warmed up (graphs loaded) at once.

    A process keeps its pool (tracker_pool): starting 16 workers cost 1.7-3.5 s on the H200 machine, more
    than tracking a 20-second clip with them (1.0-1.2 s), so a long-lived process (the app) pays it once,
    at launch, and `perse drive` pays it while the avatar loads."""

    def __init__(self, config, workers: int):
        make_estimator(config)  # a missing model file fails here, once, not in every worker
        self.key = _pool_key(config, workers)
        self.pid = os.getpid()
        # spawn: a forked copy of a process holding torch's (or CUDA's) threads can deadlock.
        context = multiprocessing.get_context("spawn")
        self.executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(config,))
        # One task per worker while none is idle: the executor starts them all now.
        for _ in range(workers):
            self.executor.submit(_warm_worker)

    def usable_for(self, key) -> bool:
        # A forked child (ZeroGPU's GPU calls) inherits the pool's object but not its threads.
        return self.key == key and self.pid == os.getpid()

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


_pool: TrackerPool | None = None
# The app's handlers track on threads of their own: one pool for all of them.
_pool_lock = threading.Lock()


def _pool_key(config, workers: int) -> tuple:
    return config.blendshapes, config.face_landmarker, workers


def start_tracking(config, frames: int | None = None) -> None:
    """Start, without waiting, the workers that tracking a clip of `frames` frames will use (none for a
    clip short enough for one process)."""
    workers = worker_count(config, frames)
    if workers > 1:
        tracker_pool(config, workers)


def tracker_pool(config, workers: int) -> TrackerPool:
    """This process's pool of `workers` trackers for `config`'s estimator, started if need be."""
    global _pool
    with _pool_lock:
        if _pool is None or not _pool.usable_for(_pool_key(config, workers)):
            _stop()
            _pool = TrackerPool(config, workers)
        return _pool


def stop_tracking() -> None:
    """Stop this process's tracking workers (the next clip starts new ones)."""
    with _pool_lock:
        _stop()


def _stop() -> None:
    global _pool
    if _pool is not None and _pool.pid == os.getpid():
        _pool.shutdown()
    _pool = None


def _discard(pool: TrackerPool) -> None:
    global _pool
    with _pool_lock:
        if _pool is pool:
            _pool = None


def worker_count(config, frames: int | None) -> int:
    """How many processes to track with: drive.track_workers, or one per core (at most AUTO_WORKERS_MAX); one
    for short clips."""
    wanted = config.track_workers or min(AUTO_WORKERS_MAX, len(os.sched_getaffinity(0)))
    if frames is not None and frames < MIN_FRAMES_FOR_WORKERS:
        return 1
    return max(1, wanted)


def _chunks(frames: Iterable[np.ndarray]) -> Iterator[list[np.ndarray]]:
    chunk = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def track(frames: Iterable[np.ndarray], config, workers: int = 1) -> Iterator[FrameTrack]:
    """One FrameTrack per frame, in order, streaming: at most two chunks per worker are in flight."""
    if workers <= 1:
        tracker = FaceTracker(config)
        for frame in frames:
            yield tracker(frame)
        return
    pool = tracker_pool(config, workers)
    pending: deque = deque()
    ring = None
    try:
        for index, chunk in enumerate(_chunks(frames)):
            # With fewer than 2 * workers chunks in flight, the block of chunk index - 2 * workers is free.
            ring = ring or FrameRing(chunk[0].shape, 2 * workers)
            first = ring.put(index, chunk)
            pending.append(pool.executor.submit(_track_chunk, ring.path, ring.shape, first, len(chunk)))
            while len(pending) >= 2 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    except BrokenProcessPool as exc:
        _discard(pool)
        raise PerseError(f"a face-tracking worker process died ({exc}); retry with --override "
                         f"drive.track_workers=1") from exc
    finally:
        for future in pending:
            future.cancel()
        if ring is not None:
            ring.release()
