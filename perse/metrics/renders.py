"""Batched renders of a trained avatar as the metrics score them: many latents, each with its own camera
and expression, at the dataset's image size."""
from __future__ import annotations

import torch

from perse.avatar.avatar import Avatar
from perse.core.render import render_batch

BATCH = 8


@torch.no_grad()
def render_latents(avatar: Avatar, latents: torch.Tensor, expressions: torch.Tensor, viewmats: torch.Tensor,
                   size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Renders on black, as training sees them: (F, H, W, 3) rgb and (F, H, W) alpha for (F, latent_size)
    latents, (F, E) expressions and (F, 4, 4) world-to-camera matrices."""
    K = torch.as_tensor(avatar.intrinsics, dtype=torch.float32, device=avatar.device)
    K[:2] *= size / avatar.image_size
    rgbs, alphas = [], []
    for start in range(0, len(latents), BATCH):
        sl = slice(start, start + BATCH)
        gaussians = avatar.model.decode(latents[sl], expressions[sl])
        out = render_batch(gaussians, viewmats[sl], K, size, size, backend=avatar.config.avatar.renderer)
        rgbs.append(out.rgb.clamp(0, 1))
        alphas.append(out.alpha)
    return torch.cat(rgbs), torch.cat(alphas)
