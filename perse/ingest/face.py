"""Find the face in a photo and measure it: detection, 478-point 3D landmarks, head pose.

Detection runs on a downscaled copy (mediapipe resizes to 192 px anyway), the face mesh on a de-rolled
close-up cut from the full-resolution photo, so landmarks keep the photo's detail at a fixed, small cost
whatever the photo's size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from perse.ingest import mesh
from perse.ingest.geometry import (
    eye_roll_deg,
    similarity_transform,
    transform_landmarks,
    warp,
)

# Longest side fed to the face detector: its networks see 128-192 px, so more only costs time.
DETECT_MAX_SIDE = 1024
# The mesh close-up: side in pixels, and its size relative to the detected box. mediapipe's own
# detector inside the face mesh expects a face filling about half of its input.
MESH_INPUT = 512
MESH_BOX_SCALE = 2.0
UPRIGHT_CHECK_SIZE = 200  # px; dlib's HOG detector finds faces from 80 px, and is fast at this size


@dataclass
class FaceBox:
    x: float
    y: float
    width: float
    height: float
    score: float
    eyes: np.ndarray  # (2, 2) centres of the person's right and left eye, in photo pixels

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> np.ndarray:
        return np.array([self.x + self.width / 2, self.y + self.height / 2])


def _downscaled(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink by a whole factor: OpenCV's area averaging is several times faster for integer ratios,
    and the detector does not care whether the long side is 1024 or 800 px."""
    factor = -(-max(rgb.shape[:2]) // max_side)
    if factor == 1:
        return rgb, 1.0
    h, w = (rgb.shape[0] // factor) * factor, (rgb.shape[1] // factor) * factor
    return cv2.resize(rgb[:h, :w], (w // factor, h // factor), interpolation=cv2.INTER_AREA), 1.0 / factor


def detect_faces(rgb: np.ndarray) -> list[FaceBox]:
    """All faces mediapipe finds, in photo pixels, largest first."""
    small, scale = _downscaled(rgb, DETECT_MAX_SIDE)
    h, w = small.shape[:2]
    for detector in mesh.FACE_DETECTORS:
        result = detector.process(small)
        if result.detections:
            break
    else:
        return []
    boxes = []
    for det in result.detections:
        rel = det.location_data.relative_bounding_box
        # mediapipe keypoints 0 and 1 are the person's right and left eye: image-left and image-right in
        # an upright photo, and kept in that order so the roll angle is right even for an upside-down face.
        eyes = np.array([[k.x * w, k.y * h] for k in det.location_data.relative_keypoints[:2]]) / scale
        boxes.append(FaceBox(rel.xmin * w / scale, rel.ymin * h / scale, rel.width * w / scale,
                             rel.height * h / scale, float(det.score[0]), eyes))
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def _close_up(rgb: np.ndarray, box: FaceBox, angle_deg: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A square close-up around the detected face, turned by `angle_deg`, and its photo-to-close-up affine."""
    side = MESH_BOX_SCALE * max(box.width, box.height)
    # OpenCV's affine works on pixel centres at integers, half a pixel off mediapipe's box coordinates.
    to_crop = similarity_transform(box.center - 0.5, angle_deg, size / side, np.full(2, size / 2 - 0.5))
    return warp(rgb, to_crop, size, cv2.BORDER_REPLICATE), to_crop


def face_angle(rgb: np.ndarray, box: FaceBox) -> float:
    """The in-plane angle that turns the face upright, from the detector's eye keypoints.

    The keypoints give the eye line, which fixes the angle up to a half turn: on a face turned far from
    upright (a sideways or upside-down photo without EXIF orientation) mediapipe's keypoints often swap
    the eyes. dlib's frontal-face detector, which only fires on upright faces, settles the half turn.
    """
    angle = eye_roll_deg(box.eyes)
    for candidate in (angle, angle + 180.0):
        close_up, _ = _close_up(rgb, box, candidate, UPRIGHT_CHECK_SIZE)
        if mesh.upright_face_found(close_up):
            return candidate
    return angle


def mesh_landmarks(rgb: np.ndarray, box: FaceBox, eyes_in_order: bool = False) -> np.ndarray | None:
    """478 3D landmarks in photo pixels from an upright close-up around `box`, or None if the mesh fails.

    `eyes_in_order`: the box's eyes come from a face mesh (a tracked face's previous frame), never
    swapped, so their line alone turns the face upright, without face_angle's dlib check (40% of a
    tracked frame's time)."""
    angle = eye_roll_deg(box.eyes) if eyes_in_order else face_angle(rgb, box)
    close_up, to_crop = _close_up(rgb, box, angle, MESH_INPUT)
    result = mesh.FACE_MESH.process(close_up)
    if not result.multi_face_landmarks:
        return None
    points = np.array([[p.x, p.y, p.z] for p in result.multi_face_landmarks[0].landmark], dtype=np.float64)
    points *= MESH_INPUT  # mediapipe normalises x, y by the input size and z by its width
    return transform_landmarks(points, cv2.invertAffineTransform(to_crop))


def face_height(landmarks: np.ndarray) -> float:
    """Brow-to-chin distance in 3D, so a tilted or turned head measures the same as a frontal one."""
    return float(np.linalg.norm(landmarks[mesh.BROW_CENTER] - landmarks[mesh.CHIN]))


# Mirror-symmetric landmark pairs that span the face in x and y; their differences give the face's
# left-right axis without assuming any canonical 3D face model.
_SYMMETRIC_PAIRS = ((mesh.EYE_OUTER_LEFT, mesh.EYE_OUTER_RIGHT), (mesh.EYE_INNER_LEFT, mesh.EYE_INNER_RIGHT),
                    (mesh.SIDE_LEFT, mesh.SIDE_RIGHT), (mesh.MOUTH_LEFT, mesh.MOUTH_RIGHT),
                    (mesh.NOSE_WING_LEFT, mesh.NOSE_WING_RIGHT), (mesh.IRIS_LEFT, mesh.IRIS_RIGHT))


def head_rotation(landmarks: np.ndarray) -> np.ndarray:
    """Rotation (3x3, OpenCV axes) taking a frontal, upright head to the observed one.

    Axes of the face: x from the image-left to the image-right half of the face (mean over symmetric
    point pairs); y from the eyes to the mouth, made orthogonal to x -- the eye and mouth corners lie close
    to one plane parallel to the image in a frontal face, so this measures pitch without a head model.
    """
    p = np.asarray(landmarks, dtype=np.float64)
    x_axis = sum((p[b] - p[a]) / np.linalg.norm(p[b] - p[a]) for a, b in _SYMMETRIC_PAIRS)
    x_axis /= np.linalg.norm(x_axis)
    eyes = p[[mesh.EYE_OUTER_LEFT, mesh.EYE_OUTER_RIGHT, mesh.EYE_INNER_LEFT, mesh.EYE_INNER_RIGHT]].mean(0)
    mouth = p[[mesh.MOUTH_LEFT, mesh.MOUTH_RIGHT]].mean(0)
    y_axis = mouth - eyes
    y_axis -= x_axis * np.dot(y_axis, x_axis)
    y_axis /= np.linalg.norm(y_axis)
    z_axis = np.cross(x_axis, y_axis)
    return np.stack([x_axis, y_axis, z_axis], axis=1)


def head_pose(landmarks: np.ndarray) -> dict[str, float]:
    """Yaw, pitch, roll in degrees such that perse.core.camera.rotation_ypr(yaw, pitch, roll) is the head rotation."""
    r = head_rotation(landmarks)
    # rotation_ypr = Rz(roll) Rx(pitch) Ry(yaw): its last row is (-cos p sin y, sin p, cos p cos y) and its
    # second column is (-sin r cos p, cos r cos p, sin p).
    pitch = math.degrees(math.asin(float(np.clip(r[2, 1], -1.0, 1.0))))
    yaw = math.degrees(math.atan2(-r[2, 0], r[2, 2]))
    roll = math.degrees(math.atan2(-r[0, 1], r[1, 1]))
    return {"yaw": yaw, "pitch": pitch, "roll": roll}

