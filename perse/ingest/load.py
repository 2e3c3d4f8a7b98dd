"""Load and validate a user's photo: every way a file can be unusable gets its own actionable message.

The photo's size is read from its header and checked before any pixel is decoded, so a decompression
bomb (a tiny file that claims to be gigapixels) costs nothing. EXIF orientation is applied so that a phone
photo stored sideways is ingested upright. Every pixel format Pillow reads is converted to 8-bit RGB; an
alpha channel with real transparency is kept as a hint for the person matte.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from perse.errors import InputImageError

SUPPORTED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "TIFF": "TIFF"}
SUPPORTED_TEXT = "JPEG, PNG, WebP, BMP or TIFF"
EXIF_ORIENTATION = 0x0112
# EXIF orientation value -> the transpose that shows the photo upright (values 2..8 of the EXIF spec).
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# An alpha channel counts as a cut-out when at least this fraction of pixels is clearly transparent;
# a few stray non-opaque pixels (an export artefact) are no evidence of where the person is.
CUTOUT_MIN_FRACTION = 0.01
CUTOUT_TRANSPARENT = 0.5


@dataclass
class Photo:
    rgb: np.ndarray  # (H, W, 3) uint8, upright
    alpha: np.ndarray | None  # (H, W) float32 in [0, 1] when the file is a cut-out, else None
    path: Path
    format: str
    warnings: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


# File signatures of the supported formats: a file that starts like one but that Pillow cannot open is
# a damaged photo, not "not an image".
MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
         (b"MM\x00*", "TIFF"))


def _sniff(head: bytes) -> str | None:
    """Name what a file Pillow cannot identify is, so the message can say what to do."""
    for magic, fmt in MAGIC:
        if head.startswith(magic):
            return f"a damaged {fmt} file (its header cannot be decoded); re-export it or download it again"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a damaged WebP file (its header cannot be decoded); re-export it or download it again"
    stripped = head.lstrip()
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc", b"ftypavif"):
        kind = "AVIF" if b"avif" in head[4:12] else "HEIC/HEIF"
        return f"a {kind} photo, which is not supported; export it as JPEG (on iPhone: Settings > Camera > " \
               f"Formats > Most Compatible) or convert it to PNG"
    if stripped[:5].lower() in (b"<?xml", b"<svg ") or stripped[:4].lower() == b"<svg":
        return "an SVG (vector) file, not a photo; export it to PNG first"
    if head[:4] == b"%PDF":
        return "a PDF document, not a photo; export the page as PNG or JPEG"
    if stripped[:1] in (b"<",) and b"html" in stripped[:64].lower():
        return "an HTML page (perhaps a web page saved instead of the image); save the image itself"
    if b"\x00" in head:  # text never contains NUL bytes; unknown binary formats do
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The 64-byte sample may end inside a multi-byte character; only earlier errors mean binary.
        if exc.start < len(head) - 3:
            return None
    return (f"a text file, not an image (its name may end in an image extension, but its content is text); "
            f"use a {SUPPORTED_TEXT} photo")


def _to_rgb(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Any Pillow mode -> 8-bit RGB, plus the alpha channel (float) when there is one."""
    mode = image.mode
    alpha = None
    if mode in ("I", "F") or mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float32)
        # 16-bit and 32-bit greyscale: scale by the container's range, not the photo's own maximum,
        # so a dark photo stays dark.
        top = 1.0 if mode == "F" and values.max() <= 1.0 else (255.0 if values.max() <= 255 else 65535.0)
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2), None
    has_alpha = "A" in image.getbands() or "a" in image.getbands() or (
        mode == "P" and "transparency" in image.info) or (mode in ("L", "RGB") and "transparency" in image.info)
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"))
        alpha = rgba[:, :, 3].astype(np.float32) / 255.0
        rgb = rgba[:, :, :3]
        if np.mean(alpha < CUTOUT_TRANSPARENT) >= CUTOUT_MIN_FRACTION:
            # Transparent pixels carry arbitrary colour; show them over white, like most viewers do.
            rgb = (rgb.astype(np.float32) * alpha[:, :, None] + 255.0 * (1.0 - alpha[:, :, None]))
            return np.clip(rgb + 0.5, 0, 255).astype(np.uint8), alpha
        return np.ascontiguousarray(rgb), None
    return np.asarray(image if mode == "RGB" else image.convert("RGB")), None


def photo_file_size(path: Path) -> int:
    """The size in bytes of a photo file, after checking it is a non-empty regular file: a FIFO would
    block a read forever and /dev/zero never ends."""
    if not path.exists():
        raise InputImageError(f"{path}: no such file; check the path and spelling")
    if path.is_dir():
        raise InputImageError(f"{path} is a folder, not a photo; pass one image file, e.g. {path / 'portrait.jpg'}")
    if not path.is_file():
        raise InputImageError(f"{path} is not a regular file (a device or pipe?); pass a photo file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputImageError(f"{path}: cannot read the file ({exc.strerror}); check its permissions") from exc
    if size == 0:
        raise InputImageError(f"{path} is empty (0 bytes); the download or copy probably failed, get the photo again")
    return size


def load_photo(path: str | Path, max_megapixels: float, min_side: int) -> Photo:
    path = Path(path)
    photo_file_size(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise InputImageError(f"{path}: cannot read the file ({exc.strerror}); check its permissions") from exc

    problems: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        # Recorded, not shown: Pillow reports EXIF damage as warnings (already while opening a JPEG), and
        # its decompression-bomb warning is moot as we enforce our own, lower pixel limit below.
        warnings.simplefilter("always")
        try:
            image = Image.open(path)
        except Image.DecompressionBombError as exc:
            raise InputImageError(
                f"{path} claims an enormous size ({exc}); refused before decoding (a 'decompression bomb' or a "
                f"huge scan); downscale it to at most {max_megapixels:g} megapixels") from exc
        except UnidentifiedImageError as exc:
            what = _sniff(head) or f"not an image Pillow can read (unknown or damaged format); use a {SUPPORTED_TEXT} photo"
            raise InputImageError(f"{path} is {what}") from exc
        except OSError as exc:
            raise InputImageError(f"{path}: cannot open it as an image ({exc}); re-export it as PNG or JPEG") from exc
        with image:
            fmt = image.format or "unknown"
            if fmt not in SUPPORTED_FORMATS:
                raise InputImageError(
                    f"{path} is a {fmt} image, which is not supported; use {SUPPORTED_TEXT} (re-save it as PNG)")
            width, height = image.size
            megapixels = width * height / 1e6
            if megapixels > max_megapixels:
                raise InputImageError(
                    f"{path} is {width}x{height} = {megapixels:.0f} megapixels, over the {max_megapixels:g} MP "
                    f"limit (refused before decoding, to protect memory); downscale it first")
            if min(width, height) < min_side:
                raise InputImageError(
                    f"{path} is only {width}x{height} pixels; both sides must be at least {min_side} px to hold "
                    f"a usable face; use a larger photo")
            corrupt_exif = "the photo's EXIF metadata is corrupt ({}); its orientation tag was ignored, " \
                           "check that the result is upright"
            try:
                orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            except Exception as exc:  # Pillow raises many types on badly damaged EXIF; none should stop us
                orientation = 1
                problems.append(corrupt_exif.format(type(exc).__name__))
            exif_damage = [str(w.message).strip() for w in caught if "EXIF" in str(w.message)]
            if exif_damage:
                orientation = 1
                problems.append(corrupt_exif.format(exif_damage[0]))
            if not isinstance(orientation, int) or orientation not in range(1, 9):
                problems.append(f"the photo's EXIF orientation tag has the invalid value {orientation!r}; "
                                f"it was ignored, check that the result is upright")
                orientation = 1
            try:
                image.load()
            except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, struct.error, ...
                if "truncated" in str(exc):
                    raise InputImageError(
                        f"{path} is truncated: the file ends before its image data does (an interrupted download "
                        f"or copy); get the complete file again") from exc
                raise InputImageError(
                    f"{path}: the {SUPPORTED_FORMATS[fmt]} data is corrupt ({exc}); re-export the photo") from exc
            if orientation in ORIENTATION_TRANSPOSE:
                image = image.transpose(ORIENTATION_TRANSPOSE[orientation])
            try:
                rgb, alpha = _to_rgb(image)
            except (ValueError, OSError) as exc:  # a pixel format Pillow cannot turn into RGB
                raise InputImageError(f"{path}: its pixel format ({image.mode}) cannot be converted to RGB "
                                      f"({exc}); re-save it as an 8-bit RGB PNG or JPEG") from exc
    return Photo(rgb=rgb, alpha=alpha, path=path, format=SUPPORTED_FORMATS[fmt], warnings=problems)
