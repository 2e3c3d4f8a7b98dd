"""The attribute catalog: categories, their values, and how each value is made.

Everything here is data. A value carries a human label (what the app shows and the dataset records),
a text prompt for hub editors (inpainting inside the category's region), and a `spec` that the
embedded parametric editor interprets (perse/synth/edit/parametric.py documents each field). Colours
are sRGB in [0, 1]; lengths are in units of the face height (forehead landmark to chin), so a spec
means the same thing at every image size.

A dense, continuous catalog. Besides its named presets, a category declares `ranges`: spec fields
drawn at random, each by one of three small parameter types --
    Span(low, high, words)      a number, uniform in [low, high]; `words` name equal parts of the span
    Palette((name, rgb), ...)   a colour on the polyline through named anchors, ordered so that every
                                point between neighbours is a plausible colour (no green hair)
    Choice(option, ...)         one of a few discrete options (a style); strings name themselves
-- and a `label` template over those fields ("{length} {color} beard"). `sample_values` first draws
presets, then continuous looks: a preset (for the fields no range covers) with every ranged field
redrawn, labelled by the template from the drawn values' words. So `count` may exceed the presets.
To make a category continuous, give it ranges and a label; nothing else changes.
`interpolation_pairs` chooses which looks get 2D interpolation targets (see its docstring).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Union

import numpy as np

from perse.errors import ConfigError

# Kinds drawn as 3D objects worn on the head (perse/synth/edit/accessories.py): a look either has
# one or not, so a random look never stops halfway between two of them.
ACCESSORY_KINDS = ("hat", "glasses", "earrings", "headphones")

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Span:
    """A number drawn uniformly in [low, high]; `words` name equal parts of the span, low to high."""

    low: float
    high: float
    words: tuple[str, ...] = ()

    def draw(self, rng: np.random.Generator) -> float:
        return round(float(rng.uniform(self.low, self.high)), 4)

    def word(self, value: float) -> str:
        if not self.words:
            return f"{value:.2g}"
        part = (float(value) - self.low) / max(self.high - self.low, 1e-12)
        return self.words[min(int(part * len(self.words)), len(self.words) - 1)]

    def distance(self, a: float, b: float) -> float:
        return abs(float(a) - float(b)) / max(self.high - self.low, 1e-12)


@dataclass(frozen=True)
class Palette:
    """A colour on the polyline through named sRGB anchors (a random point of a random segment)."""

    anchors: tuple[tuple[str, RGB], ...]

    def draw(self, rng: np.random.Generator) -> RGB:
        position = rng.uniform(0, len(self.anchors) - 1)
        low = min(int(position), len(self.anchors) - 2)
        a, b = (np.asarray(self.anchors[i][1]) for i in (low, low + 1))
        return tuple(round(float(c), 4) for c in a + (position - low) * (b - a))

    def word(self, value: RGB) -> str:
        """The nearest anchor's name."""
        distances = [np.linalg.norm(np.asarray(value) - rgb) for _, rgb in self.anchors]
        return self.anchors[int(np.argmin(distances))][0]

    def distance(self, a: RGB, b: RGB) -> float:
        return float(np.linalg.norm(np.asarray(a, float) - np.asarray(b, float)))


@dataclass(frozen=True)
class Choice:
    """One of a few discrete options (e.g. a style)."""

    options: tuple[Any, ...]

    def draw(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))]

    def word(self, value: Any) -> str:
        return str(value)

    def distance(self, a: Any, b: Any) -> float:
        return 0.0 if a == b else 1.0


Range = Union[Span, Palette, Choice]


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
    values: tuple[Value, ...]  # the named presets
    # Continuous looks (module docstring): spec field -> range, and the label template over them.
    ranges: dict[str, Range] = field(default_factory=dict)
    label: str = ""

    @property
    def accessory(self) -> bool:
        return self.kind in ACCESSORY_KINDS

    def value(self, label: str) -> Value:
        for value in self.values:
            if value.label == label:
                return value
        raise ConfigError(f"category '{self.name}' has no value '{label}'; values: "
                          f"{', '.join(v.label for v in self.values)}")

    def draw(self, rng: np.random.Generator) -> Value:
        """A continuous look: a random preset's spec with every ranged field redrawn, labelled by the template."""
        if not self.ranges:
            raise ConfigError(f"category '{self.name}' has only its {len(self.values)} named values (no "
                              f"continuous ranges); Lower --values to {len(self.values)} or fewer")
        spec = dict(self.values[int(rng.integers(len(self.values)))].spec)
        words = {}
        for key, span in self.ranges.items():
            spec[key] = span.draw(rng)
            words[key] = span.word(spec[key])
        label = self.label.format(**words)
        return Value(label, label, spec)

    def distance(self, a: Value, b: Value) -> float:
        """How different two looks are: ranged fields in units of their range, other differing fields 1."""
        total = 0.0
        for key in set(a.spec) | set(b.spec):
            va, vb = a.spec.get(key), b.spec.get(key)
            if key in self.ranges and va is not None and vb is not None:
                total += self.ranges[key].distance(va, vb) ** 2
            elif va != vb:
                total += 1.0
        return math.sqrt(total)


def _hair(label: str, color: tuple[float, float, float], prompt: str, shine: float = 0.5) -> Value:
    return Value(label, prompt, {"color": color, "shine": shine})


# Natural hair colours from dark to light, then on through pastel dyes: neighbours blend plausibly.
HAIR_COLORS = Palette((
    ("black", (0.045, 0.04, 0.04)), ("dark brown", (0.16, 0.10, 0.07)), ("chestnut", (0.34, 0.19, 0.11)),
    ("auburn", (0.48, 0.18, 0.09)), ("copper", (0.70, 0.30, 0.12)), ("strawberry blonde", (0.82, 0.55, 0.38)),
    ("golden blonde", (0.86, 0.70, 0.44)), ("platinum", (0.90, 0.86, 0.76)), ("silver", (0.70, 0.71, 0.73)),
    ("lavender", (0.70, 0.58, 0.84)), ("pink", (0.96, 0.36, 0.66)), ("violet", (0.45, 0.20, 0.65)),
    ("blue", (0.16, 0.36, 0.90)),
))
# Facial hair and brows: natural colours only.
NATURAL_HAIR_COLORS = Palette((
    ("black", (0.05, 0.04, 0.04)), ("dark brown", (0.16, 0.10, 0.07)), ("brown", (0.33, 0.22, 0.14)),
    ("auburn", (0.46, 0.20, 0.10)), ("ginger", (0.66, 0.33, 0.14)), ("blonde", (0.80, 0.66, 0.46)),
    ("gray", (0.62, 0.62, 0.62)), ("white", (0.88, 0.88, 0.86)),
))


CATALOG: dict[str, Category] = {c.name: c for c in (
    Category("hair", "recolor", ("hair",), (
        _hair("black hair", (0.045, 0.04, 0.04), "glossy jet black hair", shine=0.7),
        _hair("blonde hair", (0.86, 0.70, 0.44), "light golden blonde hair"),
        _hair("gray hair", (0.66, 0.66, 0.67), "silver gray hair", shine=0.6),
        _hair("red hair", (0.66, 0.20, 0.07), "vivid copper red hair"),
        _hair("pink hair", (0.96, 0.36, 0.66), "pastel pink dyed hair"),
        _hair("blue hair", (0.16, 0.36, 0.90), "electric blue dyed hair"),
    ), ranges={"color": HAIR_COLORS, "shine": Span(0.2, 0.8)}, label="{color} hair"),
    Category("skin", "tone", ("face_skin", "nose", "ears", "neck"), (
        Value("fair skin", "fair pale skin", {"color": (0.93, 0.78, 0.68)}),
        Value("tan skin", "sun tanned skin", {"color": (0.72, 0.50, 0.35)}),
        Value("deep brown skin", "deep brown skin", {"color": (0.42, 0.27, 0.19)}),
        Value("olive skin", "olive skin tone", {"color": (0.74, 0.60, 0.42)}),
        Value("rosy skin", "rosy pink skin", {"color": (0.90, 0.68, 0.64)}),
        Value("dark skin", "dark brown skin", {"color": (0.30, 0.19, 0.14)}),
    ), ranges={"color": Palette((
        ("porcelain", (0.95, 0.82, 0.74)), ("fair", (0.93, 0.78, 0.68)), ("rosy", (0.90, 0.68, 0.64)),
        ("light olive", (0.80, 0.65, 0.50)), ("olive", (0.74, 0.60, 0.42)), ("tan", (0.72, 0.50, 0.35)),
        ("brown", (0.56, 0.37, 0.25)), ("deep brown", (0.42, 0.27, 0.19)), ("dark", (0.30, 0.19, 0.14)),
    ))}, label="{color} skin"),
    Category("lips", "lipstick", ("lips",), (
        Value("red lipstick", "classic red lipstick", {"color": (0.72, 0.04, 0.10), "opacity": 0.9, "gloss": 0.35}),
        Value("pink lipstick", "glossy pink lipstick", {"color": (0.93, 0.40, 0.58), "opacity": 0.85, "gloss": 0.5}),
        Value("berry lipstick", "dark berry lipstick", {"color": (0.38, 0.05, 0.18), "opacity": 0.9, "gloss": 0.2}),
        Value("coral lipstick", "coral lipstick", {"color": (0.95, 0.42, 0.32), "opacity": 0.8, "gloss": 0.4}),
        Value("peach lipstick", "peach orange lipstick", {"color": (0.98, 0.58, 0.36), "opacity": 0.9, "gloss": 0.4}),
        Value("dark red lipstick", "dark wine red lipstick", {"color": (0.42, 0.02, 0.06), "opacity": 0.92, "gloss": 0.3}),
    ), ranges={"color": Palette((
        ("nude", (0.78, 0.52, 0.45)), ("peach", (0.98, 0.58, 0.36)), ("coral", (0.95, 0.42, 0.32)),
        ("pink", (0.93, 0.40, 0.58)), ("rose", (0.76, 0.28, 0.36)), ("red", (0.72, 0.04, 0.10)),
        ("wine", (0.42, 0.02, 0.06)), ("berry", (0.38, 0.05, 0.18)), ("plum", (0.30, 0.08, 0.22)),
    )), "opacity": Span(0.6, 0.95), "gloss": Span(0.1, 0.6, ("matte", "satin", "glossy"))},
        label="{gloss} {color} lipstick"),
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
    ), ranges={"color": NATURAL_HAIR_COLORS, "thickness": Span(0.5, 1.8, ("thin", "medium", "thick", "bushy")),
               "density": Span(0.7, 1.0), "arch": Span(-0.3, 0.4, ("straight", "soft", "arched"))},
        label="{thickness} {arch} {color} eyebrows"),
    # Where facial hair grows: `reach` how far sideways from the mouth (0 = around the mouth, as a
    # goatee, 1 = ear to ear), `chin` how far down (0 = the upper lip only, a moustache, 1 = over the
    # chin); `length` strand length (face heights; longer hair also hangs below the jaw), `density`
    # hairs per area (0-1), `color` (None = the person's own, from the brows). Length 0 = no beard.
    Category("beard", "beard", ("beard",), (
        Value("stubble", "light stubble", {"reach": 1.0, "chin": 1.0, "length": 0.008, "density": 0.75, "color": None}),
        Value("short beard", "short trimmed beard", {"reach": 1.0, "chin": 1.0, "length": 0.025, "density": 0.9,
                                                     "color": None}),
        Value("full beard", "full thick beard", {"reach": 1.0, "chin": 1.0, "length": 0.07, "density": 1.0,
                                                 "color": None}),
        Value("goatee", "goatee and moustache", {"reach": 0.0, "chin": 1.0, "length": 0.04, "density": 1.0,
                                                 "color": None}),
        Value("moustache", "thick moustache", {"reach": 0.0, "chin": 0.0, "length": 0.035, "density": 1.0,
                                               "color": None}),
        Value("gray full beard", "full gray beard", {"reach": 1.0, "chin": 1.0, "length": 0.07, "density": 1.0,
                                                      "color": (0.66, 0.65, 0.63)}),
    ), ranges={"reach": Span(0.0, 1.0, ("goatee", "chin beard", "beard")), "chin": Span(0.7, 1.0),
               "length": Span(0.006, 0.09, ("stubble", "short", "medium", "long")), "density": Span(0.6, 1.0),
               "color": NATURAL_HAIR_COLORS},
        label="{length} {color} {reach}"),
    # Glasses, hats, earrings and headphones are 3D accessories: perse/synth/edit/accessories.py documents
    # their spec fields. Every field is numeric, so two looks interpolate as one accessory changing shape.
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
    ), ranges={"round": Span(2.0, 7.0, ("round", "soft-cornered", "square")), "aspect": Span(0.55, 0.95),
               "size": Span(0.75, 0.95), "frame": Span(0.008, 0.028, ("thin", "medium", "thick")),
               "frame_color": Palette((
                   ("black", (0.04, 0.04, 0.045)), ("tortoise", (0.30, 0.17, 0.08)), ("gold", (0.78, 0.62, 0.30)),
                   ("silver", (0.80, 0.80, 0.82)), ("navy", (0.12, 0.16, 0.35)), ("red", (0.62, 0.06, 0.08)))),
               "tint_opacity": Span(0.0, 0.9, ("clear", "tinted", "dark"))},
        label="{frame} {round} {frame_color} {tint_opacity} glasses"),
    Category("hat", "hat", ("hair",), (
        Value("red knit beanie", "red knitted beanie hat",
              {"color": (0.70, 0.09, 0.10), "low": 0.5, "height": 0.3, "squareness": 2.0, "brim": 0.0, "visor": 0.0,
               "knit": 1.0, "panels": 0.0, "band": 0.0, "pinch": 0.0, "tilt": 0.25, "brim_scale": 1.0}),
        Value("brown fedora", "brown felt fedora hat",
              {"color": (0.36, 0.26, 0.17), "low": 0.3, "height": 0.5, "squareness": 3.2, "brim": 0.3, "visor": 0.0,
               "knit": 0.0, "panels": 0.0, "band": 1.0, "pinch": 1.0, "tilt": 0.08, "brim_scale": 1.0}),
        Value("navy baseball cap", "navy blue baseball cap",
              {"color": (0.10, 0.14, 0.32), "low": 0.4, "height": 0.3, "squareness": 2.2, "brim": 0.0, "visor": 0.36,
               "knit": 0.0, "panels": 1.0, "band": 0.0, "pinch": 0.0, "tilt": 0.2, "brim_scale": 1.0}),
        Value("gray knit beanie", "gray wool beanie",
              {"color": (0.55, 0.55, 0.56), "low": 0.45, "height": 0.38, "squareness": 2.0, "brim": 0.0,
               "visor": 0.0, "knit": 1.0, "panels": 0.0, "band": 0.0, "pinch": 0.0, "tilt": 0.25, "brim_scale": 1.0}),
        Value("black baseball cap", "black baseball cap",
              {"color": (0.05, 0.05, 0.06), "low": 0.4, "height": 0.3, "squareness": 2.2, "brim": 0.0, "visor": 0.36,
               "knit": 0.0, "panels": 1.0, "band": 0.0, "pinch": 0.0, "tilt": 0.2, "brim_scale": 1.0}),
        Value("straw sun hat", "wide-brimmed straw sun hat",
              {"color": (0.84, 0.72, 0.48), "low": 0.3, "height": 0.4, "squareness": 2.6, "brim": 0.42, "visor": 0.0,
               "knit": 0.0, "panels": 0.0, "band": 1.0, "pinch": 0.0, "tilt": 0.08, "brim_scale": 1.0}),
    ), ranges={"color": Palette((
        ("black", (0.05, 0.05, 0.06)), ("charcoal", (0.22, 0.22, 0.24)), ("gray", (0.55, 0.55, 0.56)),
        ("cream", (0.86, 0.80, 0.66)), ("straw", (0.84, 0.72, 0.48)), ("tan", (0.62, 0.47, 0.30)),
        ("brown", (0.36, 0.26, 0.17)), ("burgundy", (0.42, 0.07, 0.12)), ("red", (0.70, 0.09, 0.10)),
        ("orange", (0.85, 0.40, 0.10)), ("olive", (0.35, 0.36, 0.17)), ("green", (0.10, 0.35, 0.18)),
        ("teal", (0.08, 0.38, 0.40)), ("navy", (0.10, 0.14, 0.32)), ("royal blue", (0.12, 0.25, 0.65)))),
        "low": Span(0.25, 0.6), "height": Span(0.25, 0.55, ("shallow", "medium", "deep")),
        "brim_scale": Span(0.7, 1.3)},
        label="{height} {color} hat"),
    Category("earrings", "earrings", ("ears", "hair", "neck"), (
        Value("gold hoop earrings", "large gold hoop earrings",
              {"hoop": 0.065, "stud": 0.0, "drop": 0.0, "scale": 1.0, "color": (0.93, 0.74, 0.30),
               "gem": (0.93, 0.74, 0.30)}),
        Value("pearl stud earrings", "pearl stud earrings",
              {"hoop": 0.0, "stud": 0.016, "drop": 0.0, "scale": 1.0, "color": (0.95, 0.93, 0.88),
               "gem": (0.95, 0.93, 0.88)}),
        Value("silver drop earrings", "silver drop earrings with blue gems",
              {"hoop": 0.0, "stud": 0.008, "drop": 0.08, "scale": 1.0, "color": (0.82, 0.83, 0.86),
               "gem": (0.15, 0.35, 0.85)}),
        Value("silver hoop earrings", "small silver hoop earrings",
              {"hoop": 0.042, "stud": 0.0, "drop": 0.0, "scale": 1.0, "color": (0.82, 0.83, 0.86),
               "gem": (0.82, 0.83, 0.86)}),
        Value("gold stud earrings", "small gold stud earrings",
              {"hoop": 0.0, "stud": 0.013, "drop": 0.0, "scale": 1.0, "color": (0.93, 0.74, 0.30),
               "gem": (0.93, 0.74, 0.30)}),
        Value("gold drop earrings", "gold drop earrings with red gems",
              {"hoop": 0.0, "stud": 0.008, "drop": 0.08, "scale": 1.0, "color": (0.93, 0.74, 0.30),
               "gem": (0.75, 0.05, 0.10)}),
    ), ranges={"scale": Span(0.7, 1.4, ("small", "medium", "large")), "color": Palette((
        ("gold", (0.93, 0.74, 0.30)), ("rose gold", (0.88, 0.60, 0.50)), ("silver", (0.82, 0.83, 0.86)),
        ("gunmetal", (0.30, 0.31, 0.34)))), "gem": Palette((
            ("ruby", (0.75, 0.05, 0.10)), ("amethyst", (0.50, 0.20, 0.70)), ("sapphire", (0.15, 0.35, 0.85)),
            ("emerald", (0.05, 0.55, 0.30)), ("pearl", (0.95, 0.93, 0.88))))},
        label="{scale} {color} earrings"),
    Category("headphones", "headphones", ("ears", "hair"), (
        Value("black headphones", "black over-ear headphones",
              {"cup": 0.17, "band": 0.05, "color": (0.06, 0.06, 0.07), "cushion": (0.12, 0.12, 0.13)}),
        Value("white headphones", "white over-ear headphones",
              {"cup": 0.16, "band": 0.045, "color": (0.90, 0.90, 0.88), "cushion": (0.75, 0.75, 0.74)}),
        Value("red headphones", "red over-ear headphones",
              {"cup": 0.17, "band": 0.05, "color": (0.70, 0.08, 0.10), "cushion": (0.10, 0.10, 0.10)}),
        Value("silver studio headphones", "large silver studio headphones",
              {"cup": 0.2, "band": 0.06, "color": (0.72, 0.73, 0.75), "cushion": (0.08, 0.08, 0.09)}),
    ), ranges={"cup": Span(0.13, 0.2, ("compact", "medium", "large")), "band": Span(0.035, 0.065),
               "color": Palette((
                   ("black", (0.06, 0.06, 0.07)), ("gray", (0.45, 0.46, 0.48)), ("white", (0.90, 0.90, 0.88)),
                   ("rose", (0.85, 0.60, 0.60)), ("red", (0.70, 0.08, 0.10)), ("navy", (0.10, 0.14, 0.32))))},
        label="{cup} {color} headphones"),
)}


def category(name: str) -> Category:
    if name not in CATALOG:
        raise ConfigError(f"unknown attribute category '{name}'; choose from: {', '.join(CATALOG)}")
    return CATALOG[name]


def sample_values(categories: Iterable[str], count: int, seed: int) -> dict[str, list[Value]]:
    """`count` distinct looks per category, drawn reproducibly: presets first, then continuous looks.

    Up to the number of presets, a random subset of them (in catalog order). Beyond it, every preset,
    then continuous looks from the category's ranges (module docstring), ordered as a nearest-neighbour
    chain from the last preset: consecutive codes are similar looks, so the avatar's slider (which
    walks from code to code) and the chain's interpolation pairs take short steps.
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
        stream = np.random.default_rng([seed, *name.encode()])
        order = stream.permutation(len(cat.values))[:count]
        looks = [cat.values[i] for i in sorted(order)]
        drawn = [cat.draw(stream) for _ in range(count - len(looks))]
        taken = {v.label for v in cat.values}
        while drawn:
            look = drawn.pop(min(range(len(drawn)), key=lambda i: cat.distance(looks[-1], drawn[i])))
            label, number = look.label, 2
            while label in taken:  # labels name codes: two similar looks get "... 2"
                label, number = f"{look.label} {number}", number + 1
            taken.add(label)
            looks.append(Value(label, look.prompt, look.spec))
        chosen[name] = looks
    return chosen


# Interpolation targets per category: every pair of the codes at every t while they fit (3 looks:
# 6 pairs x 5 t); with the dense catalog's 12 looks, two t values on each of its 23 paths. At one t a
# path the avatar learned one in-between and cross-faded around it (a hat half transparent at t=0.57).
PAIR_TARGETS = 48


def interpolation_pairs(looks: int, ts: Iterable[float]) -> list[tuple[int, int, float]]:
    """Which (code a, code b, t) get a 2D interpolation target, for `looks` looks (codes 1..looks) and
    the source (code 0).

    While every pair at every t fits in PAIR_TARGETS, all of them (a few looks). With a dense catalog
    all pairs would be quadratic (13 codes: 78 pairs x 5 t), so instead: the source to every look (each
    look grows out of the source, so every look's own slider is trained) and consecutive looks (the
    path the avatar's slider walks; `sample_values` orders looks so neighbours are similar), with the t
    values rotated over the pairs so that about PAIR_TARGETS targets remain and every t is used.
    """
    ts = sorted(float(t) for t in ts)
    every = [(a, b) for a in range(looks + 1) for b in range(a + 1, looks + 1)]
    if len(every) * len(ts) <= PAIR_TARGETS:
        return [(a, b, t) for a, b in every for t in ts]
    pairs = [(0, k) for k in range(1, looks + 1)] + [(k, k + 1) for k in range(1, looks)]
    per_pair = min(len(ts), max(1, round(PAIR_TARGETS / len(pairs))))
    return [(a, b, ts[(j * per_pair + i) % len(ts)]) for j, (a, b) in enumerate(pairs) for i in range(per_pair)]
