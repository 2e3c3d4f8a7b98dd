"""Ingest: every shared portrait aligns with sensible landmarks, pose and masks; every bad input gets its
own message; every supported pixel format and EXIF orientation ingests."""
from __future__ import annotations

import io
import json
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from perse.core.camera import intrinsics, rotation_ypr
from perse.errors import InputImageError
from perse.ingest import ingest, mesh
from perse.ingest.face import detect_faces, head_pose, head_rotation
from perse.ingest.portrait import REGIONS, Portrait
from perse.ingest.regions import EXCLUSIVE


def _polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
    canvas = np.zeros((size, size), np.uint8)
    cv2.fillPoly(canvas, [np.round(points[:, :2]).astype(np.int32)], 1)
    return canvas.astype(bool)


def _centroid_y(mask: np.ndarray) -> float:
    ys = np.arange(mask.shape[0])[:, None]
    return float((mask * ys).sum() / mask.sum())


# --- the shared portraits -------------------------------------------------------------------------------

def test_every_portrait_writes_the_run_contract(ingested, ingest_config):
    size = ingest_config.ingest.size
    for name, (portrait, run) in ingested.items():
        for rel in ("portrait.png", "portrait.json", "matte.png", "debug.png", *(f"masks/{r}.png" for r in REGIONS)):
            assert (run / rel).is_file(), f"{name}: {rel} missing"
        meta = json.loads((run / "portrait.json").read_text())
        assert len(meta["landmarks"]) == mesh.NUM_LANDMARKS
        assert np.allclose(meta["intrinsics"], intrinsics(size, ingest_config.ingest.fov_deg))
        loaded = Portrait.load(run)
        assert loaded.image.shape == (size, size, 3) and loaded.image.dtype == np.uint8
        assert np.array_equal(loaded.image, portrait.image)
        assert np.abs(loaded.landmarks - portrait.landmarks).max() < 1e-2
        assert set(loaded.masks) == set(REGIONS)
        for region, mask in loaded.masks.items():
            assert np.abs(mask - portrait.masks[region]).max() <= 1 / 255 + 1e-6, f"{name}/{region}"
        debug = np.asarray(Image.open(run / "debug.png"))
        assert debug.shape[1] == 3 * size and debug.shape[0] > size


def test_landmarks_lie_inside_the_detected_face(ingested, shared_portraits):
    for name, (portrait, _) in ingested.items():
        photo = np.asarray(Image.open(shared_portraits[name]).convert("RGB"))
        box = detect_faces(photo)[0]
        # The detector's box covers brow to chin; the mesh also spans the forehead, so allow a margin.
        corners = np.array([[box.x, box.y], [box.x + box.width, box.y + box.height]])
        to_crop = portrait.crop_transform
        margin = 0.25 * box.width
        inverse = cv2.invertAffineTransform(to_crop)
        photo_xy = portrait.landmarks[:, :2] @ inverse[:, :2].T + inverse[:, 2]
        inside = np.all((photo_xy >= corners[0] - margin) & (photo_xy <= corners[1] + margin), axis=1)
        assert inside.mean() > 0.99, f"{name}: {inside.mean():.3f} of landmarks inside the detected face"
        # Iris centres sit between the eye corners; the nose tip between the eyes and the mouth.
        xy = portrait.landmarks[:, :2]
        for iris, (a, b) in ((mesh.IRIS_LEFT, (mesh.EYE_OUTER_LEFT, mesh.EYE_INNER_LEFT)),
                             (mesh.IRIS_RIGHT, (mesh.EYE_INNER_RIGHT, mesh.EYE_OUTER_RIGHT))):
            assert xy[a, 0] < xy[iris, 0] < xy[b, 0], name
        assert xy[mesh.IRIS_LEFT, 1] < xy[mesh.NOSE_TIP, 1] < xy[mesh.MOUTH_LEFT, 1] < xy[mesh.CHIN, 1], name


def test_crop_is_level_centred_and_reproducible_from_the_recorded_transform(ingested, shared_portraits):
    for name, (portrait, _) in ingested.items():
        size = portrait.size
        xy = portrait.landmarks[:, :2]
        eyes = xy[[mesh.IRIS_LEFT, mesh.IRIS_RIGHT]]
        assert abs(eyes[1, 1] - eyes[0, 1]) < 0.01 * size, f"{name}: eyes not level after roll removal"
        assert abs(xy[[mesh.SIDE_LEFT, mesh.SIDE_RIGHT], 0].mean() - size / 2) < 0.03 * size, name
        # Room for hair above the forehead and for the neck below the chin.
        assert xy[mesh.FOREHEAD_TOP, 1] > 0.2 * size and xy[mesh.CHIN, 1] < 0.8 * size, name
        photo = np.asarray(Image.open(shared_portraits[name]).convert("RGB"))
        again = cv2.warpAffine(photo, portrait.crop_transform, (size, size), flags=cv2.INTER_AREA)
        inside = cv2.warpAffine(np.ones(photo.shape[:2], np.float32), portrait.crop_transform, (size, size)) > 0.99
        difference = np.abs(again[inside].astype(float) - portrait.image[inside].astype(float)).mean()
        assert difference < 6, f"{name}: crop differs from its recorded transform by {difference:.1f} levels"


def test_masks_are_non_empty_and_anatomically_consistent(ingested):
    for name, (portrait, _) in ingested.items():
        size = portrait.size
        masks = portrait.masks
        for region in REGIONS:
            m = masks[region]
            assert m.shape == (size, size) and m.min() >= 0 and m.max() <= 1, f"{name}/{region}"
            assert m.sum() > 1e-3 * size * size, f"{name}: {region} mask is empty"
        outlines = mesh.outlines(portrait.landmarks)
        oval = _polygon_mask(outlines.face_oval, size)
        # Lips, mouth, eyes and brows lie inside the face; hair does not cover the face.
        for region in ("lips", "mouth_interior", "eyes", "brows", "nose"):
            assert (masks[region] * oval).sum() / masks[region].sum() > 0.9, f"{name}: {region} leaves the face"
        assert (masks["hair"] * oval).sum() < 0.03 * oval.sum(), f"{name}: hair covers the face"
        assert (masks["face_skin"] * masks["hair"]).sum() < 0.05 * masks["face_skin"].sum(), name
        lips_hull = _polygon_mask(outlines.lips_outer, size)
        assert (masks["mouth_interior"] * lips_hull).sum() / masks["mouth_interior"].sum() > 0.95, name
        # Features sit where anatomy puts them.
        xy = portrait.landmarks[:, :2]
        for point, region in ((mesh.IRIS_LEFT, "eyes"), (mesh.IRIS_RIGHT, "eyes"), (mesh.NOSE_TIP, "nose")):
            x, y = np.round(xy[point]).astype(int)
            assert masks[region][y, x] > 0.5, f"{name}: landmark {point} outside {region}"
        order = [_centroid_y(masks[r]) for r in ("hair", "brows", "eyes", "nose", "lips", "neck", "clothes")]
        assert order == sorted(order), f"{name}: regions out of vertical order {order}"
        assert _centroid_y(masks["clothes"]) > xy[mesh.CHIN, 1], name
        ears = masks["ears"]
        left, right = ears[:, : size // 2], ears[:, size // 2:]
        assert left.sum() > 0 and right.sum() > 0, f"{name}: ears on one side only"
        # The exclusive regions partition the person: no overlap, and together they are the matte.
        total = sum(masks[r] for r in EXCLUSIVE)
        assert total.max() <= 1 + 1e-5, name
        assert np.abs(total - portrait.matte).mean() < 0.01, name
        assert (masks["nose"] <= masks["face_skin"] + 1e-3).mean() > 0.99, name


def test_matte_keeps_person_and_drops_background(ingested):
    for name, (portrait, _) in ingested.items():
        size = portrait.size
        matte = portrait.matte
        face = _polygon_mask(mesh.outlines(portrait.landmarks).face_oval, size)
        assert matte[face].mean() > 0.98, name
        # Top corners show background in every shared portrait.
        corner = max(4, size // 16)
        assert matte[:corner, :corner].mean() < 0.1 and matte[:corner, -corner:].mean() < 0.1, name


# --- head pose ----------------------------------------------------------------------------------------

def test_head_pose_decomposes_in_the_camera_convention(ingested):
    landmarks = ingested["obama"][0].landmarks.astype(np.float64)
    pose = head_pose(landmarks)
    assert np.allclose(rotation_ypr(pose["yaw"], pose["pitch"], pose["roll"]), head_rotation(landmarks), atol=1e-9)
    # Turning the head by R turns the measured rotation by R: the estimate is equivariant.
    turn = rotation_ypr(25.0, -10.0, 5.0)
    center = landmarks.mean(axis=0)
    turned = (landmarks - center) @ turn.T + center
    assert np.allclose(head_rotation(turned), turn @ head_rotation(landmarks), atol=1e-9)
    turned_pose = head_pose(turned)
    # Positive yaw moves the nose towards the image's left edge (perse.core.camera's convention).
    assert turned_pose["yaw"] > pose["yaw"] + 15
    assert turned[mesh.NOSE_TIP, 0] - turned[mesh.SIDE_LEFT, 0] < landmarks[mesh.NOSE_TIP, 0] - landmarks[mesh.SIDE_LEFT, 0]


def test_mirrored_photo_mirrors_the_pose(ingested, shared_portraits, ingest_config, tmp_path):
    original = ingested["obama"][0]
    mirrored_path = tmp_path / "mirror.png"
    Image.open(shared_portraits["obama"]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored_path)
    mirrored = ingest(mirrored_path, ingest_config)
    assert abs(mirrored.head_pose["yaw"] + original.head_pose["yaw"]) < 1.5
    assert abs(mirrored.head_pose["pitch"] - original.head_pose["pitch"]) < 1.5
    assert abs(mirrored.extra["photo_roll_deg"] + original.extra["photo_roll_deg"]) < 1.5


@pytest.mark.parametrize("degrees", [20, 135, 180, 270])
def test_rolled_or_upside_down_photo_is_levelled(degrees, ingested, shared_portraits, ingest_config, tmp_path):
    """Tilted heads, and photos stored sideways or upside down without EXIF orientation."""
    original = ingested["biden2"][0]
    rolled_path = tmp_path / "rolled.png"
    Image.open(shared_portraits["biden2"]).rotate(degrees, resample=Image.BICUBIC, expand=True,
                                                   fillcolor=(128, 128, 128)).save(rolled_path)
    rolled = ingest(rolled_path, ingest_config)
    # Image rotate() turns counter-clockwise, which lifts the image-right eye: the eye line angle drops.
    expected = (original.extra["photo_roll_deg"] - degrees + 180) % 360 - 180
    error = (rolled.extra["photo_roll_deg"] - expected + 180) % 360 - 180
    assert abs(error) < 2.0, (rolled.extra["photo_roll_deg"], expected)
    assert np.abs(rolled.landmarks[:, :2] - original.landmarks[:, :2]).mean() < 0.01 * original.size


def test_tightly_framed_photo_is_padded_without_copies_of_the_face(shared_portraits, ingest_config, tmp_path):
    photo = Image.open(shared_portraits["biden2"]).convert("RGB")
    w, h = photo.size
    tight = photo.crop((int(w * 0.3), int(h * 0.25), int(w * 0.75), int(h * 0.75)))
    portrait = ingest(_save(tight, tmp_path / "tight.png"), ingest_config)
    assert any("of the crop lies outside the photo" in w for w in portrait.warnings)
    inside = cv2.warpAffine(np.ones((tight.height, tight.width), np.float32), portrait.crop_transform,
                            (portrait.size,) * 2)
    # Pixels clear of the photo's edge (the one-pixel antialiased border is partly photo).
    outside = cv2.dilate(inside, np.ones((5, 5), np.uint8)) < 0.01
    assert outside.mean() > 0.3
    assert portrait.matte[outside].max() < 0.01
    assert all(mask[outside].max() < 0.01 for mask in portrait.masks.values())
    assert len(detect_faces(portrait.image)) == 1, "the padding must not repeat the face"


def test_low_resolution_face_ingests_with_a_softness_warning(shared_portraits, tmp_path):
    from perse.config import build_config

    path = _save(Image.open(shared_portraits["biden2"]).convert("RGB").resize((200, 200)), tmp_path / "small.png")
    portrait = ingest(path, build_config("fast", overrides={"ingest.size": 512}))
    assert any("the crop enlarges it" in w for w in portrait.warnings)


# --- formats and metadata that must work ---------------------------------------------------------------

@pytest.fixture(scope="module")
def obama_rgb(shared_portraits) -> Image.Image:
    return Image.open(shared_portraits["obama"]).convert("RGB")


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize("kind", ["cmyk_jpeg", "gray16_png", "rgb48_png", "la_png", "palette_png", "gray_jpeg",
                                  "webp", "bmp", "tiff", "float_tiff"])
def test_every_supported_pixel_format_ingests(kind, obama_rgb, ingest_config, tmp_path):
    rgb = obama_rgb
    gray16 = (np.asarray(rgb.convert("L")).astype(np.uint16) * 257)
    builders = {
        "cmyk_jpeg": lambda p: _save(rgb.convert("CMYK"), p.with_suffix(".jpg")),
        "gray16_png": lambda p: _save(Image.fromarray(gray16), p.with_suffix(".png")),
        "rgb48_png": lambda p: p.with_suffix(".png") if cv2.imwrite(
            str(p.with_suffix(".png")), (np.asarray(rgb)[:, :, ::-1].astype(np.uint16) * 257)) else None,
        "la_png": lambda p: _save(rgb.convert("LA"), p.with_suffix(".png")),
        "palette_png": lambda p: _save(rgb.convert("P", palette=Image.Palette.ADAPTIVE), p.with_suffix(".png")),
        "gray_jpeg": lambda p: _save(rgb.convert("L"), p.with_suffix(".jpg")),
        "webp": lambda p: _save(rgb, p.with_suffix(".webp"), quality=90),
        "bmp": lambda p: _save(rgb, p.with_suffix(".bmp")),
        "tiff": lambda p: _save(rgb, p.with_suffix(".tif")),
        "float_tiff": lambda p: _save(Image.fromarray(np.asarray(rgb.convert("L"), np.float32) / 255), p.with_suffix(".tif")),
    }
    path = builders[kind](tmp_path / kind)
    portrait = ingest(path, ingest_config)
    assert portrait.image.shape == (ingest_config.ingest.size,) * 2 + (3,)
    assert portrait.warnings == []
    # The photo's tones survive conversion: the face is neither black nor blown out.
    face = _polygon_mask(mesh.outlines(portrait.landmarks).face_oval, portrait.size)
    assert 60 < portrait.image[face].mean() < 220, kind


def test_cutout_alpha_becomes_the_matte(obama_rgb, ingest_config, tmp_path):
    w, h = obama_rgb.size
    alpha = np.zeros((h, w), np.uint8)
    cv2.ellipse(alpha, (w // 2, int(h * 0.35)), (int(w * 0.3), int(h * 0.3)), 0, 0, 360, 255, -1)
    rgba = np.dstack([np.asarray(obama_rgb), alpha])
    path = _save(Image.fromarray(rgba), tmp_path / "cutout.png")
    portrait = ingest(path, ingest_config)
    assert portrait.extra["matte_source"] == "alpha"
    expected = cv2.warpAffine(alpha.astype(np.float32) / 255, portrait.crop_transform, (portrait.size,) * 2)
    # The matte follows the cut-out (feathered, with the face always included).
    assert np.abs(portrait.matte - expected).mean() < 0.03


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_gives_the_upright_result(orientation, obama_rgb, ingest_config, tmp_path):
    upright_path = _save(obama_rgb, tmp_path / "upright.png")
    stored = obama_rgb.transpose({3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
                                  8: Image.Transpose.ROTATE_270}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    rotated_path = _save(stored, tmp_path / f"rotated{orientation}.png", exif=exif.tobytes())
    upright, rotated = ingest(upright_path, ingest_config), ingest(rotated_path, ingest_config)
    assert rotated.source_size == upright.source_size
    assert np.abs(rotated.landmarks - upright.landmarks).max() < 0.5
    assert np.array_equal(rotated.image, upright.image)


def test_corrupt_exif_ingests_with_a_warning(obama_rgb, ingest_config, tmp_path):
    buffer = io.BytesIO()
    obama_rgb.save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    # An EXIF block whose only directory entry is cut short.
    payload = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00" + b"\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00"
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    path = tmp_path / "corrupt_exif.jpg"
    path.write_bytes(data[:2] + segment + data[2:])
    portrait = ingest(path, ingest_config)
    assert any("EXIF metadata is corrupt" in w for w in portrait.warnings)


def test_invalid_exif_orientation_is_reported(obama_rgb, ingest_config, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 9
    path = _save(obama_rgb, tmp_path / "bad_orientation.jpg", exif=exif.tobytes())
    portrait = ingest(path, ingest_config)
    assert any("orientation tag has the invalid value 9" in w for w in portrait.warnings)


def test_several_faces_use_the_largest_with_a_warning(shared_portraits, ingest_config, tmp_path):
    big = Image.open(shared_portraits["obama"]).convert("RGB")
    small = Image.open(shared_portraits["biden2"]).convert("RGB").resize((500, 500))
    canvas = Image.new("RGB", (big.width + small.width, big.height), (90, 90, 90))
    canvas.paste(big, (0, 0))
    canvas.paste(small, (big.width, big.height - small.height))
    path = _save(canvas, tmp_path / "two.png")
    portrait = ingest(path, ingest_config)
    assert any(w.startswith("2 faces found; used the largest") for w in portrait.warnings)
    inverse = cv2.invertAffineTransform(portrait.crop_transform)
    nose = portrait.landmarks[mesh.NOSE_TIP, :2] @ inverse[:, :2].T + inverse[:, 2]
    assert nose[0] < big.width


# --- bad inputs: each gets its own message --------------------------------------------------------------

def _png_bomb(path, width=8000, height=6000):
    """A valid 48-megapixel greyscale PNG that compresses to a few kilobytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def _landscape(path):
    """Sky, sun and hills: a photo with no face."""
    h, w = 480, 720
    ys = np.linspace(0, 1, h)[:, None, None]
    image = (np.array([110, 160, 235]) * (1 - ys) + np.array([200, 220, 250]) * ys) * np.ones((h, w, 3))
    xs = np.arange(w)
    for amplitude, base, color in ((40, 300, (70, 120, 60)), (25, 380, (50, 95, 40))):
        ridge = base + amplitude * np.sin(xs / 90.0 + base)
        image[np.arange(h)[:, None] > ridge[None, :]] = color
    cv2.circle(image, (560, 110), 45, (255, 240, 190), -1)
    return _save(Image.fromarray(image.astype(np.uint8)), path)


def _small_face(path, obama_rgb):
    canvas = Image.new("RGB", (1000, 800), (120, 120, 120))
    canvas.paste(obama_rgb.resize((182, 227), Image.LANCZOS), (400, 200))
    return _save(canvas, path)


BAD_INPUTS = {
    # name: (builder(tmp_path, obama_rgb) -> path, part of the expected message)
    "empty": (lambda d, o: _write(d / "empty.jpg", b""), "is empty (0 bytes)"),
    "text_named_jpg": (lambda d, o: _write(d / "notes.jpg", "just some notes\n"),
                       "is a text file, not an image"),
    "truncated_jpeg": (lambda d, o: _write(d / "cut.jpg", _encoded(o, "JPEG")[:20000]),
                       "is truncated"),
    "truncated_png": (lambda d, o: _write(d / "cut.png", _encoded(o, "PNG")[:30000]),
                      "is truncated"),
    "decompression_bomb": (lambda d, o: _png_bomb(d / "bomb.png"), "= 48 megapixels, over the 40 MP limit"),
    "tiny": (lambda d, o: _save(o.resize((32, 40)), d / "tiny.png"), "is only 32x40 pixels"),
    "noise": (lambda d, o: _save(Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 400, 3), np.uint8)),
                                 d / "noise.png"), "no face found"),
    "landscape": (lambda d, o: _landscape(d / "landscape.png"), "no face found"),
    "face_too_small": (lambda d, o: _small_face(d / "far.png", o), "the face is too small"),
    "directory": (lambda d, o: _mkdir(d / "photos"), "is a folder, not a photo"),
    "missing": (lambda d, o: d / "nowhere.jpg", "no such file"),
    "gif": (lambda d, o: _save(o, d / "anim.gif"), "is a GIF image, which is not supported"),
    "svg": (lambda d, o: _write(d / "logo.svg", '<svg xmlns="http://www.w3.org/2000/svg"></svg>'), "an SVG (vector) file"),
    "heic": (lambda d, o: _write(d / "IMG_0001.heic", b"\x00\x00\x00\x18ftypheic" + bytes(64)), "HEIC/HEIF photo, which is not supported"),
    "pdf": (lambda d, o: _write(d / "scan.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + bytes(64)),
            "a PDF document"),
    "corrupt_jpeg_data": (lambda d, o: _write(d / "garbled.jpg", _garbled_jpeg(o)),
                          "is a damaged JPEG file (its header cannot be decoded)"),
}


def _write(path, data: str | bytes):
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _mkdir(path):
    path.mkdir()
    return path


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _garbled_jpeg(image: Image.Image) -> bytes:
    """A JPEG whose header is intact but whose Huffman table is destroyed."""
    data = bytearray(_encoded(image, "JPEG"))
    dht = data.index(b"\xff\xc4")
    data[dht + 5: dht + 40] = b"\xff" * 35
    return bytes(data)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_its_specific_message(case, obama_rgb, tmp_path):
    from perse.config import build_config

    # face_too_small is checked with a stricter minimum than the default, so the case does not depend on
    # the detector's exact limit for tiny faces.
    overrides = {"ingest.size": 128, "ingest.min_face_px": 64}
    builder, expected = BAD_INPUTS[case]
    path = builder(tmp_path, obama_rgb)
    with pytest.raises(InputImageError) as caught:
        ingest(path, build_config("fast", overrides=overrides))
    message = str(caught.value)
    assert expected in message, message
    assert str(path) in message, "the message must name the file"


def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    from perse.ingest.load import load_photo

    path = _png_bomb(tmp_path / "bomb.png")
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1))
    with pytest.raises(InputImageError, match="refused before decoding"):
        load_photo(path, max_megapixels=40, min_side=64)
    assert not decoded


def test_cli_ingests_and_reports_errors_without_traceback(shared_portraits, tmp_path, capsys):
    from perse.cli import main

    run = tmp_path / "run"
    assert main(["ingest", str(shared_portraits["grace_hopper"]), "--out", str(run),
                 "--override", "ingest.size=128"]) == 0
    assert Portrait.load(run).size == 128
    assert "debug.png" in capsys.readouterr().out
    assert main(["ingest", str(tmp_path / "missing.jpg"), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err



def test_concurrent_ingests_match_sequential_ones(shared_portraits):
    """The app ingests several users' photos at once: the shared mediapipe models must not mix them up."""
    from concurrent.futures import ThreadPoolExecutor

    from perse.config import build_config

    config = build_config("fast", overrides={"ingest.size": 128})
    paths = [shared_portraits[name] for name in ("obama", "biden2", "grace_hopper", "astronaut")] * 2
    sequential = [ingest(path, config) for path in paths[:4]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda path: ingest(path, config), paths))
    for i, portrait in enumerate(concurrent):
        expected = sequential[i % 4]
        assert np.abs(portrait.landmarks - expected.landmarks).max() < 1e-3, paths[i].name
        assert np.abs(portrait.matte - expected.matte).max() < 1e-3, paths[i].name


def test_landmark_mapping_follows_the_pixels():
    """Landmarks (pixel centres at +0.5) and OpenCV affines (centres at integers) must agree exactly."""
    from perse.ingest.geometry import similarity_transform, transform_landmarks

    image = np.zeros((64, 64), np.float32)
    image[20, 37] = 1.0  # pixel (x=37, y=20): landmark coordinates (37.5, 20.5)
    affine = similarity_transform(np.array([30.0, 30.0]), 25.0, 3.0, np.array([100.0, 90.0]))
    warped = cv2.warpAffine(image, affine, (200, 200), flags=cv2.INTER_LINEAR)
    ys, xs = np.mgrid[0:200, 0:200]
    centroid = np.array([(xs * warped).sum(), (ys * warped).sum()]) / warped.sum() + 0.5
    mapped = transform_landmarks(np.array([[37.5, 20.5, 0.0]]), affine)[0, :2]
    assert np.abs(mapped - centroid).max() < 0.05


def test_turned_head_is_reported(ingested):
    from perse.ingest.run import usability_notes

    portrait = ingested["obama"][0]
    inside = np.ones((portrait.size,) * 2, np.float32)
    frontal = usability_notes(portrait.crop_transform, inside, 200.0, portrait.head_pose)
    assert not any("turned" in note for note in frontal)
    turned = usability_notes(portrait.crop_transform, inside, 200.0, {"yaw": -42.0, "pitch": 3.0, "roll": 0.0})
    assert any("head is turned away from the camera (yaw -42 deg)" in note for note in turned)


def test_crop_grows_to_hold_the_whole_head(shared_portraits):
    """With a framing too tight for the hair, the crop rises until the silhouette clears its top edge."""
    from perse.config import build_config
    from perse.ingest.crop import silhouette_above
    from perse.ingest.load import load_photo
    from perse.ingest.run import find_face

    tight = build_config("fast", overrides={"ingest.size": 128, "ingest.crop_scale": 2.0})
    photo = load_photo(shared_portraits["grace_hopper"], 40, 64)
    landmarks, _, _ = find_face(photo, 48)
    assert silhouette_above(photo.rgb, landmarks, tight.ingest) > 0.1
    portrait = ingest(shared_portraits["grace_hopper"], tight)
    top_rows = portrait.matte[: max(2, portrait.size // 64)]
    assert top_rows.max() < 0.5, "the hat still touches the crop's top edge"
    # The bottom edge stays where the framing puts it (half the crop scale below the crop centre, which
    # sits crop_center_below_brow under the brow): the crop grew upwards only.
    from perse.ingest.face import face_height

    below_brow = (portrait.size - portrait.landmarks[mesh.BROW_CENTER, 1]) / face_height(portrait.landmarks)
    assert abs(below_brow - (tight.ingest.crop_center_below_brow + tight.ingest.crop_scale / 2)) < 0.05
