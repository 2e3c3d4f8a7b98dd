import pytest

from perse.config import DEFAULT_CATEGORIES
from perse.errors import ConfigError
from perse.synth.catalog import CATALOG, sample_values


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


@pytest.mark.parametrize("categories, count, words", [
    (["hair"], 99, "Lower --values"),
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
