"""3D accessories: drawn with the lifted head in one scene, they stay put and occlude correctly when the
head turns, hide the hair they cover, shade the head, and grow (not fade) along in-betweens."""
import numpy as np
import pytest

from perse.core import camera as cam
from perse.dataset import EXPRESSION_NAMES
from perse.synth.animate.lift import LiftAnimator
from perse.synth.animate.motion import MotionScript
from perse.synth.catalog import CATALOG
from perse.synth.edit import input_image
from perse.synth.edit.parametric import ParametricEditor

EDITOR = ParametricEditor(seed=0)


@pytest.fixture(scope="module")
def obama(small_portraits):
    portrait = small_portraits["obama"]
    return portrait, LiftAnimator(portrait, renderer="splat")


def _clip(animator, edit, yaw):
    yaw = np.asarray(yaw, float)
    script = MotionScript(yaw, np.zeros_like(yaw), np.zeros((len(yaw), len(EXPRESSION_NAMES))), animator.pivot,
                          animator.fov_deg)
    return animator.animate(edit.image, edit.matte, script, accessory=edit.accessory)


def _project(animator, points, yaw):
    viewmat = cam.head_pose_viewmat(animator.fov_deg, yaw, 0.0, 0.0, animator.pivot)
    uv = cam.project(points.astype(np.float64), viewmat, animator.K)[:, :2]
    return np.clip(np.floor(uv).astype(int), 0, animator.size - 1)


def test_frame_zero_is_the_edit(obama):
    portrait, animator = obama
    for name, label in (("hat", "brown fedora"), ("glasses", "blue tinted glasses")):
        edit = EDITOR.edit(portrait, CATALOG[name], CATALOG[name].value(label))
        assert edit.accessory is not None and len(edit.accessory) > 0
        frame = _clip(animator, edit, [0.0]).images[0]
        expected = edit.image * edit.matte[..., None] + (1 - edit.matte[..., None])
        # Where the accessory changed the portrait, frame 0 shows the edit, up to the lifted head's own
        # error (measured on the head alone, without the accessory).
        acc = edit.accessory
        alone = animator.animate(acc.under_image, acc.under_matte, MotionScript(
            np.zeros(1), np.zeros(1), np.zeros((1, len(EXPRESSION_NAMES))), animator.pivot, animator.fov_deg)).images[0]
        exact = np.abs(alone - (acc.under_image * acc.under_matte[..., None] + 1 - acc.under_matte[..., None])).max(-1) < 2e-3
        # The edit blends a partly covered pixel's share of accessory over the head's soft matte edge;
        # the splatter draws the nearer surface alone there.
        _, share = animator.accessory_part(acc)
        blended = (share > 0.01) & (share < 0.99) & (acc.under_matte > 0.01) & (acc.under_matte < 0.99)
        changed = ((np.abs(edit.image - input_image(portrait)).max(-1) > 0) | (edit.matte != portrait.matte)) & exact
        changed &= ~blended
        assert changed.sum() > 50
        np.testing.assert_allclose(frame[changed], expected[changed], atol=2e-3)


def test_a_hat_stays_on_the_head_and_hides_the_hair_it_covers(obama):
    portrait, animator = obama
    edit = EDITOR.edit(portrait, CATALOG["hat"], CATALOG["hat"].value("red knit beanie"))
    acc = edit.accessory
    # The hair under the crown is gone from the lifted head, not just painted over.
    assert (acc.under_matte < portrait.matte - 0.5).sum() > 0.01 * portrait.matte.size
    crown = acc.means[acc.means[:, 1] < np.percentile(acc.means[:, 1], 60)]
    for yaw in (-30.0, 30.0):
        frame = _clip(animator, edit, [yaw]).images[0]
        pixels = _project(animator, crown, yaw)
        red = frame[pixels[:, 1], pixels[:, 0]]
        # Wherever the crown projects, the hat shows: red, no hair or background poking through.
        is_red = (red[:, 0] > 1.8 * red[:, 1]) & (red[:, 0] > 0.2)
        assert is_red.mean() > 0.97


def test_the_brim_covers_the_forehead_and_shades_it(obama):
    portrait, animator = obama
    edit = EDITOR.edit(portrait, CATALOG["hat"], CATALOG["hat"].value("brown fedora"))
    face = np.asarray(portrait.landmarks, float)
    source = input_image(portrait)
    # Contact and cast shadows darken the head right under the hat; the chin keeps its colour.
    forehead_y = int(face[10, 1] + 0.1 * (face[152, 1] - face[10, 1]))
    x = int(face[10, 0])
    darker = edit.accessory.under_image[forehead_y:forehead_y + 3, x - 3:x + 3].mean() / \
        source[forehead_y:forehead_y + 3, x - 3:x + 3].mean()
    chin = (slice(int(face[152, 1]) - 4, int(face[152, 1]) - 1), slice(x - 3, x + 3))
    assert darker < 0.95
    np.testing.assert_array_equal(edit.accessory.under_image[chin], source[chin])
    # Seen from above (the head pitched down), the brim hides the top of the forehead.
    brim = edit.accessory.means[edit.accessory.means[:, 2] < np.percentile(edit.accessory.means[:, 2], 3)]
    script = MotionScript(np.zeros(1), np.full(1, 15.0), np.zeros((1, len(EXPRESSION_NAMES))), animator.pivot,
                          animator.fov_deg)
    frame = animator.animate(edit.image, edit.matte, script, accessory=edit.accessory).images[0]
    viewmat = cam.head_pose_viewmat(animator.fov_deg, 0.0, 15.0, 0.0, animator.pivot)
    pixels = np.clip(np.floor(cam.project(brim.astype(np.float64), viewmat, animator.K)[:, :2]).astype(int), 0,
                     animator.size - 1)
    brown = frame[pixels[:, 1], pixels[:, 0]]
    assert np.mean(np.abs(brown - edit.accessory.colors[:len(brown)].mean(0)).max(-1) < 0.25) > 0.9


def test_temples_run_back_to_the_ears_and_hide_behind_them(obama):
    portrait, animator = obama
    edit = EDITOR.edit(portrait, CATALOG["glasses"], CATALOG["glasses"].value("cat-eye glasses"))
    means = edit.accessory.means
    centre_x = float(animator.geometry.landmarks[1, 0])
    pivot_z = float(animator.pivot[2])
    # The arms' hooks lie behind the ears; their middles run along the temples in front of them.
    hooks = means[:, 2] > pivot_z + 0.02
    middles = (means[:, 2] > means[:, 2].min() + 0.1) & (means[:, 2] < pivot_z - 0.05)
    assert hooks.sum() > 10 and middles.sum() > 10

    def redness(frame, points, yaw, ratio=2.5):
        # At this size a frame is thinner than a pixel, drawn see-through: seen over skin it is only
        # somewhat redder than skin.
        pixels = _project(animator, points, yaw)
        rgb = frame[pixels[:, 1], pixels[:, 0]]
        return np.mean((rgb[:, 0] > ratio * rgb[:, 1]) & (rgb[:, 0] > 0.2))

    frames = _clip(animator, edit, [0.0, 30.0]).images
    assert redness(frames[0], means[hooks], 0.0) < 0.3, "the ears and hair hide the hooks"
    # Positive yaw turns the nose towards the image's left: the image-left arm comes into view along
    # the temple, the image-right one's hook stays behind the head.
    left, right = means[:, 0] < centre_x, means[:, 0] > centre_x
    assert redness(frames[1], means[middles & left], 30.0, ratio=1.6) > 0.5
    assert redness(frames[1], means[hooks & right], 30.0) < 0.2


def test_lenses_are_see_through_and_tinted(obama):
    portrait, _ = obama
    edit = EDITOR.edit(portrait, CATALOG["glasses"], CATALOG["glasses"].value("blue tinted glasses"))
    face = np.asarray(portrait.landmarks, float)
    eye = tuple(int(v) for v in face[468, :2])  # right iris centre
    patch = (slice(eye[1] - 1, eye[1] + 2), slice(eye[0] - 1, eye[0] + 2))
    before, after = input_image(portrait)[patch].mean((0, 1)), edit.image[patch].mean((0, 1))
    assert after[2] - after[0] > before[2] - before[0] + 0.1  # bluer
    assert np.abs(after - [0.25, 0.45, 0.85]).max() > 0.05  # but not an opaque blue disc


def test_in_betweens_grow_the_accessory_at_full_opacity(obama):
    portrait, _ = obama
    category = CATALOG["hat"]
    areas = []
    for t in (0.25, 0.5, 0.75, 1.0):
        edit = EDITOR.edit_between(portrait, category, None, category.value("navy baseball cap"), t)
        grown = edit.matte - portrait.matte
        areas.append(int((grown > 0.5).sum()))
        # The new silhouette is the hat's, opaque: no ghost of a half-faded hat.
        outside = portrait.matte < 0.05
        assert np.mean((edit.matte[outside] > 0.1) & (edit.matte[outside] < 0.9)) < 0.02
    assert areas == sorted(areas) and areas[0] < areas[-1]
    # Between two hats, one hat changes shape: the cap's visor shrinks towards the beanie's none.
    cap, beanie = category.value("navy baseball cap"), category.value("red knit beanie")
    middle = EDITOR.edit_between(portrait, category, cap, beanie, 0.5)
    assert middle.accessory is not None and len(middle.accessory) > 0


def test_headphones_cover_the_ears(obama):
    portrait, _ = obama
    edit = EDITOR.edit(portrait, CATALOG["headphones"], CATALOG["headphones"].value("black headphones"))
    ears = portrait.masks["ears"] > 0.5
    assert (edit.accessory.under_matte[ears] < 0.5).mean() > 0.5
    assert edit.image[ears].mean() < input_image(portrait)[ears].mean() - 0.15
