"""Dataset frames and avatar renders at their poses: the frames a measure probes, and batched renders of
many latents, each with its own camera and expression, as the metrics score them."""
from __future__ import annotations

import math

import numpy as np
import torch

from perse.avatar.avatar import Avatar
from perse.core.render import render_batch
from perse.dataset import Clip, Frame

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


def yaw_deg(frame: Frame) -> float:
    """The head's yaw in a frame, from its world-to-camera rotation (R = Rz Rx Ry, so R[0, 2] = sin yaw
    without roll; perse.core.camera.rotation_ypr)."""
    return math.degrees(math.asin(float(np.clip(frame.world_to_camera[0][2], -1.0, 1.0))))


def frontal_frame(clip: Clip) -> Frame:
    """The frame nearest the frontal, neutral portrait: head rotation closest to identity, then the
    weakest expression (the motion script's frame 0 is exactly that)."""
    return max(clip.frames, key=lambda f: (round(float(np.trace(np.asarray(f.world_to_camera)[:3, :3])), 6),
                                           -float(np.abs(f.expression).sum())))


def matching_frame(clip: Clip, frame: Frame, same_expression: bool = True) -> Frame | None:
    """`clip`'s first frame with the same camera as `frame` (and, unless `same_expression` is False, the
    same expression), if it has one. Every clip of a synthesised dataset shares the head poses; each
    shows its own expressions, except held-out looks, which show the source clip's
    (perse.synth.animate.motion)."""
    for candidate in clip.frames:
        if (np.allclose(candidate.world_to_camera, frame.world_to_camera, atol=1e-6)
                and (not same_expression or np.allclose(candidate.expression, frame.expression, atol=1e-6))):
            return candidate
    return None
