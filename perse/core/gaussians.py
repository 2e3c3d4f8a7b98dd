"""A plain bundle of 3D Gaussians in world space: what every renderer call takes."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Gaussians:
    means: torch.Tensor  # (N, 3) world positions
    quats: torch.Tensor  # (N, 4) rotations, wxyz, need not be normalised
    scales: torch.Tensor  # (N, 3) standard deviations along the local axes (not log)
    opacities: torch.Tensor  # (N,) in [0, 1]
    colors: torch.Tensor  # (N, 3) linear RGB in [0, 1]

    def __len__(self) -> int:
        return int(self.means.shape[0])

    def to(self, device: torch.device | str) -> "Gaussians":
        return Gaussians(*(t.to(device) for t in (self.means, self.quats, self.scales, self.opacities, self.colors)))

    def detach(self) -> "Gaussians":
        return Gaussians(*(t.detach() for t in (self.means, self.quats, self.scales, self.opacities, self.colors)))

    def select(self, index: torch.Tensor) -> "Gaussians":
        return Gaussians(*(t[index] for t in (self.means, self.quats, self.scales, self.opacities, self.colors)))
