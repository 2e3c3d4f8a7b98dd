"""The attribute catalog: categories, their values, and how each value is made.

Everything here is data. A value carries a human label (what the app shows and the dataset records),
a text prompt for hub editors (inpainting inside the category's region), and a `spec` that the
embedded parametric editor interprets (perse/synth/edit/parametric.py documents each field). Colours
are sRGB in [0, 1]; lengths are in units of the face height (forehead landmark to chin), so a spec
means the same thing at every image size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from perse.errors import ConfigError


@dataclass(frozen=True)
class Value:
    label: str
    prompt: str
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Category:
    name: str
    kind: str  # which parametric routine renders it
    # Portrait masks that bound where the edit may act (hub editors inpaint inside their union; the
    # parametric editor may grow it, e.g. a hat above the head, and reports the region it changed).
    regions: tuple[str, ...]
    values: tuple[Value, ...]

    def value(self, label: str) -> Value:
        for value in self.values:
            if value.label == label:
                return value
        raise ConfigError(f"category '{self.name}' has no value '{label}'; values: "
                          f"{', '.join(v.label for v in self.values)}")


def _hair(label: str, color: tuple[float, float, float], prompt: str, shine: float = 0.5) -> Value:
    return Value(label, prompt, {"color": color, "shine": shine})


CATALOG: dict[str, Category] = {c.name: c for c in (
    Category("hair", "recolor", ("hair",), (
        _hair("black hair", (0.045, 0.04, 0.04), "glossy jet black hair", shine=0.7),
        _hair("blonde hair", (0.86, 0.70, 0.44), "light golden blonde hair"),
        _hair("gray hair", (0.66, 0.66, 0.67), "silver gray hair", shine=0.6),
        _hair("red hair", (0.66, 0.20, 0.07), "vivid copper red hair"),
        _hair("pink hair", (0.96, 0.36, 0.66), "pastel pink dyed hair"),
        _hair("blue hair", (0.16, 0.36, 0.90), "electric blue dyed hair"),
    )),
    Category("skin", "tone", ("face_skin", "nose", "ears", "neck"), (
        Value("fair skin", "fair pale skin", {"color": (0.93, 0.78, 0.68)}),
        Value("tan skin", "sun tanned skin", {"color": (0.72, 0.50, 0.35)}),
        Value("deep brown skin", "deep brown skin", {"color": (0.42, 0.27, 0.19)}),
        Value("olive skin", "olive skin tone", {"color": (0.74, 0.60, 0.42)}),
        Value("rosy skin", "rosy pink skin", {"color": (0.90, 0.68, 0.64)}),
        Value("dark skin", "dark brown skin", {"color": (0.30, 0.19, 0.14)}),
    )),
    Category("lips", "lipstick", ("lips",), (
        Value("red lipstick", "classic red lipstick", {"color": (0.72, 0.04, 0.10), "opacity": 0.9, "gloss": 0.35}),
        Value("pink lipstick", "glossy pink lipstick", {"color": (0.93, 0.40, 0.58), "opacity": 0.85, "gloss": 0.5}),
        Value("berry lipstick", "dark berry lipstick", {"color": (0.38, 0.05, 0.18), "opacity": 0.9, "gloss": 0.2}),
        Value("coral lipstick", "coral lipstick", {"color": (0.95, 0.42, 0.32), "opacity": 0.8, "gloss": 0.4}),
        Value("peach lipstick", "peach orange lipstick", {"color": (0.98, 0.58, 0.36), "opacity": 0.9, "gloss": 0.4}),
        Value("dark red lipstick", "dark wine red lipstick", {"color": (0.42, 0.02, 0.06), "opacity": 0.92, "gloss": 0.3}),
    )),
    # thickness: brow height relative to the detected brow; the brow is redrawn from its landmarks.
    Category("eyebrows", "brows", ("brows",), (
        Value("thick dark eyebrows", "thick bushy dark eyebrows",
              {"color": (0.07, 0.05, 0.04), "thickness": 1.7, "density": 1.0}),
        Value("light blonde eyebrows", "light blonde eyebrows",
              {"color": (0.80, 0.66, 0.46), "thickness": 1.0, "density": 0.8}),
        Value("thin arched eyebrows", "thin arched plucked eyebrows",
              {"color": (0.18, 0.12, 0.09), "thickness": 0.55, "density": 0.9, "arch": 0.35}),
        Value("bushy gray eyebrows", "bushy gray eyebrows",
              {"color": (0.62, 0.62, 0.62), "thickness": 1.5, "density": 1.0}),
        Value("straight black eyebrows", "straight bold black eyebrows",
              {"color": (0.03, 0.03, 0.03), "thickness": 1.25, "density": 1.0, "arch": -0.25}),
        Value("red eyebrows", "ginger red eyebrows",
              {"color": (0.60, 0.24, 0.10), "thickness": 1.1, "density": 0.9}),
    )),
    # coverage: which part of the beard area grows hair (full | goatee | moustache); length: strand length (face heights);
    # drop: how far below the chin the beard hangs (face heights). color None = from the brows.
    Category("beard", "beard", ("beard",), (
        Value("stubble", "light stubble", {"coverage": "full", "density": 0.7, "length": 0.012,
                                           "opacity": 0.55, "drop": 0.0, "color": None}),
        Value("short beard", "short trimmed beard", {"coverage": "full", "density": 0.9, "length": 0.03,
                                                     "opacity": 0.85, "drop": 0.04, "color": None}),
        Value("full beard", "full thick beard", {"coverage": "full", "density": 1.0, "length": 0.06,
                                                 "opacity": 0.97, "drop": 0.14, "color": None}),
        Value("goatee", "goatee and moustache", {"coverage": "goatee", "density": 1.0, "length": 0.04,
                                                 "opacity": 0.92, "drop": 0.05, "color": None}),
        Value("moustache", "thick moustache", {"coverage": "moustache", "density": 1.0, "length": 0.035,
                                               "opacity": 0.95, "drop": 0.0, "color": None}),
        Value("gray full beard", "full gray beard", {"coverage": "full", "density": 1.0, "length": 0.06,
                                                      "opacity": 0.97, "drop": 0.14, "color": (0.66, 0.65, 0.63)}),
    )),
    # Lens shape: superellipse exponent `round` (2 = ellipse, large = rectangle), `aspect` height/width,
    # `droop` (aviator: lower outer corner hangs), `lift` (cat-eye: outer top corner rises); `size`
    # lens width relative to the distance between the eye centres; `frame` rim width (face heights).
    Category("glasses", "glasses", ("eyes", "brows", "face_skin", "nose"), (
        Value("round glasses", "round wire-rimmed glasses",
              {"round": 2.0, "aspect": 0.92, "droop": 0.0, "lift": 0.0, "size": 0.8, "frame": 0.012,
               "frame_color": (0.78, 0.62, 0.30), "tint": (1.0, 1.0, 1.0), "tint_opacity": 0.0}),
        Value("rectangular glasses", "thick black rectangular glasses",
              {"round": 7.0, "aspect": 0.6, "droop": 0.0, "lift": 0.0, "size": 0.86, "frame": 0.026,
               "frame_color": (0.04, 0.04, 0.045), "tint": (1.0, 1.0, 1.0), "tint_opacity": 0.0}),
        Value("aviator sunglasses", "aviator sunglasses with dark lenses",
              {"round": 2.6, "aspect": 0.82, "droop": 0.35, "lift": 0.0, "size": 0.9, "frame": 0.009,
               "frame_color": (0.80, 0.80, 0.82), "tint": (0.16, 0.13, 0.09), "tint_opacity": 0.82}),
        Value("cat-eye glasses", "red cat-eye glasses",
              {"round": 2.6, "aspect": 0.58, "droop": 0.0, "lift": 0.9, "size": 0.86, "frame": 0.022,
               "frame_color": (0.62, 0.06, 0.08), "tint": (1.0, 1.0, 1.0), "tint_opacity": 0.0}),
        Value("blue tinted glasses", "round blue tinted glasses",
              {"round": 2.2, "aspect": 0.85, "droop": 0.0, "lift": 0.0, "size": 0.82, "frame": 0.014,
               "frame_color": (0.15, 0.15, 0.18), "tint": (0.25, 0.45, 0.85), "tint_opacity": 0.45}),
        Value("round sunglasses", "round black sunglasses",
              {"round": 2.0, "aspect": 0.95, "droop": 0.0, "lift": 0.0, "size": 0.8, "frame": 0.016,
               "frame_color": (0.05, 0.05, 0.05), "tint": (0.05, 0.05, 0.06), "tint_opacity": 0.88}),
    )),
    # style: knit | fedora | cap; `brim` brim half-width beyond the crown (head widths); `low` how far
    # the hat comes down the forehead (0 = hairline, 1 = brows); `height` crown height (face heights).
    Category("hat", "hat", ("hair",), (
        Value("red knit beanie", "red knitted beanie hat",
              {"style": "knit", "color": (0.70, 0.09, 0.10), "brim": 0.0, "low": 0.55, "height": 0.42}),
        Value("brown fedora", "brown felt fedora hat",
              {"style": "fedora", "color": (0.36, 0.26, 0.17), "brim": 0.32, "low": 0.35, "height": 0.45}),
        Value("navy baseball cap", "navy blue baseball cap",
              {"style": "cap", "color": (0.10, 0.14, 0.32), "brim": 0.0, "low": 0.25, "height": 0.36}),
        Value("gray knit beanie", "gray wool beanie",
              {"style": "knit", "color": (0.55, 0.55, 0.56), "brim": 0.0, "low": 0.5, "height": 0.4}),
        Value("black baseball cap", "black baseball cap",
              {"style": "cap", "color": (0.05, 0.05, 0.06), "brim": 0.0, "low": 0.25, "height": 0.36}),
        Value("green knit beanie", "dark green knitted beanie",
              {"style": "knit", "color": (0.10, 0.35, 0.18), "brim": 0.0, "low": 0.55, "height": 0.42}),
    )),
    # style: hoop | stud | drop; `size` (face heights); colours of metal and gem.
    Category("earrings", "earrings", ("ears", "hair", "neck"), (
        Value("gold hoop earrings", "large gold hoop earrings",
              {"style": "hoop", "size": 0.13, "color": (0.93, 0.74, 0.30), "gem": (0.93, 0.74, 0.30)}),
        Value("pearl stud earrings", "pearl stud earrings",
              {"style": "stud", "size": 0.03, "color": (0.95, 0.93, 0.88), "gem": (0.95, 0.93, 0.88)}),
        Value("silver drop earrings", "silver drop earrings with blue gems",
              {"style": "drop", "size": 0.07, "color": (0.82, 0.83, 0.86), "gem": (0.15, 0.35, 0.85)}),
        Value("silver hoop earrings", "small silver hoop earrings",
              {"style": "hoop", "size": 0.085, "color": (0.82, 0.83, 0.86), "gem": (0.82, 0.83, 0.86)}),
        Value("gold stud earrings", "small gold stud earrings",
              {"style": "stud", "size": 0.03, "color": (0.93, 0.74, 0.30), "gem": (0.93, 0.74, 0.30)}),
        Value("gold drop earrings", "gold drop earrings with red gems",
              {"style": "drop", "size": 0.07, "color": (0.93, 0.74, 0.30), "gem": (0.75, 0.05, 0.10)}),
    )),
)}


def category(name: str) -> Category:
    if name not in CATALOG:
        raise ConfigError(f"unknown attribute category '{name}'; choose from: {', '.join(CATALOG)}")
    return CATALOG[name]


def sample_values(categories: Iterable[str], count: int, seed: int) -> dict[str, list[Value]]:
    """`count` distinct values per category, drawn reproducibly.

    Each category draws from its own stream (seeded by the run seed and the category's name), so adding
    or removing a category never changes the values another category gets.
    """
    chosen: dict[str, list[Value]] = {}
    names = list(categories)
    if not names:
        raise ConfigError("no attribute categories selected; pick at least one, e.g. --categories hair,glasses")
    if len(set(names)) != len(names):
        raise ConfigError(f"categories listed more than once: {', '.join(names)}")
    if count < 1:
        raise ConfigError(f"values per category must be at least 1, got {count}")
    for name in names:
        cat = category(name)
        if count > len(cat.values):
            raise ConfigError(f"category '{name}' has {len(cat.values)} values; asked for {count}. "
                              f"Lower --values to {len(cat.values)} or fewer")
        stream = np.random.default_rng([seed, *name.encode()])
        order = stream.permutation(len(cat.values))[:count]
        chosen[name] = [cat.values[i] for i in sorted(order)]
    return chosen
