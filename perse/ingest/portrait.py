"""The ingested portrait: the aligned crop every later stage starts from (docs/architecture.md section 3).

Files in a run folder: portrait.png (aligned RGB crop), portrait.json (everything else below),
matte.png (feathered person alpha), masks/<region>.png (soft region masks), debug.png (overlay).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perse.core.io import atomic_write_json, load_png, save_png
from perse.core.paths import RunPaths
from perse.errors import PerseError

# Soft masks in [0, 1] at crop resolution. Editors, the animator and metrics rely on these names.
REGIONS = (
    "face_skin",  # forehead to chin, without eyes, brows, lips, mouth interior (nose included)
    "lips",
    "mouth_interior",
    "eyes",  # eye openings (sclera + iris), both eyes
    "brows",
    "nose",
    "beard",  # where a beard/moustache grows: lower face skin below the nose, jaw and chin
    "hair",  # person matte above/around the face that is not skin, neck or clothes
    "neck",
    "clothes",
    "ears",
)


@dataclass
class Portrait:
    image: np.ndarray  # (S, S, 3) uint8 RGB
    # (478, 3) float32 mediapipe face mesh with iris, in crop pixels; z in pixels, negative = nearer
    # the camera (mediapipe's convention, scaled by the crop width). Pixel i spans [i, i + 1], its centre
    # at i + 0.5, as in perse.core.camera's intrinsics (subtract 0.5 before drawing with OpenCV).
    landmarks: np.ndarray
    matte: np.ndarray  # (S, S) float32 in [0, 1]
    masks: dict[str, np.ndarray]  # region name -> (S, S) float32 in [0, 1]
    # 2x3 affine taking original-photo pixels to crop pixels (rotation removes head roll).
    crop_transform: np.ndarray
    head_pose: dict[str, float]  # yaw, pitch, roll in degrees (camera convention of perse.core.camera)
    intrinsics: np.ndarray  # 3x3, from perse.core.camera.intrinsics(size, fov_deg)
    fov_deg: float
    source: str = ""
    source_size: tuple[int, int] = (0, 0)  # (width, height) of the oriented original
    detection_score: float = 0.0
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    def save(self, run: Path) -> None:
        run = Path(run)
        save_png(RunPaths(run).portrait, self.image)
        save_png(RunPaths(run).matte, self.matte)
        for name, mask in self.masks.items():
            save_png(run / "masks" / f"{name}.png", mask)
        atomic_write_json(RunPaths(run).portrait_meta, {
            "size": self.size,
            "landmarks": np.round(self.landmarks.astype(float), 3).tolist(),
            "matte": RunPaths(run).matte.name,
            "masks": {name: f"masks/{name}.png" for name in self.masks},
            "crop_transform": self.crop_transform.tolist(),
            "head_pose": self.head_pose,
            "intrinsics": self.intrinsics.tolist(),
            "fov_deg": self.fov_deg,
            "source": self.source,
            "source_size": list(self.source_size),
            "detection_score": self.detection_score,
            "warnings": self.warnings,
            "extra": self.extra,
        })

    @classmethod
    def load(cls, run: Path) -> "Portrait":
        run = Path(run)
        meta_path = RunPaths(run).portrait_meta
        if not meta_path.exists():
            raise PerseError(f"{meta_path} is missing: run `perse ingest PHOTO --out {run}` first")
        meta = json.loads(meta_path.read_text())
        image = np.round(load_png(RunPaths(run).portrait) * 255).astype(np.uint8)
        return cls(
            image=image,
            landmarks=np.asarray(meta["landmarks"], dtype=np.float32),
            matte=load_png(run / meta["matte"], gray=True),
            masks={name: load_png(run / path, gray=True) for name, path in meta["masks"].items()},
            crop_transform=np.asarray(meta["crop_transform"], dtype=np.float64),
            head_pose=dict(meta["head_pose"]),
            intrinsics=np.asarray(meta["intrinsics"], dtype=np.float64),
            fov_deg=float(meta["fov_deg"]),
            source=meta.get("source", ""),
            source_size=tuple(meta.get("source_size", (0, 0))),
            detection_score=float(meta.get("detection_score", 0.0)),
            warnings=list(meta.get("warnings", [])),
            extra=dict(meta.get("extra", {})),
        )


def is_ingested(run: Path) -> bool:
    run = Path(run)
    return RunPaths(run).portrait_meta.exists() and RunPaths(run).portrait.exists()
