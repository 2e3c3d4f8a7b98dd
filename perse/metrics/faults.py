"""Measures of the faults a visitor sees and held-out PSNR does not: ghosts and holes.

Ghost: a half-transparent hat, a red streak fanning out of the head, a smudge beside the cheek. A
pixel of a render is a ghost when its alpha exceeds GHOST_ALPHA and no look the avatar was trained on
has that alpha there, at the same head pose and expression. Each trained look's person matte (the
dataset's clip masks, which include its accessories) allows, at each pixel, the alpha range it spans
within `edge_px` (its matte eroded and dilated, so soft and slightly shifted edges pass), widened by
GHOST_ALPHA. So:
- outside every look's silhouette only alpha <= GHOST_ALPHA passes: any streak or floater counts;
- where one look has a hat (alpha 1) and the others none (alpha 0), a hat that is present (alpha
  near 1) or absent (near 0) passes, a half-transparent one does not: an accessory that is really
  there legitimately extends the silhouette, a ghost of it does not;
- a random sample composing looks of several categories passes pixel by pixel, each pixel explained
  by whichever look has something there.
Pixels at or below GHOST_ALPHA are never ghosts (too transparent to see; missing pixels are holes).

Holes: white gaps where a turned head uncovers what the photo never showed (beside the nose, at the
neck). The head's silhouette is the render's own opaque region (alpha >= 0.5) closed by a disk of
`close_px` (a notch narrower than the disk is a gap, not a contour) with every enclosed gap filled;
holes are the silhouette's pixels with alpha < 0.5. Using the render itself means no reference is
needed at poses no training frame shows (yaw 35 degrees lies beyond the animator's 30).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

GHOST_ALPHA = 0.1  # the threshold: alpha above it outside the silhouette is visible
GHOST_GOAL = 0.005  # share of rendered pixels
HOLE_ALPHA = 0.5
HOLE_GOAL = 0.002  # share of the head's silhouette
# Edge tolerances as fractions of the image side: renders are soft at edges, and a notch narrower
# than twice HOLE_CLOSE is a gap in the head rather than its outline.
GHOST_EDGE = 0.01
HOLE_CLOSE = 0.02


def disk(radius_px: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius_px + 1, 2 * radius_px + 1))


def tolerance_px(fraction: float, size: int) -> int:
    return max(1, round(fraction * size))


def look_alpha_bounds(mattes: np.ndarray, edge_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(low, high), each (L, H, W): per look, the least and greatest matte value within `edge_px` of a pixel."""
    kernel = disk(edge_px)
    mattes = np.asarray(mattes, np.float32)
    low = np.stack([cv2.erode(m, kernel) for m in mattes])
    high = np.stack([cv2.dilate(m, kernel) for m in mattes])
    return low, high


def ghost_map(alpha: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """(H, W) bool: alpha (H, W) above GHOST_ALPHA that no look's bounds (L, H, W) explain."""
    explained = ((alpha >= low - GHOST_ALPHA) & (alpha <= high + GHOST_ALPHA)).any(dim=0)
    return (alpha > GHOST_ALPHA) & ~explained


def head_silhouette(alpha: np.ndarray, close_px: int) -> np.ndarray:
    """(H, W) bool: the opaque region, closed by a disk of `close_px` and with enclosed gaps filled."""
    opaque = (np.asarray(alpha) >= HOLE_ALPHA).astype(np.uint8)
    closed = cv2.morphologyEx(opaque, cv2.MORPH_CLOSE, disk(close_px))
    # Flood the background from a one-pixel frame around the image: whatever it cannot reach is enclosed.
    padded = np.pad(closed, 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    enclosed = (flood == 0)[1:-1, 1:-1]
    return (closed > 0) | enclosed


def hole_map(alpha: np.ndarray, close_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(holes, silhouette), both (H, W) bool: silhouette pixels with alpha below HOLE_ALPHA."""
    silhouette = head_silhouette(alpha, close_px)
    return silhouette & (np.asarray(alpha) < HOLE_ALPHA), silhouette


def highlight(image: np.ndarray, fault: np.ndarray, colour=(1.0, 0.0, 1.0)) -> np.ndarray:
    """The image with fault pixels painted in a colour no render uses, to show where a measure looked."""
    out = np.array(image, np.float32, copy=True)
    out[np.asarray(fault, bool)] = colour
    return out
