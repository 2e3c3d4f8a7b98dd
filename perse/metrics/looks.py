"""Held-out looks: does the latent space reach looks it never saw?

Looks marked `holdout` in the dataset (two per category) are never trained on. For each, the category's
code is fitted (`Avatar.fit_codes`, decoder frozen, all looks in one batch) to the look's frontal frame
inside the category's region, through the frame's person matte (so a hat must be drawn, not left to show
through); the avatar with that code then renders the look's other kept frames, scored by PSNR inside the
region at each frame's pose, on black as training renders them.

The region at a frame is where the look differs from the source clip's frame at the same camera and
expression (a held-out look shows the source clip's expressions), dilated like the disentanglement regions: it
turns with the head and is exactly what the look changes. The same frames rendered with the source code
(no transfer at all) are scored too, so the fit's gain shows beside its result.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from perse.avatar.avatar import Avatar
from perse.avatar.losses import psnr
from perse.dataset import SOURCE, Clip, Dataset, Frame
from perse.metrics.disentangle import CHANGE_THRESHOLD
from perse.metrics.faults import disk
from perse.metrics.frames import frontal_frame, matching_frame, render_latents, yaw_deg

HELD_OUT_GOAL_DB = 26.0
# Half fit_code's default steps at a larger rate: the fit starts at the prior mean, within a few prior
# standard deviations of any code, and it runs on every look at once; on a CPU it is most of the stage.
FIT_STEPS = 100
FIT_LR = 0.05


def premultiplied(dataset: Dataset, clip: Clip, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """(image * matte, matte) of a stored frame: what a render on black should reproduce."""
    matte = dataset.frame_mask(clip, frame)
    return dataset.frame_image(clip, frame) * matte[..., None], matte


class _Frames:
    """`premultiplied` frames of one dataset, each loaded once: every held-out look is compared with the
    same source frames, and a look's frame serves both its region and its score. The source clip's frames
    stay (one clip's worth); a look's go with `forget`, once the look is scored."""

    def __init__(self, dataset: Dataset, source: Clip):
        self.dataset, self.source = dataset, source
        self.loaded: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, clip: Clip, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        key = (clip.id, frame.index)
        if key not in self.loaded:
            self.loaded[key] = premultiplied(self.dataset, clip, frame)
        return self.loaded[key]

    def forget(self, clip: Clip) -> None:
        for key in [key for key in self.loaded if key[0] == clip.id]:
            del self.loaded[key]


def look_region(frames: _Frames, look: Clip, frame: Frame, dilation_px: int) -> np.ndarray | None:
    """Where `look` differs from the source look at `frame`'s camera and expression, dilated; None when
    the source clip has no such frame."""
    source_frame = matching_frame(frames.source, frame)
    if source_frame is None:
        return None
    image, matte = frames(look, frame)
    source_image, source_matte = frames(frames.source, source_frame)
    changed = ((np.abs(image - source_image).max(-1) > CHANGE_THRESHOLD)
               | (np.abs(matte - source_matte) > CHANGE_THRESHOLD)).astype(np.uint8)
    return cv2.dilate(changed, disk(dilation_px)).astype(np.float32)


def held_out_looks(avatar: Avatar, dataset: Dataset, dilation_px: int, steps: int = FIT_STEPS
                   ) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """The measure, and (label, image) tiles showing each look's most turned scored frame: the frame
    itself, the fitted avatar and the source code, all on black."""
    looks = [clip for clip in dataset.held_out_looks if clip.category in avatar.categories]
    if not looks:
        return {"looks": 0, "goal_db": HELD_OUT_GOAL_DB,
                "note": "no held-out looks in the dataset (synth.holdout_looks=0, or a dataset from a hub tool)"}, []
    frames = _Frames(dataset, dataset.clips[SOURCE])
    fits = []  # (look, fit frame, its region)
    for look in looks:
        frame = frontal_frame(look)
        region = look_region(frames, look, frame, dilation_px)
        if region is not None and region.sum() >= 1:
            fits.append((look, frame, region))
    if not fits:
        return {"looks": 0, "goal_db": HELD_OUT_GOAL_DB,
                "note": "no held-out look differs from the source clip at a shared frame"}, []
    images, mattes = zip(*(frames(look, frame) for look, frame, _ in fits))
    codes = avatar.fit_codes(np.stack(images), np.stack([region for _, _, region in fits]),
                             [look.category for look, _, _ in fits],
                             np.stack([frame.world_to_camera for _, frame, _ in fits]),
                             np.stack([frame.expression for _, frame, _ in fits]),
                             mattes=np.stack(mattes), steps=steps, lr=FIT_LR)
    per_look: dict[str, Any] = {}
    tiles: list[tuple[str, np.ndarray]] = []
    for (look, fit_frame, _), code in zip(fits, codes):
        scored = score_look(avatar, frames, look, fit_frame, code, dilation_px)
        frames.forget(look)
        if scored is not None:
            result, shown = scored
            per_look[look.id] = {"category": look.category, "value": look.value, **result}
            tiles += [(f"{look.id} frame", shown[0]), (f"fitted {result['psnr']:.1f} dB", shown[1]),
                      (f"source code {result['psnr_source_code']:.1f} dB", shown[2])]
    if not per_look:
        return {"looks": 0, "goal_db": HELD_OUT_GOAL_DB,
                "note": "held-out looks have no other kept frames to score"}, []
    by_category: dict[str, list[float]] = {}
    for result in per_look.values():
        by_category.setdefault(result["category"], []).append(result["psnr"])
    return {
        "looks": len(per_look),
        "goal_db": HELD_OUT_GOAL_DB,
        "psnr": float(np.mean([r["psnr"] for r in per_look.values()])),
        "psnr_source_code": float(np.mean([r["psnr_source_code"] for r in per_look.values()])),
        "worst": min(per_look, key=lambda k: per_look[k]["psnr"]),
        "categories": {name: float(np.mean(values)) for name, values in by_category.items()},
        "per_look": per_look,
        "fit_steps": steps,
    }, tiles


def score_look(avatar: Avatar, frames: _Frames, look: Clip, fit_frame: Frame, code: torch.Tensor,
               dilation_px: int) -> tuple[dict[str, Any], list[np.ndarray]] | None:
    """PSNR in the region over the look's kept frames other than the one fitted, with the fitted code and
    with the source code, and the most turned of those frames with both renders; None if no such frame
    has a region."""
    scored, regions = [], []
    for frame in look.kept_frames:
        if frame.index == fit_frame.index:
            continue
        region = look_region(frames, look, frame, dilation_px)
        if region is not None and region.sum() >= 1:
            scored.append(frame)
            regions.append(region)
    if not scored:
        return None
    device = avatar.device
    targets = torch.as_tensor(np.stack([frames(look, f)[0] for f in scored]), device=device)
    region = torch.as_tensor(np.stack(regions), device=device)[..., None]
    viewmats = torch.tensor(np.array([f.world_to_camera for f in scored]), dtype=torch.float32, device=device)
    expressions = torch.tensor(np.array([f.expression for f in scored]), dtype=torch.float32, device=device)
    shown = max(range(len(scored)), key=lambda i: abs(yaw_deg(scored[i])))
    scores, images = {}, [targets[shown].cpu().numpy()]
    for name, latent in (("psnr", avatar.latent({look.category: code})), ("psnr_source_code", avatar.latent())):
        rgb, _ = render_latents(avatar, latent.expand(len(scored), -1), expressions, viewmats,
                                frames.dataset.meta.image_size)
        scores[name] = psnr(rgb, targets, region)
        images.append(rgb[shown].cpu().numpy())
    return {**scores, "frames": len(scored), "fit_frame": fit_frame.index}, images
