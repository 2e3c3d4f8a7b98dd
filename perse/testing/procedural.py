"""A procedural head-like scene written through the dataset contract, so the avatar stage is testable
without the synthesis stage.

The scene is a Gaussian ellipsoid "head" whose surface is split into regions; each category recolours
its own region (hair cap, glasses band, lips), each value being one colour. Expressions displace the
lower face and move one mark on the skin per control (MARKS). Frames are rendered with the project's renderer over a non-black background, with the
person alpha as mask, exactly as a synthesis stage writes them. Because every look is a known colour
blend, pair targets (latent interpolation) are exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from perse.core.camera import Camera, head_pose_viewmat, intrinsics
from perse.core.gaussians import Gaussians
from perse.core.render import render
from perse.dataset import (
    EXPRESSION_NAMES,
    SOURCE,
    Clip,
    Dataset,
    DatasetWriter,
    Frame,
    Pair,
)

FOV_DEG = 14.0
SKIN = (0.85, 0.64, 0.52)
# Category -> (region selector name, colours of codes 0..n; code 0 is the source look).
LOOKS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "hair": ((0.30, 0.18, 0.10), (0.90, 0.10, 0.10), (0.15, 0.25, 0.95)),
    "glasses": (SKIN, (0.05, 0.05, 0.05), (0.10, 0.75, 0.20)),
    "lips": ((0.75, 0.40, 0.40), (0.95, 0.05, 0.45), (0.35, 0.10, 0.60)),
}
# Every expression control has a dark mark on the skin of the face's front (x, y, in head units; the
# person's left is +x, down is +y), clear of the category regions, which it moves by (dx, dy): so the
# avatar can only reproduce a frame by learning each control on its own. (The marks are a code, not a
# face: the head has no room for anatomy at this size.) jawOpen also lowers the lower
# face, and each smile widens its half of it.
MARK_COLOUR = (0.45, 0.28, 0.24)
MARK_RADIUS = 0.07
MARKS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "eyeBlinkRight": ((-0.3, 0.06), (0.0, 0.04)),
    "browInnerUp": ((-0.15, 0.06), (0.0, -0.04)),
    "eyeWide": ((0.0, 0.06), (0.0, -0.04)),
    "browDown": ((0.15, 0.06), (0.0, 0.04)),
    "eyeBlinkLeft": ((0.3, 0.06), (0.0, 0.04)),
    "mouthPucker": ((-0.3, 0.18), (0.04, 0.0)),
    "mouthFunnel": ((-0.15, 0.18), (0.0, 0.04)),
    "browOuterUp": ((0.0, 0.18), (0.0, -0.04)),
    "mouthPress": ((0.15, 0.18), (0.0, -0.04)),
    "mouthStretch": ((0.3, 0.18), (0.04, 0.0)),
    "mouthSmileRight": ((-0.3, 0.3), (-0.03, -0.04)),
    "mouthSmileLeft": ((0.3, 0.3), (0.03, -0.04)),
    "cheekPuff": ((-0.15, 0.45), (-0.04, 0.0)),
    "jawOpen": ((0.0, 0.45), (0.0, 0.05)),
}


@dataclass
class ProceduralHead:
    """The ground-truth scene: canonical Gaussians, a region label per Gaussian, colours per code."""

    means: torch.Tensor  # (N, 3)
    scale: float
    region: torch.Tensor  # (N,) index into categories, -1 = skin
    categories: tuple[str, ...]
    marks: torch.Tensor  # (N,) index into EXPRESSION_NAMES of the control whose mark it is, -1 = none

    @classmethod
    def build(cls, n: int = 1200, categories: tuple[str, ...] = tuple(LOOKS)) -> "ProceduralHead":
        unknown = [c for c in categories if c not in LOOKS]
        if unknown:
            raise ValueError(f"procedural head has no look for {unknown}; choose from {list(LOOKS)}")
        # Fibonacci sphere: evenly spread surface points, deterministic.
        i = np.arange(n) + 0.5
        polar = np.arccos(1 - 2 * i / n)
        azimuth = math.pi * (1 + 5 ** 0.5) * i
        unit = np.stack([np.sin(polar) * np.cos(azimuth), np.cos(polar), np.sin(polar) * np.sin(azimuth)], 1)
        axes = np.array([0.5, 0.62, 0.45])
        centre = np.array([0.0, 0.0, 0.4])
        means = unit * axes + centre
        x, y, z = means.T
        front = z < centre[2] - 0.25
        selectors = {
            "hair": (y < -0.22) | ((z > centre[2] + 0.05) & (y < 0.25)),
            "glasses": front & (np.abs(y + 0.08) < 0.07),
            "lips": front & (np.abs(y - 0.3) < 0.06) & (np.abs(x) < 0.2),
        }
        region = np.full(n, -1)
        for index, name in enumerate(categories):
            region[selectors[name] & (region < 0)] = index
        marks = np.full(n, -1)
        for index, name in enumerate(EXPRESSION_NAMES):
            (mx, my), _ = MARKS[name]
            marks[front & (region < 0) & ((x - mx) ** 2 + (y - my) ** 2 < MARK_RADIUS ** 2)] = index
        spacing = math.sqrt(4 * math.pi * axes.mean() ** 2 / n)
        return cls(torch.tensor(means, dtype=torch.float32), 0.8 * spacing, torch.tensor(region), categories,
                   torch.tensor(marks))

    def colors(self, codes: dict[str, float | tuple[int, int, float]] | None = None) -> torch.Tensor:
        """Per-Gaussian colours; `codes` maps category -> code index, or (code_a, code_b, t) for a blend."""
        colors = torch.tensor(SKIN).repeat(len(self.means), 1)
        for index, name in enumerate(self.categories):
            choice = (codes or {}).get(name, 0)
            a, b, t = choice if isinstance(choice, tuple) else (choice, choice, 0.0)
            colour = (1 - t) * torch.tensor(LOOKS[name][a]) + t * torch.tensor(LOOKS[name][b])
            colors[self.region == index] = colour
        colors[self.marks >= 0] = torch.tensor(MARK_COLOUR)
        return colors

    def gaussians(self, codes=None, expression=None) -> Gaussians:
        means = self.means.clone()
        strength = dict(zip(EXPRESSION_NAMES, np.zeros(len(EXPRESSION_NAMES)) if expression is None
                            else np.asarray(expression, np.float64)))
        lower = means[:, 1] > 0.2
        means[lower, 1] += 0.08 * float(strength["jawOpen"]) * (means[lower, 1] - 0.2) / 0.42
        for side, sign in (("Left", 1.0), ("Right", -1.0)):
            half = lower & (means[:, 0] * sign > 0)
            means[half, 0] *= 1 + 0.15 * float(strength[f"mouthSmile{side}"])
        for index, name in enumerate(EXPRESSION_NAMES):
            _, (dx, dy) = MARKS[name]
            means[self.marks == index, :2] += float(strength[name]) * torch.tensor([dx, dy])
        n = len(means)
        return Gaussians(means, torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), torch.full((n, 3), self.scale),
                         torch.full((n,), 0.99), self.colors(codes))

    def region_mask(self, index: int, camera: Camera, threshold: float = 0.02, device: str = "cpu") -> np.ndarray:
        """Where region `index` is visible (occlusion included) from `camera`, as a 0/1 float image."""
        scene = self.gaussians()
        scene.colors = (self.region == index).float()[:, None].repeat(1, 3)
        with torch.no_grad():
            return (render(scene.to(device), camera).rgb[..., 0].cpu().numpy() > threshold).astype(np.float32)


def _background(size: int) -> np.ndarray:
    ramp = np.linspace(0.35, 0.65, size, dtype=np.float32)
    return np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)), np.full((size, size), 0.5,
                                                                                           np.float32)], -1)


def _shot(head: ProceduralHead, camera: Camera, codes, expression, device: str) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        out = render(head.gaussians(codes, expression).to(device), camera)
    alpha = out.alpha.cpu().numpy()
    image = out.rgb.cpu().numpy() + (1 - alpha[..., None]) * _background(camera.width)
    return np.clip(image, 0, 1), np.clip(alpha, 0, 1)


def write_procedural_dataset(run: Path, size: int = 64, frames: int = 8, categories: tuple[str, ...] = tuple(LOOKS),
                             pair_ts: tuple[float, ...] = (1 / 4, 1 / 2, 3 / 4), n_gaussians: int = 1200,
                             init_points: bool = False, expression_range: float = 1.0, seed: int = 0,
                             device: str = "cpu", held_out_blends: tuple[float, ...] = ()) -> Dataset:
    """Write <run>/dataset: a source clip and one clip per (category, code 1..2), plus exact pairs
    blending codes 1 and 2 of each category at the frontal view. With `init_points`, also writes the
    scene's canonical points as `meta.extra["init_points"]`, as a lifted portrait would. Each frame moves
    two expression controls, drawn uniformly in [0, expression_range]. `device` only chooses where frames
    are rendered (CUDA for large sizes). Each t of `held_out_blends` adds, per category, a held-out look
    coloured as the blend of codes 1 and 2 at t (a look the latent space can reach), filmed at the
    source clip's cameras and expressions, as every clip of a synthesised dataset is."""
    head = ProceduralHead.build(n_gaussians, categories)
    K = intrinsics(size, FOV_DEG)
    extra = {}
    writer_categories = {c: [SOURCE, f"{c}_a", f"{c}_b"] + [f"{c}_mix{t:g}" for t in held_out_blends]
                         for c in categories}
    if init_points:
        extra["init_points"] = "init_points.npz"
    writer = DatasetWriter(run, size, K, writer_categories, extra=extra)
    if init_points:
        np.savez(writer.root / "init_points.npz", points=head.means.numpy(), colors=head.colors().numpy())
    rng = np.random.default_rng(seed)
    clips = [("source", SOURCE, 0)] + [(f"{c}_{k}", c, k) for c in categories for k in (1, 2)]
    for clip_id, category, code in clips:
        records = []
        for index in range(frames):
            # A sweep of yaw with alternating pitch covers the views the avatar must explain.
            yaw = -20 + 40 * index / max(frames - 1, 1)
            pitch = 8.0 * (1 if index % 2 else -1) * rng.uniform(0.3, 1.0)
            # Two controls a frame, as a face rarely makes more at once: every control still moves in
            # several frames of a run, each mostly on its own.
            expression = [0.0] * len(EXPRESSION_NAMES)
            for control in rng.choice(len(EXPRESSION_NAMES), 2, replace=False):
                expression[control] = float(rng.uniform(0, expression_range))
            viewmat = head_pose_viewmat(FOV_DEG, yaw, pitch)
            codes = {} if category == SOURCE else {category: code}
            image, alpha = _shot(head, Camera(K, viewmat, size, size), codes, expression, device)
            records.append((Frame(index, viewmat.tolist(), expression), image, alpha))
        writer.add_clip(Clip(clip_id, category, "" if category == SOURCE else f"{category}_{'ab'[code - 1]}",
                             1.0, code), records)
        if category == SOURCE:
            source_poses = [(frame.world_to_camera, frame.expression) for frame, _, _ in records]
    for category in categories:
        for code, t in enumerate(held_out_blends, start=3):
            shots = [_shot(head, Camera(K, np.asarray(viewmat), size, size), {category: (1, 2, t)}, expression, device)
                     for viewmat, expression in source_poses]
            writer.add_clip(Clip(f"{category}_mix{t:g}", category, f"{category}_mix{t:g}", 1.0, code, holdout=True),
                            [(Frame(i, viewmat, expression), image, alpha)
                             for i, ((viewmat, expression), (image, alpha)) in enumerate(zip(source_poses, shots))])
    frontal = Camera(K, head_pose_viewmat(FOV_DEG), size, size)
    zero = [0.0] * len(EXPRESSION_NAMES)
    for index, category in enumerate(categories):
        mask = head.region_mask(index, frontal, device=device)
        for t in pair_ts:
            image, alpha = _shot(head, frontal, {category: (1, 2, t)}, zero, device)
            writer.add_pair(Pair(f"{category}_t{int(round(t * 100)):02d}", category, f"{category}_1", f"{category}_2",
                                 float(t), frontal.viewmat.tolist(), zero), image, mask, alpha)
    return writer.close()
