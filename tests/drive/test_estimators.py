"""Blendshape estimators: the geometric one and mediapipe's landmarker (with the model perse ships) on
animated frames of a real face with known expressions, the landmarker's errors and output mapping."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from perse.config import DriveConfig
from perse.core.expressions import ARKIT_BLENDSHAPES, EXPRESSION_NAMES
from perse.drive.blendshapes import ESTIMATORS, make_estimator
from perse.drive.geometric import GeometricEstimator
from perse.drive.landmarker import ENV, LandmarkerEstimator, model_path, scores_from_result
from perse.drive.retarget import _controls
from perse.drive.track import FaceTracker
from perse.errors import ConfigError, PerseError


def _tracked_controls(frames: list[np.ndarray], estimator: str = "geometric") -> np.ndarray:
    """(T, 14) controls of each frame, relative to the first (the neutral face)."""
    tracker = FaceTracker(DriveConfig(blendshapes=estimator))
    features = np.array([tracker(frame).features for frame in frames])
    return _controls(ESTIMATORS.load(estimator).scores(features, features[0]))


def _column(controls: np.ndarray, name: str) -> np.ndarray:
    return controls[:, EXPRESSION_NAMES.index(name)]


def test_jaw_open_rises_with_the_jaw_and_leads_every_other_control(animate):
    strengths = [0.0, 0.33, 0.67, 1.0]
    controls = _tracked_controls(animate([{"jawOpen": s} for s in strengths]))
    jaw = _column(controls, "jawOpen")
    assert np.all(np.diff(jaw) > 0.1) and jaw[-1] > 0.6
    assert np.all(np.argmax(controls[1:], axis=1) == EXPRESSION_NAMES.index("jawOpen"))


@pytest.mark.parametrize("side", ["Left", "Right"])
def test_one_sided_expressions_read_on_the_person_s_own_side(animate, side):
    other = "Right" if side == "Left" else "Left"
    controls = _tracked_controls(animate([{}, {f"eyeBlink{side}": 1.0}, {f"mouthSmile{side}": 1.0}]))
    # mediapipe's mesh couples the eyelids a little: the other eye reads a fraction of the blink.
    blink, blink_other = _column(controls, f"eyeBlink{side}")[1], _column(controls, f"eyeBlink{other}")[1]
    assert blink > 0.5 and blink > 2 * blink_other
    smile, smile_other = _column(controls, f"mouthSmile{side}")[2], _column(controls, f"mouthSmile{other}")[2]
    assert smile > 0.3 and smile > 2 * smile_other


def test_pucker_funnel_and_brows_are_told_apart(animate):
    controls = _tracked_controls(animate([{}, {"mouthPucker": 1.0}, {"mouthFunnel": 1.0}, {"browOuterUp": 1.0},
                                          {"browDown": 1.0}]))
    for row, name in enumerate(["mouthPucker", "mouthFunnel", "browOuterUp", "browDown"], start=1):
        assert np.argmax(controls[row]) == EXPRESSION_NAMES.index(name), (name, controls[row].round(2))


def test_lips_closing_from_a_parted_rest_read_as_a_press_and_corners_drawn_out_as_a_stretch():
    # A portrait smiling with its teeth showing rests with parted lips: pressing closes them, and a
    # stretch draws them together too while it widens the mouth. Neither is a closing jaw (a pucker),
    # and corners drawn out without rising are no smile.
    from perse.drive.geometric import FEATURES, REST

    def features(**changes: float) -> np.ndarray:
        face = {**REST, "lip_gap": 0.1}
        for name, change in changes.items():
            face[name] += change
        return np.array([face[name] for name in FEATURES])

    rest = features()
    pressed = features(lip_gap=-0.1)
    stretched = features(lip_gap=-0.05, mouth_width=0.12, corner_out_left=0.06, corner_out_right=0.06)
    controls = _controls(GeometricEstimator.scores(np.stack([pressed, stretched]), rest))
    press, stretch = (_column(controls, name) for name in ("mouthPress", "mouthStretch"))
    assert press[0] == 1.0 and stretch[0] == 0.0
    assert stretch[1] > 0.9 and press[1] < 0.1
    assert np.all(_column(controls, "mouthPucker") == 0.0) and np.all(_column(controls, "jawOpen") == 0.0)
    assert np.all(_column(controls, "mouthSmileLeft") == 0.0) and np.all(_column(controls, "mouthSmileRight") == 0.0)


def test_a_nod_is_no_blink_nor_brow_move():
    # mediapipe's lids and brows drift with the head's pitch (perse.drive.geometric.PITCH_SLOPE): a head
    # lowered by 10 degrees, lids and brows drifting as they do, reads as no eye or brow control.
    from perse.drive.geometric import FEATURES, PITCH_SLOPE, REST

    nod = {**REST, "head_pitch": REST["head_pitch"] + 10.0}
    for name, slope in PITCH_SLOPE.items():
        nod[name] += 10.0 * slope
    rest, nodded = (np.array([face[name] for name in FEATURES]) for face in (REST, nod))
    controls = _controls(GeometricEstimator.scores(nodded[None], rest))[0]
    eyes_and_brows = [name for name in EXPRESSION_NAMES if name.startswith(("eye", "brow"))]
    assert all(controls[EXPRESSION_NAMES.index(name)] < 1e-9 for name in eyes_and_brows)


def test_mediapipe_s_model_reads_the_mouth_shapes_it_knows(animate):
    """The shipped face_landmarker.task runs: a pucker and a stretch at full strength read as themselves, well
    above every other control (it reads the animator's jaw mostly as a lower lip pulled down, its eyeWide and
    cheekPuff not at all: docs/drive.md)."""
    controls = _tracked_controls(animate([{}, {"mouthPucker": 1.0}, {"mouthStretch": 1.0}]), "mediapipe")
    for row, name in enumerate(["mouthPucker", "mouthStretch"], start=1):
        assert np.argmax(controls[row]) == EXPRESSION_NAMES.index(name), (name, controls[row].round(2))
        assert controls[row, EXPRESSION_NAMES.index(name)] > 0.3


def test_the_estimators_are_chosen_by_name():
    assert ESTIMATORS.load("geometric") is GeometricEstimator
    assert ESTIMATORS.load("mediapipe") is LandmarkerEstimator
    with pytest.raises(ConfigError, match="unknown blendshape estimator 'arkit' \\(drive.blendshapes\\); choose one "
                                          "of: geometric, mediapipe"):
        ESTIMATORS.resolve("arkit")


def test_the_landmarker_model_is_asked_for_where_it_is_missing(tmp_path, monkeypatch):
    from perse.drive import landmarker

    monkeypatch.delenv(ENV, raising=False)
    assert model_path("") == landmarker.BUNDLED and landmarker.BUNDLED.is_file()  # shipped with perse
    monkeypatch.setattr(landmarker, "BUNDLED", tmp_path / "missing.task")
    with pytest.raises(PerseError, match=f"face_landmarker.task, which its wheel does not ship and this installation "
                                         f"lacks .*missing.task.*{ENV}=PATH"):
        make_estimator(DriveConfig(blendshapes="mediapipe"))
    monkeypatch.setenv(ENV, str(tmp_path / "nowhere.task"))
    with pytest.raises(PerseError, match=f"nowhere.task \\({ENV}\\): no such file"):
        model_path("")
    junk = tmp_path / "junk.task"
    junk.write_bytes(b"not a model")
    with pytest.raises(PerseError, match="junk.task: mediapipe cannot load it as a face landmarker model"):
        make_estimator(DriveConfig(blendshapes="mediapipe", face_landmarker=str(junk)))


def test_the_landmarker_s_output_maps_by_name_and_counts_from_the_neutral():
    categories = [SimpleNamespace(category_name=name, score=0.01 * i) for i, name in enumerate(ARKIT_BLENDSHAPES)]
    shuffled = categories[::-1] + [SimpleNamespace(category_name="tongueOut", score=0.9)]
    scores = scores_from_result(SimpleNamespace(face_blendshapes=[shuffled]))
    assert scores.tolist() == pytest.approx([0.01 * i for i in range(len(ARKIT_BLENDSHAPES))])
    assert scores_from_result(SimpleNamespace(face_blendshapes=[])) is None

    jaw = ARKIT_BLENDSHAPES.index("jawOpen")
    neutral = np.zeros(len(ARKIT_BLENDSHAPES))
    neutral[jaw] = 0.2
    frames = np.tile(neutral, (3, 1))
    frames[1, jaw], frames[2, jaw] = 0.6, 0.1
    relative = LandmarkerEstimator.scores(frames, neutral)[:, jaw]
    assert relative.tolist() == pytest.approx([0.0, 0.5, 0.0])  # (0.6 - 0.2) / (1 - 0.2); below neutral is 0
