import numpy as np
import pytest

from perse.config import DEFAULT_CATEGORIES
from perse.errors import ConfigError
from perse.synth.catalog import (
    CATALOG,
    PAIR_TARGETS,
    Category,
    Palette,
    Span,
    interpolation_pairs,
    sample_values,
)


def test_catalog_covers_the_required_categories_with_labelled_values():
    for name in ("hair", "beard", "hat", "glasses", "eyebrows", "lips", "skin", "earrings"):
        assert name in CATALOG
        values = CATALOG[name].values
        assert len(values) >= 4
        assert len({v.label for v in values}) == len(values)
        assert all(v.prompt and v.spec for v in values)
    assert set(DEFAULT_CATEGORIES) <= set(CATALOG)
    hair = {v.label for v in CATALOG["hair"].values}
    assert {"black hair", "blonde hair", "gray hair", "red hair"} <= hair


def test_sampler_is_seeded_and_each_category_has_its_own_stream():
    first = sample_values(["hair", "glasses"], 3, seed=7)
    assert first == sample_values(["hair", "glasses"], 3, seed=7)
    # Adding a category never changes what the others get.
    assert sample_values(["glasses"], 3, seed=7)["glasses"] == first["glasses"]
    draws = {tuple(v.label for v in sample_values(["hair"], 2, seed=s)["hair"]) for s in range(12)}
    assert len(draws) > 3


CONTINUOUS = ("hair", "beard", "eyebrows", "lips", "skin")


def test_beyond_the_presets_come_continuous_looks_inside_their_ranges():
    chosen = sample_values(CONTINUOUS, 13, seed=4)
    assert chosen == sample_values(CONTINUOUS, 13, seed=4)
    assert sample_values(["beard"], 13, seed=4)["beard"] == chosen["beard"]
    for name, looks in chosen.items():
        cat = CATALOG[name]
        assert len(looks) == 13 and len({v.label for v in looks}) == 13
        assert looks[:len(cat.values)] == list(cat.values)
        for look in looks[len(cat.values):]:
            assert look.label not in {v.label for v in cat.values} and look.prompt
            assert set(cat.ranges) <= set(look.spec) <= set(cat.ranges).union(*(v.spec for v in cat.values))
            for key, span in cat.ranges.items():
                if isinstance(span, Span):
                    assert span.low <= look.spec[key] <= span.high
                if isinstance(span, Palette):
                    rgb = np.array([c for _, c in span.anchors])
                    assert np.all(rgb.min(0) - 1e-6 <= look.spec[key]) and np.all(look.spec[key] <= rgb.max(0) + 1e-6)
    # Readable labels: the template filled with words, e.g. "long auburn beard".
    beards = [v.label for v in chosen["beard"][6:]]
    assert all(label.split()[0] in ("stubble", "short", "medium", "long") for label in beards)
    # Continuous looks form a nearest-neighbour chain: consecutive looks are closer than random pairs.
    hair, cat = chosen["hair"][6:], CATALOG["hair"]
    chain = np.mean([cat.distance(a, b) for a, b in zip(hair, hair[1:])])
    every = np.mean([cat.distance(a, b) for a in hair for b in hair if a is not b])
    assert chain < 0.8 * every


def test_a_category_without_ranges_offers_only_its_presets():
    presets = CATALOG["hair"].values[:2]
    bare = Category("plain", "recolor", ("hair",), presets)
    with pytest.raises(ConfigError, match="Lower --values to 2"):
        bare.draw(np.random.default_rng(0))


def test_interpolation_pairs_stay_near_the_budget_and_cover_sliders_and_growth():
    ts = [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6]
    # A few looks: every pair of codes at every t, as before.
    assert len(interpolation_pairs(3, ts)) == 6 * 5
    dense = interpolation_pairs(12, ts)
    assert len(dense) <= 1.5 * PAIR_TARGETS
    segments = {(a, b) for a, b, _ in dense}
    assert {(0, k) for k in range(1, 13)} <= segments  # every look grows out of the source
    assert {(k, k + 1) for k in range(1, 12)} <= segments  # the slider's path
    assert {t for _, _, t in dense} == set(ts)


@pytest.mark.parametrize("categories, count, words", [
    (["wings"], 1, "unknown attribute category 'wings'"),
    ([], 1, "no attribute categories"),
    (["hair", "hair"], 1, "more than once"),
    (["hair"], 0, "at least 1"),
])
def test_sampler_rejects_bad_requests_with_specific_messages(categories, count, words):
    with pytest.raises(ConfigError, match=words):
        sample_values(categories, count, seed=0)


def test_every_preset_can_draw_its_values_for_its_categories():
    from perse.config import PRESETS, build_config

    for preset in PRESETS:
        config = build_config(preset)
        chosen = sample_values(config.synth.categories, config.synth.values, config.seed)
        assert all(len(values) == config.synth.values for values in chosen.values())
