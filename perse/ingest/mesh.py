"""mediapipe models (loaded once per process, shared by threads) and the face-mesh topology we use.

mediapipe 0.10.21 ships its face detection, face mesh (478 points with iris) and selfie segmentation
models inside the wheel, so all of this works offline. Its graphs are not re-entrant: each model object is
guarded by its own lock, which keeps concurrent ingests (e.g. two app users) correct.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from perse.errors import PerseError

# Named points of the 478-point mesh ("image-left" = the person's right side in a non-mirrored photo).
BROW_CENTER = 9  # between the eyebrows
CHIN = 152
NOSE_TIP = 1
SUBNASALE = 2  # where the nose meets the upper lip
FOREHEAD_TOP = 10  # top of the mesh's face oval
SIDE_LEFT, SIDE_RIGHT = 234, 454  # face oval sides at ear level (image-left, image-right)
EYE_OUTER_LEFT, EYE_INNER_LEFT = 33, 133  # image-left eye corners
EYE_INNER_RIGHT, EYE_OUTER_RIGHT = 362, 263
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
IRIS_LEFT, IRIS_RIGHT = 468, 473  # iris centres (image-left, image-right)
NOSE_WING_LEFT, NOSE_WING_RIGHT = 98, 327
NUM_LANDMARKS = 478


def _chains(edges: frozenset) -> list[list[int]]:
    """Order an undirected edge set into its connected paths/cycles (each cycle without repeating its start)."""
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    seen: set[int] = set()
    chains = []
    # Start open chains at their ends so they come out in order; cycles can start anywhere.
    starts = [v for v, n in neighbours.items() if len(n) == 1] + list(neighbours)
    for start in starts:
        if start in seen:
            continue
        chain, previous, current = [start], None, start
        seen.add(start)
        while True:
            step = [n for n in neighbours[current] if n != previous and n not in seen]
            if not step:
                break
            previous, current = current, step[0]
            chain.append(current)
            seen.add(current)
        chains.append(chain)
    return chains


@dataclass(frozen=True)
class Topology:
    """Landmark-index outlines of the mesh regions, derived from mediapipe's own edge sets."""

    face_oval: tuple[int, ...]
    lips: tuple[tuple[int, ...], tuple[int, ...]]  # the two lip outlines, in no particular order
    eyes: tuple[tuple[int, ...], tuple[int, ...]]
    brows: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]  # per brow: its upper and lower edge lines
    nose: tuple[int, ...]  # the points of the nose; its region is their convex hull


@functools.cache
def topology() -> Topology:
    from mediapipe.python.solutions import face_mesh_connections as fm

    def loop(edges: frozenset) -> tuple[int, ...]:
        (chain,) = _chains(edges)
        return tuple(chain)

    def lines(edges: frozenset) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(chain) for chain in _chains(edges))

    return Topology(
        face_oval=loop(fm.FACEMESH_FACE_OVAL),
        lips=lines(fm.FACEMESH_LIPS),
        eyes=(loop(fm.FACEMESH_RIGHT_EYE), loop(fm.FACEMESH_LEFT_EYE)),
        brows=(lines(fm.FACEMESH_RIGHT_EYEBROW), lines(fm.FACEMESH_LEFT_EYEBROW)),
        nose=tuple(sorted({i for edge in fm.FACEMESH_NOSE for i in edge})),
    )


def polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


@dataclass
class Outlines:
    """Region outlines in pixel coordinates for one face: (N, 2) float arrays."""

    face_oval: np.ndarray
    lips_outer: np.ndarray
    lips_inner: np.ndarray
    eyes: list[np.ndarray]
    brows: list[np.ndarray]
    nose: np.ndarray


def outlines(landmarks: np.ndarray) -> Outlines:
    """Turn the topology into pixel polygons; orientation and outer/inner are decided from the geometry."""
    topo = topology()
    xy = np.asarray(landmarks, dtype=np.float64)[:, :2]
    lips = sorted((xy[list(chain)] for chain in topo.lips), key=polygon_area)
    brows = []
    for upper, lower in topo.brows:
        a, b = xy[list(upper)], xy[list(lower)]
        # Join the two edge lines end to start so the outline does not cross itself.
        if np.linalg.norm(a[-1] - b[0]) > np.linalg.norm(a[-1] - b[-1]):
            b = b[::-1]
        brows.append(np.concatenate([a, b]))

    nose = xy[list(topo.nose)].astype(np.float32)
    return Outlines(
        face_oval=xy[list(topo.face_oval)],
        lips_outer=lips[1],
        lips_inner=lips[0],
        eyes=[xy[list(eye)] for eye in topo.eyes],
        brows=brows,
        nose=cv2.convexHull(nose)[:, 0, :].astype(np.float64),
    )


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _native_stderr_silenced():
    """mediapipe's C++ logs (TFLite delegate, absl "feedback manager" notes) go straight to file
    descriptor 2 when a graph is built and first run; they mean nothing to a user, so hide them then.
    One thread at a time: two overlapping redirections could restore each other's /dev/null."""
    with _STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:  # no usable stderr (e.g. a daemon): nothing to hide
            yield
            return
        try:
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _found_something(result) -> bool:
    return bool(getattr(result, "multi_face_landmarks", None) or getattr(result, "detections", None)
                or getattr(result, "segmentation_mask", None) is not None)


class _Guarded:
    """A mediapipe solution object plus the lock that serialises calls into it.

    Its logs are hidden until a run has found something: the first face a graph sees logs too (a face
    mesh's "NORM_RECT without IMAGE_DIMENSIONS"), also after an empty warm-up picture."""

    def __init__(self, factory):
        self._factory = factory
        self._model = None
        self._quiet = True
        self._lock = threading.Lock()

    def process(self, rgb: np.ndarray):
        rgb = np.ascontiguousarray(rgb)
        with self._lock:
            if not self._quiet:
                return self._model.process(rgb)
            with _native_stderr_silenced():
                if self._model is None:
                    self._model = self._factory()
                result = self._model.process(rgb)
            self._quiet = not _found_something(result)
            return result


def _solutions():
    try:
        from mediapipe.python import solutions
    except ImportError as exc:  # a broken install must not look like "no face"
        raise PerseError(
            f"mediapipe cannot be imported ({exc}); install the pinned version: pip install mediapipe==0.10.21"
        ) from exc
    return solutions


# Full range finds small faces in big photos; short range is mediapipe's better model for close-ups.
FACE_DETECTORS = tuple(
    _Guarded(functools.partial(lambda m: _solutions().face_detection.FaceDetection(
        model_selection=m, min_detection_confidence=0.5), m))
    for m in (1, 0)
)
FACE_MESH = _Guarded(lambda: _solutions().face_mesh.FaceMesh(
    static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.5))
SELFIE_SEGMENTATION = _Guarded(lambda: _solutions().selfie_segmentation.SelfieSegmentation(model_selection=0))


class _UprightFaceDetector:
    """dlib's HOG frontal-face detector: it fires on upright faces only, which is what we ask it.

    Without dlib every face counts as upright: photos turned by more than a quarter turn (and without
    EXIF orientation) then ingest upside down, everything else is unaffected.
    """

    def __init__(self):
        self._detector = None
        self._lock = threading.Lock()

    def __call__(self, rgb: np.ndarray) -> bool:
        with self._lock:
            if self._detector is None:
                try:
                    import dlib

                    self._detector = dlib.get_frontal_face_detector()
                except ImportError:
                    self._detector = False
            if self._detector is False:
                return True
            return len(self._detector(np.ascontiguousarray(rgb), 0)) > 0


upright_face_found = _UprightFaceDetector()
