"""The ghost and hole measures on hand-made alpha maps: each fault a visitor sees scores badly, the same
scene without it scores well."""
import cv2
import numpy as np
import pytest
import torch

from perse.metrics.faults import (
    GHOST_GOAL,
    HOLE_CLOSE,
    HOLE_GOAL,
    ghost_map,
    head_silhouette,
    hole_map,
    look_alpha_bounds,
    tolerance_px,
)

SIZE = 64
EDGE_PX = 1


def head(size: int = SIZE) -> np.ndarray:
    """A head-and-shoulders matte: a disc over a block that runs off the image's bottom edge; the
    neck meets the shoulders at concave corners, as a real outline does."""
    k = size / 64
    matte = np.zeros((size, size), np.float32)
    cv2.circle(matte, (round(32 * k), round(30 * k)), round(14 * k), 1.0, -1)
    matte[round(40 * k):, round(14 * k):round(50 * k)] = 1.0
    return matte


def with_hat(matte: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    hatted = matte.copy()
    hatted[6:18, 18:46] = np.maximum(hatted[6:18, 18:46], alpha)
    return hatted


def ghost_share(render_alpha: np.ndarray, looks: list[np.ndarray]) -> float:
    low, high = (torch.as_tensor(b) for b in look_alpha_bounds(np.stack(looks), EDGE_PX))
    return float(ghost_map(torch.as_tensor(render_alpha), low, high).float().mean())


def test_trained_looks_and_their_soft_edges_are_not_ghosts():
    looks = [head(), with_hat(head())]
    assert ghost_share(head(), looks) == 0.0
    assert ghost_share(with_hat(head()), looks) == 0.0
    # A render is softer than its matte at the edges; within the edge tolerance that is no ghost.
    assert ghost_share(cv2.GaussianBlur(with_hat(head()), (3, 3), 0.6), looks) == 0.0


def test_a_half_transparent_hat_is_a_ghost_though_a_trained_look_wears_that_hat():
    looks = [head(), with_hat(head())]
    share = ghost_share(with_hat(head(), alpha=0.5), looks)
    assert share > 10 * GHOST_GOAL
    # The hat's inside, away from any look's edge, is what counts: 12 x 28 px less the edge band and
    # the part the head covers.
    assert 150 / SIZE**2 < share < 12 * 28 / SIZE**2


def test_a_streak_outside_every_look_is_a_ghost():
    looks = [head(), with_hat(head())]
    streaked = head().copy()
    streaked[20:22, 48:64] = 0.3  # faint, but above the 0.1 a visitor notices on white
    assert ghost_share(streaked, looks) == pytest.approx(2 * 16 / SIZE**2, abs=2 / SIZE**2)
    barely = head().copy()
    barely[20:22, 48:64] = 0.08
    assert ghost_share(barely, looks) == 0.0


HOLE_SIZE = 256  # the closing disk scales with the image: 3 px here
CLOSE_PX = tolerance_px(HOLE_CLOSE, HOLE_SIZE)


def test_the_outline_itself_is_no_hole():
    """Where the neck meets the shoulders and where a turned body leaves a strip of background along
    the image's bottom edge, the outline is a contour, not a gap."""
    clean = head(HOLE_SIZE)
    holes, silhouette = hole_map(clean, CLOSE_PX)
    assert holes.sum() / silhouette.sum() < HOLE_GOAL
    turned = clean.copy()
    turned[-1, 56:160] = 0.0
    assert not head_silhouette(turned, CLOSE_PX)[-1, 56:160].any()


def test_holes_inside_the_head_and_notches_in_its_outline_are_counted():
    clean = head(HOLE_SIZE)
    _, clean_silhouette = hole_map(clean, CLOSE_PX)

    punched = clean.copy()
    cv2.circle(punched, (104, 112), 6, 0.2, -1)  # a see-through gap beside the nose
    holes, silhouette = hole_map(punched, CLOSE_PX)
    assert (silhouette == clean_silhouette).all()
    gap = (punched < 0.5) & (clean >= 0.5)
    assert (holes & ~clean_silhouette).sum() == 0 and (holes >= gap).all()
    assert holes.sum() / silhouette.sum() > 2 * HOLE_GOAL

    notched = clean.copy()
    notched[120:124, 160:200] = 0.0  # a 4 px slit into the side of the head, open to the background
    holes, silhouette = hole_map(notched, CLOSE_PX)
    assert holes[120:124, 160:182].all()  # the slit, up to where the head's outline is
    assert holes.sum() / silhouette.sum() > HOLE_GOAL
