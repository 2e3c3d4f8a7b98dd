"""Image losses for avatar training: L1, SSIM, PSNR, and LPIPS where its backbone can be loaded."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


def _window(channels: int, device, dtype) -> torch.Tensor:
    x = torch.arange(SSIM_WINDOW, device=device, dtype=dtype) - SSIM_WINDOW // 2
    g = torch.exp(-x ** 2 / (2 * SSIM_SIGMA ** 2))
    return (g / g.sum()).expand(channels, 1, 1, SSIM_WINDOW).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of two (B, H, W, C) images in [0, 1] (Gaussian window 11, sigma 1.5, as in 3DGS)."""
    a, b = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    channels = a.shape[1]
    # The five local statistics are blurred in one pass (a training step is launch-bound), and the 2D
    # Gaussian window is separable: two 1D passes cost 22 instead of 121 products a pixel.
    maps = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    row = _window(5 * channels, a.device, a.dtype)
    pad = SSIM_WINDOW // 2
    blurred = F.conv2d(maps, row, padding=(0, pad), groups=5 * channels)
    blurred = F.conv2d(blurred, row.transpose(2, 3), padding=(pad, 0), groups=5 * channels)
    mu_a, mu_b, aa, bb, ab = blurred.split(channels, dim=1)
    var_a = aa - mu_a ** 2
    var_b = bb - mu_b ** 2
    cov = ab - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return value.mean()


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """PSNR in dB of images in [0, 1]; with `mask` (broadcastable to a's pixels), only where it is set."""
    err = (a - b) ** 2
    if mask is not None:
        weight = mask.expand_as(err)
        mse = float((err * weight).sum() / weight.sum().clamp_min(1e-12))
    else:
        mse = float(err.mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def load_lpips(device: torch.device | str):
    """LPIPS (VGG) as a callable on (B, H, W, 3) images in [0, 1], or None with the reason it is unavailable.

    lpips needs torchvision and downloads its backbone weights; where either is missing we return None
    rather than score with a random backbone.
    """
    try:
        import lpips
        import torchvision  # noqa: F401  (lpips imports it; checked first for a clear reason)
    except ImportError as exc:
        return None, f"LPIPS unavailable: {exc.name} is not installed"
    try:
        net = lpips.LPIPS(net="vgg", verbose=False).to(device).eval()
    except Exception as exc:  # network or file errors while fetching the backbone weights
        return None, f"LPIPS unavailable: its backbone weights could not be loaded ({exc})"
    for p in net.parameters():
        p.requires_grad_(False)

    def score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return net(a.permute(0, 3, 1, 2) * 2 - 1, b.permute(0, 3, 1, 2) * 2 - 1).mean()

    return score, ""
