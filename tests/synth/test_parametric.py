"""The embedded editor on the shared portraits: locality, t = 0 identity, continuity, and that each
value at t = 1 measurably shows what its label says."""
import cv2
import numpy as np
import pytest

from perse.synth import face as F
from perse.synth.catalog import CATALOG
from perse.synth.edit import accessories, input_image
from perse.synth.edit.parametric import ParametricEditor

EDITOR = ParametricEditor(seed=3)
CHANGED = 2.5 / 255


def _grow(mask, pixels):
    # Editors feather their reported region by a couple of pixels beyond what they touch.
    pixels = int(round(pixels)) + 3
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate((mask > 0.01).astype(np.uint8), kernel) > 0


def _allowed(portrait, name):
    """Where an edit of this category may reasonably act, built independently of the editor."""
    unit = F.FaceFrame(portrait.landmarks.astype(float)).face_height
    masks, size = portrait.masks, portrait.size
    rows = np.arange(size)[:, None] + np.zeros((1, size))
    face = F.FaceFrame(portrait.landmarks.astype(float))
    if name == "hair":
        return _grow(masks["hair"], 0.05 * unit)
    if name == "skin":
        zone = np.maximum.reduce([masks[k] for k in ("face_skin", "nose", "ears", "neck", "hair")])
        return _grow(zone, 0.05 * unit)
    if name == "lips":
        return _grow(masks["lips"], 0.05 * unit)
    if name == "eyebrows":
        return _grow(masks["brows"], 0.12 * unit)
    if name == "beard":
        below_chin = (rows > face.xy[F.CHIN, 1]) & (rows < face.xy[F.CHIN, 1] + 0.25 * unit) & \
            (np.abs(np.arange(size)[None, :] - face.center_x) < 0.5 * face.face_width)
        return _grow(masks["beard"], 0.05 * unit) | below_chin
    if name == "glasses":
        return (rows > face.brow_top - 0.1 * unit) & (rows < face.xy[F.NOSE_TIP, 1] + 0.05 * unit)
    if name == "hat":
        # A brim's shadow may fall over the eyes.
        return rows < face.xy[F.NOSE_TIP, 1]
    if name == "headphones":
        # Cups over the ears, the band over the top of the head.
        beside = np.abs(np.arange(size)[None, :] - face.center_x) > 0.3 * face.face_width
        return (beside | (rows < face.brow_top)) & (rows < face.xy[F.CHIN, 1])
    if name == "earrings":
        beside = np.abs(np.arange(size)[None, :] - face.center_x) > 0.3 * face.face_width
        return beside & (rows > face.xy[F.RIGHT_EYE[0], 1]) & (rows < face.xy[F.CHIN, 1] + 0.2 * unit)
    raise AssertionError(name)


def _shaded(portrait, image):
    """Pixels an edit only darkens, on the person, by one factor in every channel and no more than an
    accessory's darkest shadow: contact and cast shadows, which fall wherever the light sends them
    (a wide brim's under a high sun reaches the mouth)."""
    source = input_image(portrait)
    factor = image.sum(-1) / np.maximum(source.sum(-1), 1e-6)
    proportional = np.abs(image - factor[..., None] * source).max(-1) < 1e-4
    darkest = 1 - max(accessories.CONTACT_DARKNESS, accessories.CAST_DARKNESS)
    return proportional & (factor < 1) & (factor >= darkest - 1e-4) & (np.asarray(portrait.matte) > 0)


CASES = [(name, value.label) for name in CATALOG for value in CATALOG[name].values]


@pytest.mark.parametrize("person", ["obama", "astronaut"])
@pytest.mark.parametrize("name, label", CASES)
def test_edit_stays_in_its_region_and_changes_it(small_portraits, person, name, label):
    portrait = small_portraits[person]
    category = CATALOG[name]
    result = EDITOR.edit(portrait, category, category.value(label), 1.0)
    source = input_image(portrait)
    changed = np.abs(result.image - source).max(-1) > CHANGED
    outside = result.region < 0.5
    assert changed[outside].mean() <= 0.01, "edit leaks outside the region it reports"
    region = result.region > 0.5
    assert region.any()
    allowed = _allowed(portrait, name)
    if category.kind in accessories.KINDS:
        # The accessory itself stays in the category's zone; around it, it may only shade the person,
        # and the region then covers that shadow too, feathered like every region.
        shaded = _shaded(portrait, result.image)
        assert np.mean(allowed[changed & ~shaded]) >= 0.97, "the accessory is drawn outside its category's zone"
        allowed = allowed | _grow(shaded.astype(np.float32), 0)
    assert np.mean(allowed[region]) >= 0.97, "the reported region strays from the category"
    # Judged where the edit acts, not over the feather its region adds (which outweighs a stud at 96 px).
    change = np.abs(result.image - source).max(-1)
    assert change[change > 0].mean() > 0.02, "the edit is too faint to see"
    assert result.image.dtype == np.float32 and result.image.min() >= 0 and result.image.max() <= 1


@pytest.mark.parametrize("name", list(CATALOG))
def test_strength_zero_is_the_input_and_the_look_grows_continuously(small_portraits, name):
    portrait = small_portraits["obama"]
    category = CATALOG[name]
    value = category.values[0]
    source = input_image(portrait)
    assert np.array_equal(EDITOR.edit(portrait, category, value, 0.0).image, source)
    ts = np.linspace(0, 1, 21)
    images = [EDITOR.edit(portrait, category, value, t).image for t in ts]
    # Parameters morph from the source's own look (not a linear fade), so steps are not all equal,
    # but none is a jump: each moves the image by a fraction of the whole change.
    steps = [np.abs(b - a).mean() for a, b in zip(images, images[1:])]
    full = np.abs(images[-1] - source).mean()
    assert max(steps) <= 0.25 * full
    distance = [np.abs(im - source).mean() for im in images]
    assert np.all(np.diff(distance) >= -0.02 * full), "the edit does not grow with t"


@pytest.mark.parametrize("name", list(CATALOG))
def test_mixed_parameters_connect_the_two_values(small_portraits, name):
    portrait = small_portraits["astronaut"]
    category = CATALOG[name]
    a, b = category.values[0], category.values[1]
    start = EDITOR.edit_between(portrait, category, a, b, 0.0).image
    end = EDITOR.edit_between(portrait, category, a, b, 1.0).image
    np.testing.assert_allclose(start, EDITOR.edit(portrait, category, a).image, atol=1e-5)
    np.testing.assert_allclose(end, EDITOR.edit(portrait, category, b).image, atol=1e-5)
    middle = EDITOR.edit_between(portrait, category, a, b, 0.5).image
    assert np.abs(middle - start).mean() > 1e-4 and np.abs(middle - end).mean() > 1e-4
    # From the source look: the path starts at the unedited portrait.
    from_source = EDITOR.edit_between(portrait, category, None, b, 0.0).image
    assert np.array_equal(from_source, input_image(portrait))


def _mean(image, mask):
    return image[mask > 0.9].mean(axis=0)


def _luma(rgb):
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def test_values_look_like_their_labels(small_portraits):
    person = small_portraits["astronaut"]
    edit = lambda name, label: EDITOR.edit(person, CATALOG[name], CATALOG[name].value(label)).image  # noqa: E731
    hair = person.masks["hair"]
    assert _luma(_mean(edit("hair", "blonde hair"), hair)) > _luma(_mean(edit("hair", "black hair"), hair)) + 0.25
    red = _mean(edit("hair", "red hair"), hair)
    assert red[0] > 1.5 * red[1] and red[0] > 1.5 * red[2]
    blue = _mean(edit("hair", "blue hair"), hair)
    assert blue[2] > 1.5 * blue[0]
    gray = _mean(edit("hair", "gray hair"), hair)
    assert np.ptp(gray) < 0.05 and _luma(gray) > 0.4

    skin = person.masks["face_skin"]
    assert _luma(_mean(edit("skin", "fair skin"), skin)) > _luma(_mean(edit("skin", "deep brown skin"), skin)) + 0.3

    lips = person.masks["lips"]
    before, after = _mean(input_image(person), lips), _mean(edit("lips", "red lipstick"), lips)
    assert after[0] - after[1] > before[0] - before[1] + 0.15

    brows = person.masks["brows"]
    assert _luma(_mean(edit("eyebrows", "thick dark eyebrows"), brows)) < \
        _luma(_mean(edit("eyebrows", "light blonde eyebrows"), brows)) - 0.2

    face = F.FaceFrame(person.landmarks.astype(float))
    eyes = np.zeros(hair.shape, np.float32)
    for side in ("right", "left"):
        cx, cy = face.eye_center(side)
        cv2.circle(eyes, (int(cx), int(cy)), max(2, int(0.25 * face.eye_distance)), 1.0, -1)
    assert _luma(_mean(edit("glasses", "aviator sunglasses"), eyes)) < _luma(_mean(input_image(person), eyes)) - 0.15

    chin = np.zeros(hair.shape, np.float32)
    cv2.circle(chin, tuple(int(v) for v in (face.xy[F.CHIN] + face.xy[17]) / 2), max(2, int(0.06 * face.face_height)), 1.0, -1)
    assert _luma(_mean(edit("beard", "full beard"), chin)) < _luma(_mean(input_image(person), chin)) - 0.15


def test_hat_and_earrings_grow_the_silhouette_where_they_are_drawn(small_portraits):
    person = small_portraits["obama"]
    face = F.FaceFrame(person.landmarks.astype(float))
    hat = EDITOR.edit(person, CATALOG["hat"], CATALOG["hat"].value("brown fedora"))
    grown = hat.matte - person.matte > 0.5
    assert grown.sum() > 0.005 * grown.size
    assert np.nonzero(grown)[0].max() < face.brow_top  # only above the brows
    rings = EDITOR.edit(person, CATALOG["earrings"], CATALOG["earrings"].value("gold hoop earrings"))
    changed = np.abs(rings.image - input_image(person)).max(-1) > 0.1
    columns = np.nonzero(changed)[1]
    assert (columns < face.center_x - 0.3 * face.face_width).any() and (columns > face.center_x + 0.3 * face.face_width).any()


def _highpass(lightness, sigma):
    return lightness - cv2.GaussianBlur(lightness, (0, 0), sigma)


def _lightness(image):
    return cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2LAB)[..., 0]


@pytest.fixture(scope="module")
def portraits_256(ingested):
    from perse.synth.run import resize_portrait

    return {name: resize_portrait(portrait, 256) for name, (portrait, _) in ingested.items()}


def test_hair_recolour_keeps_the_photos_strands_and_adds_strands_along_them(portraits_256):
    person = portraits_256["astronaut"]
    category = CATALOG["hair"]
    hair = cv2.erode((person.masks["hair"] > 0.9).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    source = _highpass(_lightness(input_image(person)), 2.0)[hair]
    for label in ("black hair", "blonde hair", "pink hair"):
        edited = _highpass(_lightness(EDITOR.edit(person, category, category.value(label)).image), 2.0)[hair]
        # The photo's own strand pattern survives the new colour (a flat tint would score ~0).
        assert np.corrcoef(source, edited)[0, 1] > 0.5, label
        assert edited.std() > 0.3 * source.std(), label


def test_dark_hair_turned_light_gains_strand_texture(portraits_256):
    person = portraits_256["obama"]
    category = CATALOG["hair"]
    hair = cv2.erode((person.masks["hair"] > 0.9).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    before = _highpass(_lightness(input_image(person)), 2.0)[hair].std()
    after = _highpass(_lightness(EDITOR.edit(person, category, category.value("blonde hair")).image), 2.0)[hair].std()
    assert after > 1.3 * before


def test_skin_tone_keeps_shading_without_amplifying_grain(portraits_256):
    person = portraits_256["obama"]
    category = CATALOG["skin"]
    skin = cv2.erode((person.masks["face_skin"] > 0.9).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    source = _lightness(input_image(person))
    edited = _lightness(EDITOR.edit(person, category, category.value("fair skin")).image)
    assert edited[skin].mean() > source[skin].mean() + 10
    # Lighter skin: the fine texture is kept, never amplified (that is what reads as grain at 512 px).
    assert _highpass(edited, 1.5)[skin].std() <= 1.1 * _highpass(source, 1.5)[skin].std()
    # The lighting is kept: large-scale shading correlates with the photo's (not one uniform tint).
    low = lambda x: cv2.GaussianBlur(x, (0, 0), 6.0)[skin]  # noqa: E731
    assert np.corrcoef(low(source), low(edited))[0, 1] > 0.8


def test_a_beard_grows_in_length_not_opacity(portraits_256):
    from perse.synth.catalog import Value

    person = portraits_256["obama"]
    category = CATALOG["beard"]
    full = category.value("full beard")
    halfway = EDITOR.edit_between(person, category, None, full, 0.5).image
    # Exactly the same beard drawn at half the length (and the same density and colour).
    half = Value("half", "half", {**full.spec, "length": full.spec["length"] / 2})
    np.testing.assert_allclose(halfway, EDITOR.edit(person, category, half).image, atol=1e-5)
    source = input_image(person)
    changed = lambda image: np.abs(image - source).max(-1) > 0.15  # noqa: E731
    grown = EDITOR.edit(person, category, full).image
    # A longer beard reaches further down from the same roots ...
    assert np.nonzero(changed(halfway))[0].max() < np.nonzero(changed(grown))[0].max()
    # ... and where hair shows halfway, it is hair (as dark as the grown beard), not a faint veil.
    shown = changed(halfway) & changed(grown)
    assert np.median(_lightness(halfway)[shown]) < np.median(_lightness(source)[shown]) - 15


def test_in_betweens_of_two_values_morph_parameters(portraits_256):
    person = portraits_256["astronaut"]
    category = CATALOG["hair"]
    black, blonde = category.value("black hair"), category.value("blonde hair")
    middle = EDITOR.edit_between(person, category, black, blonde, 0.5).image
    # Not the average of the two images: one hair of the mixed colour, as sharp as either end.
    average = 0.5 * (EDITOR.edit(person, category, black).image + EDITOR.edit(person, category, blonde).image)
    hair = person.masks["hair"] > 0.9
    assert np.abs(middle - average)[hair].mean() > 0.01
    assert _highpass(_lightness(middle), 2.0)[hair].std() > _highpass(_lightness(average), 2.0)[hair].std()
