"""A one-glance check of an ingest: landmarks, region masks and matte side by side, with a legend."""
from __future__ import annotations

import cv2
import numpy as np

from perse.ingest import mesh
from perse.ingest.portrait import Portrait
from perse.ingest.regions import EXCLUSIVE

COLORS = {  # RGB, chosen to be told apart at a glance
    "face_skin": (255, 205, 150), "lips": (220, 20, 60), "mouth_interior": (90, 0, 40), "eyes": (0, 200, 255),
    "brows": (120, 60, 20), "nose": (255, 140, 0), "beard": (0, 160, 0), "hair": (150, 80, 220),
    "neck": (240, 230, 40), "clothes": (40, 90, 255), "ears": (255, 60, 200),
}
OUTLINED = ("nose", "beard")  # overlapping areas are drawn as outlines over the exclusive regions


def _text(image: np.ndarray, text: str, org: tuple[int, int], scale: float, color=(255, 255, 255)) -> None:
    thickness = max(1, round(scale * 2))
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def debug_image(portrait: Portrait) -> np.ndarray:
    size = portrait.size
    font = size / 900
    image = portrait.image.astype(np.float32)

    points = portrait.image.copy()
    out = mesh.outlines(portrait.landmarks)
    polylines = [out.face_oval, out.lips_outer, out.lips_inner, out.nose, *out.eyes, *out.brows]
    # OpenCV draws at pixel centres given as integers; landmarks put a pixel's centre at +0.5.
    polylines = [p - 0.5 for p in polylines]
    cv2.polylines(points, [np.round(p).astype(np.int32) for p in polylines], True, (0, 255, 120), 1, cv2.LINE_AA)
    radius = max(1, size // 400)
    centres = np.round(portrait.landmarks[:, :2] - 0.5).astype(int)
    for x, y in centres[:mesh.IRIS_LEFT]:
        cv2.circle(points, (int(x), int(y)), radius, (255, 255, 0), -1, cv2.LINE_AA)
    for iris in (mesh.IRIS_LEFT, mesh.IRIS_RIGHT):
        cv2.circle(points, tuple(int(v) for v in centres[iris]), radius * 2, (255, 0, 0), -1, cv2.LINE_AA)
    pose = portrait.head_pose
    _text(points, f"yaw {pose['yaw']:+.1f}  pitch {pose['pitch']:+.1f}  roll {pose['roll']:+.1f}",
          (8, round(28 * font * 1.6)), font)

    overlay = image * 0.35
    for name in EXCLUSIVE:
        overlay += portrait.masks[name][:, :, None] * np.array(COLORS[name], dtype=np.float32) * 0.65
    overlay = np.clip(overlay, 0, 255).astype(np.uint8)
    for name in OUTLINED:
        binary = (portrait.masks[name] > 0.5).astype(np.uint8)
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(overlay, contours, -1, COLORS[name], max(1, size // 256), cv2.LINE_AA)

    matte = np.repeat((portrait.matte * 255).astype(np.uint8)[:, :, None], 3, axis=2)

    legend = np.zeros((round(size * 0.12), size * 3, 3), dtype=np.uint8)
    x = 8
    for name in (*EXCLUSIVE, *OUTLINED):
        cv2.rectangle(legend, (x, 10), (x + 14, 24), COLORS[name], -1)
        _text(legend, name, (x + 18, 23), font * 0.9)
        x += 18 + cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, font * 0.9, 1)[0][0] + 16
    notes = "; ".join(portrait.warnings) or "no warnings"
    _text(legend, notes[: size * 3 // 9], (8, legend.shape[0] - 10), font * 0.8, (255, 200, 0))
    return np.concatenate([np.concatenate([points, overlay, matte], axis=1), legend], axis=0)
