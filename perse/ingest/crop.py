"""The aligned square crop: head with hair and a little shoulder, eyes level, at the configured size.

The crop is placed from the face (a fixed multiple of the brow-to-chin height, centred below the brow),
then grown upwards when the person's silhouette rises higher -- big hair, an updo, a hat -- so the whole
head is in the crop. Its bottom edge stays put, so the face keeps its place relative to the shoulders.
"""
from __future__ import annotations

import cv2
import numpy as np

from perse.config import IngestConfig
from perse.ingest import mesh
from perse.ingest.face import face_height
from perse.ingest.geometry import (
    eye_roll_deg,
    inside_photo,
    similarity_transform,
    transform_landmarks,
    warp,
)

# Growth of the crop above the head, in face heights: at most this much (the face must stay large
# enough to be the subject), and a little headroom above the silhouette's top.
MAX_EXTRA_TOP = 0.8
HEADROOM = 0.06
SILHOUETTE_SIZE = 256  # px; the segmenter sees 256 px, so a larger preview only costs time


def crop_transform(landmarks: np.ndarray, config: IngestConfig, extra_top: float = 0.0) -> tuple[np.ndarray, float]:
    """2x3 affine from photo pixels to crop pixels, and the photo's head roll (degrees) it removes.

    `extra_top` (face heights) raises the crop's top edge and widens it to stay square, keeping its bottom.
    """
    roll = eye_roll_deg(landmarks[[mesh.IRIS_LEFT, mesh.IRIS_RIGHT], :2])
    height = face_height(landmarks)
    side = (config.crop_scale + extra_top) * height
    # Work in the de-rolled frame: the face's horizontal centre is midway between the oval's sides at
    # ear level (the nose would drift with yaw), its vertical anchor the brow.
    brow = landmarks[mesh.BROW_CENTER, :2]
    derolled = similarity_transform(brow, roll, 1.0, brow)
    sides = landmarks[[mesh.SIDE_LEFT, mesh.SIDE_RIGHT], :2] @ derolled[:, :2].T + derolled[:, 2]
    center_y = brow[1] + (config.crop_center_below_brow - extra_top / 2) * height
    center = cv2.invertAffineTransform(derolled) @ np.array([sides[:, 0].mean(), center_y, 1.0])
    size = config.size
    # The affine is OpenCV's, on pixel centres at integers: the landmark convention shifted by half a pixel.
    return similarity_transform(center - 0.5, roll, size / side, np.full(2, size / 2 - 0.5)), roll


def silhouette_above(rgb: np.ndarray, landmarks: np.ndarray, config: IngestConfig) -> float:
    """How far (face heights) the person's silhouette rises above the default crop's top edge; 0 if not.

    Segments a low-resolution preview of the crop grown by MAX_EXTRA_TOP and follows the silhouette
    that holds the face up through the columns above it.
    """
    preview_config = IngestConfig(**{**config.__dict__, "size": SILHOUETTE_SIZE})
    affine, _ = crop_transform(landmarks, preview_config, MAX_EXTRA_TOP)
    preview = warp(rgb, affine, SILHOUETTE_SIZE, cv2.BORDER_CONSTANT)
    person = mesh.SELFIE_SEGMENTATION.process(preview).segmentation_mask > 0.5
    points = transform_landmarks(landmarks, affine)
    _, labels = cv2.connectedComponents(person.astype(np.uint8), connectivity=8)
    nose = np.clip(np.round(points[mesh.NOSE_TIP, :2] - 0.5).astype(int), 0, SILHOUETTE_SIZE - 1)
    if labels[nose[1], nose[0]] == 0:
        return 0.0
    left, right = np.clip(np.round(points[[mesh.SIDE_LEFT, mesh.SIDE_RIGHT], 0]).astype(int), 0, SILHOUETTE_SIZE)
    rows = np.nonzero((labels[:, left:right] == labels[nose[1], nose[0]]).any(axis=1))[0]
    pixels_per_face = SILHOUETTE_SIZE / (config.crop_scale + MAX_EXTRA_TOP)
    top = rows.min() - HEADROOM * pixels_per_face
    # Never grow past the photo's top edge: above it there is only padding.
    photo_rows = np.nonzero(inside_photo(affine, (rgb.shape[1], rgb.shape[0]), SILHOUETTE_SIZE)[:, left:right]
                            .max(axis=1) > 0.5)[0]
    top = max(top, photo_rows.min()) if len(photo_rows) else top
    # In the preview the default crop's top edge lies MAX_EXTRA_TOP face heights below the preview's top.
    return float(np.clip(MAX_EXTRA_TOP - top / pixels_per_face, 0.0, MAX_EXTRA_TOP))
