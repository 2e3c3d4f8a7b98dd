"""A plain bundle of 3D Gaussians in world space: what every renderer call takes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The five fields in declaration order, for code that treats them alike."""
        return self.means, self.quats, self.scales, self.opacities, self.colors

    def map(self, function: Callable[[torch.Tensor], torch.Tensor]) -> "Gaussians":
        """The same function applied to every field (move, detach, index, batch...)."""
        return Gaussians(*(function(t) for t in self.tensors()))

    def to(self, device: torch.device | str) -> "Gaussians":
        return self.map(lambda t: t.to(device))

    def detach(self) -> "Gaussians":
        return self.map(torch.Tensor.detach)

    def select(self, index: torch.Tensor) -> "Gaussians":
        return self.map(lambda t: t[index])
