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
MIN_FONT = 0.4  # OpenCV font scale below which text stops being legible


def _text(image: np.ndarray, text: str, org: tuple[int, int], scale: float, color=(255, 255, 255)) -> None:
    thickness = max(1, round(scale * 2))
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def _wrap(text: str, width: int, scale: float) -> list[str]:
    lines, line = [], ""
    for word in text.split(" "):
        trial = f"{line} {word}".strip()
        if line and cv2.getTextSize(trial, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + [line]


def _legend(width: int, scale: float, warnings: list[str]) -> np.ndarray:
    """Colour swatches for every region, then the warnings (or "no warnings"), wrapped to the width."""
    (_, text_h), _ = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    row = text_h * 2 + 4
    entries, x, y = [], 8, 0
    for name in (*EXCLUSIVE, *OUTLINED):
        step = text_h + 6 + cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] + 2 * text_h
        if x + step > width:
            x, y = 8, y + row
        entries.append((name, x, y))
        x += step
    notes = [line for note in (warnings or ["no warnings"]) for line in _wrap(f"- {note}", width - 16, scale)]
    legend = np.zeros((y + row * (1 + len(notes)) + text_h, width, 3), dtype=np.uint8)
    for name, x, y in entries:
        top = y + row // 2 - text_h // 2 + 2
        cv2.rectangle(legend, (x, top), (x + text_h, top + text_h), COLORS[name], -1)
        _text(legend, name, (x + text_h + 6, top + text_h), scale)
    for i, line in enumerate(notes):
        _text(legend, line, (8, y + row * (i + 2) - text_h // 2), scale, (255, 200, 0))
    return legend


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

    legend = _legend(size * 3, max(font, MIN_FONT), portrait.warnings)
    return np.concatenate([np.concatenate([points, overlay, matte], axis=1), legend], axis=0)
