"""A procedural head-like scene written through the dataset contract, so the avatar stage is testable
without the synthesis stage.

The scene is a Gaussian ellipsoid "head" whose surface is split into regions; each category recolours
its own region (hair cap, glasses band, lips), each value being one colour. Expressions displace the
lower face. Frames are rendered with the project's renderer over a non-black background, with the
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


@dataclass
class ProceduralHead:
    """The ground-truth scene: canonical Gaussians, a region label per Gaussian, colours per code."""

    means: torch.Tensor  # (N, 3)
    scale: float
    region: torch.Tensor  # (N,) index into categories, -1 = skin
    categories: tuple[str, ...]

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
        spacing = math.sqrt(4 * math.pi * axes.mean() ** 2 / n)
        return cls(torch.tensor(means, dtype=torch.float32), 0.8 * spacing, torch.tensor(region), categories)

    def colors(self, codes: dict[str, float | tuple[int, int, float]] | None = None) -> torch.Tensor:
        """Per-Gaussian colours; `codes` maps category -> code index, or (code_a, code_b, t) for a blend."""
        colors = torch.tensor(SKIN).repeat(len(self.means), 1)
        for index, name in enumerate(self.categories):
            choice = (codes or {}).get(name, 0)
            a, b, t = choice if isinstance(choice, tuple) else (choice, choice, 0.0)
            colour = (1 - t) * torch.tensor(LOOKS[name][a]) + t * torch.tensor(LOOKS[name][b])
            colors[self.region == index] = colour
        return colors

    def gaussians(self, codes=None, expression=None) -> Gaussians:
        means = self.means.clone()
        expression = np.zeros(len(EXPRESSION_NAMES)) if expression is None else np.asarray(expression)
        lower = means[:, 1] > 0.2
        # jaw_open lowers the lower face; smile widens it.
        means[lower, 1] += 0.08 * float(expression[0]) * (means[lower, 1] - 0.2) / 0.42
        means[lower, 0] *= 1 + 0.15 * float(expression[1])
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
    scene's canonical points as `meta.extra["init_points"]`, as a lifted portrait would. Expressions
    (jaw_open, smile) are drawn uniformly in [0, expression_range]. `device` only chooses where frames
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
            expression = [float(rng.uniform(0, expression_range)), float(rng.uniform(0, expression_range)), 0.0, 0.0]
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
