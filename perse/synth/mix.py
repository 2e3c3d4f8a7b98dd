"""Mixed looks: clips that change several categories at once.

Every other clip changes one category, so the avatar would learn each look alone and never how two
combine; yet a random look (`Avatar.sample`) or a visitor's sliders set many at once. Where looks
overlap (a hat over recoloured hair, a beard on darker skin) their learned effects then fight over the
same Gaussians: muddy colours, a hat drawn through. A few mixed clips, each a combination of trained
looks, show the combinations.

A mix changes each category with probability one half, at least two of them, and wears at most one
accessory (the animator draws one 3D accessory per clip). Its looks are applied in catalog order with
the accessory last, so the accessory sits over the recoloured hair and the shaded skin beneath it.
"""
from __future__ import annotations

import numpy as np

from perse.synth.catalog import category as get_category

# How likely a mix is to change each category.
MIX_CHANCE = 0.5


def plan_mixes(categories: list[str], looks: int, count: int, seed: int) -> list[dict[str, int]]:
    """`count` mixes as {category: code (1..looks)}, in drawing order (accessory last); none when fewer
    than two categories can be combined (a single category, or accessories only)."""
    painted = [name for name in categories if not get_category(name).accessory]
    worn = [name for name in categories if get_category(name).accessory]
    if looks < 1 or len(painted) + min(1, len(worn)) < 2:
        return []
    rng = np.random.default_rng([seed, 0x6D6978])
    mixes = []
    for _ in range(count):
        chosen = [name for name in painted if rng.random() < MIX_CHANCE]
        accessory = [name for name in worn if rng.random() < MIX_CHANCE]
        accessory = [accessory[int(rng.integers(len(accessory)))]] if accessory else []
        while len(chosen) + len(accessory) < 2:
            options = [name for name in painted if name not in chosen] + ([] if accessory else worn)
            pick = options[int(rng.integers(len(options)))]
            (accessory if pick in worn else chosen).append(pick)
        ordered = [name for name in categories if name in chosen] + accessory
        mixes.append({name: int(rng.integers(1, looks + 1)) for name in ordered})
    return mixes

