"""Plane geometry shared by the ingest steps: similarity transforms, landmark mapping, resampling.

Two pixel conventions meet here. Landmarks use mediapipe's and perse.core.camera's: the image spans [0, W]
and pixel i covers [i, i + 1], its centre at i + 0.5 (the intrinsics' principal point is size / 2).
Affine matrices are OpenCV's (cv2.warpAffine reproduces the crop from the photo with them), which map
pixel centres given as integers. `transform_landmarks` converts between the two.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

# When a warp shrinks the photo by more than this, the region is first reduced with area averaging:
# a bilinear warp alone would alias (skip pixels) on a 12-megapixel photo.
MAX_WARP_SHRINK = 0.6


def similarity_transform(center: np.ndarray, angle_deg: float, scale: float, out_center: np.ndarray) -> np.ndarray:
    """2x3 affine: rotate by -angle about `center`, scale, and move `center` to `out_center`."""
    rot = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), float(angle_deg), float(scale))
    rot[:, 2] += np.asarray(out_center, dtype=np.float64) - np.asarray(center, dtype=np.float64)
    return rot


def transform_landmarks(landmarks: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Map (N, 3) landmarks through an OpenCV 2x3 similarity; z scales with it like x and y."""
    scale = math.sqrt(abs(np.linalg.det(affine[:, :2])))
    xy = (landmarks[:, :2] - 0.5) @ affine[:, :2].T + affine[:, 2] + 0.5
    return np.concatenate([xy, landmarks[:, 2:3] * scale], axis=1).astype(np.float32)


def eye_roll_deg(eyes: np.ndarray) -> float:
    """In-plane angle of the line from the image-left to the image-right eye (degrees, y down)."""
    d = eyes[1] - eyes[0]
    return math.degrees(math.atan2(d[1], d[0]))


def warp(image: np.ndarray, affine: np.ndarray, size: int, border: int) -> np.ndarray:
    """Resample `image` (H, W[, C]) into the size x size crop; anti-aliased when the crop shrinks it."""
    scale = math.sqrt(abs(np.linalg.det(affine[:, :2])))
    if scale < MAX_WARP_SHRINK:
        # Cut the photo region the crop covers (plus a margin for interpolation), shrink it by a whole
        # factor with area averaging (OpenCV's fast path), then warp the small copy at a scale of 2/3
        # or more. Photo edges stay where they are, so the padding is unchanged.
        factor = max(2, int(1.0 / scale))
        corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64)
        inverse = cv2.invertAffineTransform(affine)
        photo_corners = corners @ inverse[:, :2].T + inverse[:, 2]
        margin = 2.0 * factor
        h, w = image.shape[:2]
        x0, y0 = np.clip(np.floor(photo_corners.min(0) - margin), 0, [w, h]).astype(int)
        x1, y1 = np.clip(np.ceil(photo_corners.max(0) + margin), 0, [w, h]).astype(int)
        # Whole multiples of the factor, trimmed at the far side (never past the photo's edge).
        x1, y1 = x0 + (x1 - x0) // factor * factor, y0 + (y1 - y0) // factor * factor
        if x1 - x0 >= 2 * factor and y1 - y0 >= 2 * factor:
            shrunk = cv2.resize(image[y0:y1, x0:x1], ((x1 - x0) // factor, (y1 - y0) // factor),
                                interpolation=cv2.INTER_AREA)
            # Shrunk pixel q covers region pixels [q, q + 1] * factor; in OpenCV's centre convention
            # its centre is at (q + 0.5) * factor - 0.5.
            to_region = np.array([[factor, 0, x0 + 0.5 * factor - 0.5], [0, factor, y0 + 0.5 * factor - 0.5]])
            affine = affine @ np.vstack([to_region, [0, 0, 1]])
            image = shrunk
    return cv2.warpAffine(image, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=border)


def inside_photo(affine: np.ndarray, photo_size: tuple[int, int], size: int) -> np.ndarray:
    """(size, size) float mask: 1 where the crop shows the photo, 0 in the padding, antialiased edge."""
    inverse = cv2.invertAffineTransform(affine)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    px = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    py = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    w, h = photo_size
    # Distance to the nearest photo edge (OpenCV's photo spans -0.5 .. w - 0.5), in crop pixels, gives a
    # one-pixel soft edge at any scale.
    scale = math.sqrt(abs(np.linalg.det(affine[:, :2])))
    inside = np.minimum.reduce([px + 0.5, py + 0.5, w - 0.5 - px, h - 0.5 - py]) * scale
    return np.clip(inside + 0.5, 0.0, 1.0)
