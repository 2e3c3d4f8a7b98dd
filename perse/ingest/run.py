"""Photo -> Portrait: load, find the face, align and crop, matte, region masks, head pose, camera."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from perse.config import PipelineConfig
from perse.core.camera import intrinsics
from perse.core.paths import RunPaths
from perse.errors import InputImageError
from perse.ingest import mesh
from perse.ingest.crop import crop_transform, silhouette_above
from perse.ingest.face import detect_faces, face_height, head_pose, mesh_landmarks
from perse.ingest.geometry import inside_photo, transform_landmarks, warp
from perse.ingest.load import Photo, load_photo
from perse.ingest.portrait import Portrait
from perse.ingest.regions import region_masks

# Usability warnings: enlarging the photo more than this looks soft; more padding than this loses hair.
MAX_UPSCALE = 2.0
MAX_PADDED = 0.2
# Head turns (degrees) beyond which the animator must invent much of the face.
MAX_TURN = {"yaw": 30.0, "pitch": 25.0}
PAD_BLUR = 1 / 32  # blur of the padding outside the photo, as a fraction of the crop size
NO_FACE_ADVICE = ("use a photo where one face is clearly visible, roughly frontal, well lit and not covered "
                  "(sunglasses, masks and hands over the face prevent detection); if the face is small in the "
                  "photo, crop the photo around the head")


def find_face(photo: Photo, min_face_px: int) -> tuple[np.ndarray, float, list[str]]:
    """The largest face's 478 landmarks in photo pixels, its detection score, and warnings."""
    boxes = detect_faces(photo.rgb)
    if not boxes:
        raise InputImageError(f"{photo.path}: no face found; {NO_FACE_ADVICE}")
    box = boxes[0]
    notes = []
    if len(boxes) > 1:
        notes.append(f"{len(boxes)} faces found; used the largest (centred at x={box.center[0]:.0f}, "
                     f"y={box.center[1]:.0f}); crop the photo to one person to choose another")
    too_small = (f"{photo.path}: the face is too small ({{px:.0f}} px from brow to chin, at least {min_face_px} "
                 f"needed); use a closer or higher-resolution photo, or crop it around the face")
    # The detector's box spans roughly brow to chin; check it first, as the mesh is unreliable on tiny faces.
    if box.height < min_face_px:
        raise InputImageError(too_small.format(px=box.height))
    landmarks = mesh_landmarks(photo.rgb, box)
    if landmarks is None:
        raise InputImageError(f"{photo.path}: a face was detected but its landmarks could not be found; "
                              f"{NO_FACE_ADVICE}")
    if face_height(landmarks) < min_face_px:
        raise InputImageError(too_small.format(px=face_height(landmarks)))
    return landmarks, box.score, notes


def padded_crop(rgb: np.ndarray, affine: np.ndarray, size: int, inside: np.ndarray) -> np.ndarray:
    """The aligned crop; where it extends past the photo, the photo's edge colours, smoothly blurred.

    Mirroring the photo would fill a tightly framed portrait's padding with copies of the face, which
    the segmenter, editors and viewers would all take for faces; blurred edge colours read as background.
    """
    crop = warp(rgb, affine, size, cv2.BORDER_REPLICATE)
    if inside.min() >= 1.0:
        return crop
    smooth = cv2.GaussianBlur(crop, (0, 0), size * PAD_BLUR)
    blend = inside[:, :, None]
    return np.clip(crop * blend + smooth * (1 - blend) + 0.5, 0, 255).astype(np.uint8)


def person_matte(crop: np.ndarray, inside: np.ndarray, alpha: np.ndarray | None, feather_px: float) -> np.ndarray:
    """Feathered person alpha for the crop; the padding outside the photo is never person."""
    if alpha is not None:
        # A cut-out's own alpha is drawn by a person or a dedicated tool: sharper than our segmenter.
        matte = alpha
    else:
        matte = mesh.SELFIE_SEGMENTATION.process(crop).segmentation_mask.astype(np.float32)
    sigma = feather_px * crop.shape[0] / 512
    if sigma > 0:
        matte = cv2.GaussianBlur(matte, (0, 0), sigma)
    return np.clip(matte, 0, 1) * inside


def usability_notes(affine: np.ndarray, inside: np.ndarray, face_px: float, pose: dict[str, float]) -> list[str]:
    """Warnings about photos that ingest but will give a worse avatar than the user may expect."""
    notes = []
    turned = {axis: angle for axis, angle in pose.items() if axis in MAX_TURN and abs(angle) > MAX_TURN[axis]}
    if turned:
        what = ", ".join(f"{axis} {angle:+.0f} deg" for axis, angle in turned.items())
        notes.append(f"the head is turned away from the camera ({what}): the far side of the face is guessed, "
                     f"so a roughly frontal photo gives a better avatar")
    upscale = float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))
    if upscale > MAX_UPSCALE:
        notes.append(f"the face is small in this photo ({face_px:.0f} px from brow to chin): the crop enlarges it "
                     f"{upscale:.1f}x and will look soft; a higher-resolution photo gives a sharper avatar")
    padded = 1.0 - float(inside.mean())
    if padded > MAX_PADDED:
        notes.append(f"{padded:.0%} of the crop lies outside the photo (it is framed tightly around the face); "
                     f"that part is filled with blurred edge colours and masked out, so hair and shoulders there "
                     f"are missing: a photo showing the whole head and shoulders works better")
    return notes


def ingest(photo_path: str | Path, config: PipelineConfig) -> Portrait:
    cfg = config.ingest
    photo = load_photo(photo_path, cfg.max_megapixels, cfg.min_side)
    landmarks, score, notes = find_face(photo, cfg.min_face_px)
    affine, photo_roll = crop_transform(landmarks, cfg, silhouette_above(photo.rgb, landmarks, cfg))
    size = cfg.size
    inside = inside_photo(affine, photo.size, size)
    crop = padded_crop(photo.rgb, affine, size, inside)
    alpha = None if photo.alpha is None else warp(photo.alpha, affine, size, cv2.BORDER_CONSTANT)
    crop_landmarks = transform_landmarks(landmarks, affine)
    matte = person_matte(crop, inside, alpha, cfg.matte_feather_px)
    masks, matte = region_masks(crop, crop_landmarks, matte)
    # The padding is never person, not even where the face oval runs past the photo's edge.
    masks = {name: mask * inside for name, mask in masks.items()}
    matte = matte * inside
    pose = head_pose(crop_landmarks)
    notes += usability_notes(affine, inside, face_height(landmarks), pose)
    return Portrait(
        image=crop,
        landmarks=crop_landmarks,
        matte=matte,
        masks=masks,
        crop_transform=affine,
        head_pose=pose,
        intrinsics=intrinsics(size, cfg.fov_deg),
        fov_deg=cfg.fov_deg,
        source=str(photo.path),
        source_size=photo.size,
        detection_score=score,
        warnings=photo.warnings + notes,
        extra={
            "photo_roll_deg": photo_roll,
            "format": photo.format,
            "matte_source": "alpha" if alpha is not None else "selfie_segmentation",
            "face_height_px": face_height(crop_landmarks),
            "padded_fraction": float(1.0 - inside.mean()),
        },
    )


def ingest_to_run(photo_path: str | Path, run_dir: str | Path, config: PipelineConfig) -> Portrait:
    """Ingest and write the run folder's portrait files (docs/architecture.md section 3) plus debug.png."""
    from perse.core.io import save_png
    from perse.ingest.debug import debug_image

    portrait = ingest(photo_path, config)
    run_dir = Path(run_dir)
    portrait.save(run_dir)
    save_png(RunPaths(run_dir).debug, debug_image(portrait))
    return portrait
