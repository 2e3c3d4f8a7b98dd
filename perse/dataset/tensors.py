"""The dataset as device tensors: every kept frame (training or held-out) and every trained pair, loaded
once so that training and the metrics stage read the same thing in the same way."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import numpy as np
import torch

from perse.core.io import to_uint8
from perse.dataset import Dataset
from perse.errors import DatasetError

Item = TypeVar("Item")


def decode_all(load: Callable[[Item], np.ndarray], items: Sequence[Item]) -> list[np.ndarray]:
    """`load` over `items` as uint8, on every core: PNG decoding releases the GIL, and decoding the
    dataset's ~2,500 PNGs one by one was a sixth of the train stage and 40% of the metrics stage (H200
    machine, `fast`)."""
    with ThreadPoolExecutor(max(1, min(16, os.cpu_count() or 1))) as pool:
        return list(pool.map(lambda item: to_uint8(load(item)), items))


@dataclass
class FrameData:
    """All training (or held-out) frames of a dataset as device tensors."""

    images: torch.Tensor  # (F, H, W, 3) uint8
    masks: torch.Tensor  # (F, H, W) uint8
    viewmats: torch.Tensor  # (F, 4, 4)
    expressions: torch.Tensor  # (F, E)
    codes: torch.Tensor  # (F, n_categories) code indices
    names: list[tuple[str, int]]  # (clip id, frame index)

    def __len__(self) -> int:
        return len(self.names)


def is_holdout(position: int, every: int) -> bool:
    """Every `every`-th kept frame of a clip (positions every-1, 2*every-1, ...) is held out."""
    return every > 0 and position % every == every - 1


def load_frames(dataset: Dataset, every: int, holdout: bool, device: str) -> FrameData:
    # Held-out looks are neither trained on nor part of the held-out frames: the metrics stage scores
    # them by fitting a code (perse.metrics.looks).
    chosen = [(clip, frame) for clip in dataset.trained_clips
              for position, frame in enumerate(clip.kept_frames) if is_holdout(position, every) == holdout]
    if not chosen:
        if holdout:
            return FrameData(torch.zeros(0, 1, 1, 3), torch.zeros(0, 1, 1), torch.zeros(0, 4, 4), torch.zeros(0, 0),
                             torch.zeros(0, 0, dtype=torch.long), [])
        raise DatasetError(f"{dataset.root}: no kept training frames (every frame was filtered out or held out); "
                           "re-run `perse synth` with more frames or raise avatar.holdout_every")
    as_tensor = lambda x, dtype: torch.as_tensor(np.asarray(x), dtype=dtype, device=device)  # noqa: E731
    return FrameData(as_tensor(decode_all(lambda item: dataset.frame_image(*item), chosen), torch.uint8),
                     as_tensor(decode_all(lambda item: dataset.frame_mask(*item), chosen), torch.uint8),
                     as_tensor([frame.world_to_camera for _, frame in chosen], torch.float32),
                     as_tensor([frame.expression for _, frame in chosen], torch.float32),
                     as_tensor([dataset.code_vector(clip) for clip, _ in chosen], torch.long),
                     [(clip.id, frame.index) for clip, frame in chosen])


@dataclass
class PairData:
    images: torch.Tensor  # (P, H, W, 3) uint8
    masks: torch.Tensor  # (P, H, W) uint8 region masks
    viewmats: torch.Tensor
    expressions: torch.Tensor
    codes_a: torch.Tensor  # (P, n_categories)
    codes_b: torch.Tensor
    t: torch.Tensor  # (P,)
    mattes: torch.Tensor  # (P, H, W) uint8 person alpha of the targets

    def __len__(self) -> int:
        return int(self.t.shape[0])


def over_background(image: torch.Tensor, alpha: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """A stored frame or pair target (B, H, W, 3), keeping its person alpha (B, H, W) and replacing the
    rest with `background` (B, 3): what a render over that background should reproduce."""
    return image * alpha[..., None] + background[:, None, None] * (1 - alpha[..., None])


def load_pairs(dataset: Dataset, device: str) -> PairData | None:
    pairs = dataset.trained_pairs
    if not pairs:
        return None
    as_tensor = lambda x, dtype: torch.as_tensor(np.asarray(x), dtype=dtype, device=device)  # noqa: E731
    return PairData(
        as_tensor(decode_all(dataset.pair_image, pairs), torch.uint8),
        as_tensor(decode_all(dataset.pair_mask, pairs), torch.uint8),
        as_tensor([p.world_to_camera for p in pairs], torch.float32),
        as_tensor([p.expression for p in pairs], torch.float32),
        as_tensor([dataset.code_vector(dataset.clips[p.clip_a]) for p in pairs], torch.long),
        as_tensor([dataset.code_vector(dataset.clips[p.clip_b]) for p in pairs], torch.long),
        as_tensor([p.t for p in pairs], torch.float32),
        as_tensor(decode_all(dataset.pair_matte, pairs), torch.uint8),
    )
