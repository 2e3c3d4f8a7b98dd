"""The aligned square crop: head with hair and a little shoulder, eyes level, at the configured size."""
from __future__ import annotations

import cv2
import numpy as np

from perse.config import IngestConfig
from perse.ingest import mesh
from perse.ingest.face import face_height
from perse.ingest.geometry import eye_roll_deg, similarity_transform


def crop_transform(landmarks: np.ndarray, config: IngestConfig) -> tuple[np.ndarray, float]:
    """2x3 affine from photo pixels to crop pixels, and the photo's head roll (degrees) it removes."""
    roll = eye_roll_deg(landmarks[[mesh.IRIS_LEFT, mesh.IRIS_RIGHT], :2])
    height = face_height(landmarks)
    side = config.crop_scale * height
    # Work in the de-rolled frame: the face's horizontal centre is midway between the oval's sides at
    # ear level (the nose would drift with yaw), its vertical anchor the brow.
    brow = landmarks[mesh.BROW_CENTER, :2]
    derolled = similarity_transform(brow, roll, 1.0, brow)
    sides = landmarks[[mesh.SIDE_LEFT, mesh.SIDE_RIGHT], :2] @ derolled[:, :2].T + derolled[:, 2]
    center_derolled = np.array([sides[:, 0].mean(), brow[1] + config.crop_center_below_brow * height])
    center = cv2.invertAffineTransform(derolled) @ np.append(center_derolled, 1.0)
    size = config.size
    # The affine is OpenCV's, on pixel centres at integers: the landmark convention shifted by half a pixel.
    return similarity_transform(center - 0.5, roll, size / side, np.full(2, size / 2 - 0.5)), roll
