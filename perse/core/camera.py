"""The one camera convention every stage shares.

Coordinates follow OpenCV: x right, y down, z forward (away from the camera). The reference
portrait is seen by the *frontal camera*: pinhole intrinsics from a fixed vertical field of view, and a
world-to-camera matrix that is a pure translation by `distance` along +z. World units are chosen so the
square crop spans x, y in [-1, 1] on the plane z = 0, which passes through the face; the head therefore
has a radius of roughly 0.4 world units whatever the image size.

Head motion is expressed as the camera orbiting a pivot (the head centre, behind the face): a clip's
frames and the avatar's head pose are both just world-to-camera matrices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CROP_HALF_EXTENT = 1.0


def focal_length(size: int, fov_deg: float) -> float:
    return 0.5 * size / math.tan(math.radians(fov_deg) / 2)


def camera_distance(fov_deg: float) -> float:
    """Distance from the frontal camera to the z = 0 plane that the crop spans exactly."""
    return CROP_HALF_EXTENT / math.tan(math.radians(fov_deg) / 2)


def intrinsics(size: int, fov_deg: float) -> np.ndarray:
    f = focal_length(size, fov_deg)
    c = size / 2
    return np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]], dtype=np.float64)


def frontal_viewmat(fov_deg: float) -> np.ndarray:
    viewmat = np.eye(4)
    viewmat[2, 3] = camera_distance(fov_deg)
    return viewmat


def rotation_ypr(yaw_deg: float, pitch_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """Head rotation R = Rz Rx Ry: yaw about y, pitch about x, roll about z (signs: `head_pose_viewmat`)."""
    y, p, r = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def head_pose_viewmat(
    fov_deg: float, yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0,
    pivot: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 0.35),
) -> np.ndarray:
    """World-to-camera matrix of the frontal camera looking at a head rotated about `pivot`.

    Rotating the head by R about the pivot p maps a world point x to R (x - p) + p; composing with the
    frontal camera gives the world-to-camera matrix, so renderers never need a separate head transform.
    Positive yaw turns the face towards the image's left edge (the person's right), i.e. the nose moves
    left in the image.
    """
    pivot = np.asarray(pivot, dtype=np.float64)
    rotation = rotation_ypr(yaw_deg, pitch_deg, roll_deg)
    head = np.eye(4)
    head[:3, :3] = rotation
    head[:3, 3] = pivot - rotation @ pivot
    return frontal_viewmat(fov_deg) @ head


def project(points: np.ndarray, viewmat: np.ndarray, K: np.ndarray) -> np.ndarray:
    """World points (N, 3) -> pixel coordinates (N, 2) and depth (N,), as (N, 3)."""
    cam = points @ viewmat[:3, :3].T + viewmat[:3, 3]
    uv = cam[:, :2] / cam[:, 2:3] * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])
    return np.concatenate([uv, cam[:, 2:3]], axis=1)


def unproject(uv: np.ndarray, depth: np.ndarray, viewmat: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixels (N, 2) at camera depths (N,) -> world points (N, 3)."""
    x = (uv[:, 0] - K[0, 2]) / K[0, 0] * depth
    y = (uv[:, 1] - K[1, 2]) / K[1, 1] * depth
    cam = np.stack([x, y, depth], axis=1)
    inverse = np.linalg.inv(viewmat)
    return cam @ inverse[:3, :3].T + inverse[:3, 3]


@dataclass
class Camera:
    """A pinhole camera for one render: intrinsics for `width` x `height` and a world-to-camera matrix."""

    K: np.ndarray
    viewmat: np.ndarray
    width: int
    height: int

    @classmethod
    def frontal(cls, size: int, fov_deg: float, yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> "Camera":
        return cls(intrinsics(size, fov_deg), head_pose_viewmat(fov_deg, yaw_deg, pitch_deg), size, size)


def crop_points_to_world(points_px: np.ndarray, size: int, fov_deg: float) -> np.ndarray:
    """Crop-pixel points (N, 3) with mediapipe-style z in pixels (negative = nearer) -> world points.

    The crop spans 2 world units over `size` pixels at the face plane, so z scales by the same factor."""
    points_px = np.asarray(points_px, dtype=np.float64)
    depth = camera_distance(fov_deg) + points_px[:, 2] / (size / 2)
    return unproject(points_px[:, :2], depth, frontal_viewmat(fov_deg), intrinsics(size, fov_deg))
