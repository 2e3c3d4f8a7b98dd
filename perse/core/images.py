"""Contact sheets: a labelled grid of images, the preview a person checks a dataset with at a glance."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def contact_sheet(images: Sequence[np.ndarray], labels: Sequence[str] | None = None, columns: int = 6,
                  tile: int = 160) -> np.ndarray:
    """Float [0, 1] images (any square size) -> one uint8 RGB grid, each tile captioned."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    labels = list(labels) if labels is not None else [""] * len(images)
    columns = max(1, min(columns, len(images)))
    rows = (len(images) + columns - 1) // columns
    caption = max(12, tile // 9)
    sheet = np.full((rows * (tile + caption), columns * tile, 3), 255, np.uint8)
    for index, (image, label) in enumerate(zip(images, labels)):
        image = np.asarray(image)
        if image.dtype != np.uint8:
            image = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        interpolation = cv2.INTER_AREA if image.shape[0] > tile else cv2.INTER_LINEAR
        tile_image = cv2.resize(image, (tile, tile), interpolation=interpolation)
        r, c = divmod(index, columns)
        y, x = r * (tile + caption), c * tile
        sheet[y:y + tile, x:x + tile] = tile_image
        scale = caption / 30
        cv2.putText(sheet, label[: max(4, tile // int(caption * 0.55))], (x + 3, y + tile + caption - 4),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)
    return sheet
