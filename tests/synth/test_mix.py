"""Mixed looks: which categories a mixed clip changes and in what order."""
from perse.config import DEFAULT_CATEGORIES
from perse.synth.catalog import CATALOG
from perse.synth.mix import plan_mixes


def test_mixes_combine_two_or_more_looks_with_one_accessory_at_most_and_last():
    mixes = plan_mixes(list(DEFAULT_CATEGORIES), looks=12, count=200, seed=0)
    assert mixes == plan_mixes(list(DEFAULT_CATEGORIES), looks=12, count=200, seed=0)
    assert mixes != plan_mixes(list(DEFAULT_CATEGORIES), looks=12, count=200, seed=1)
    seen = set()
    for codes in mixes:
        names = list(codes)
        worn = [name for name in names if CATALOG[name].accessory]
        assert len(names) >= 2 and len(worn) <= 1
        assert names[-1] in worn or not worn  # the accessory goes on last
        painted = [name for name in names if name not in worn]
        assert painted == [name for name in DEFAULT_CATEGORIES if name in painted]
        assert all(1 <= code <= 12 for code in codes.values())
        seen.update(codes)
    assert seen == set(DEFAULT_CATEGORIES)
    # About half the categories change in a mix.
    sizes = [len(codes) for codes in mixes]
    assert 3 <= sum(sizes) / len(sizes) <= 5


def test_no_mixes_when_nothing_can_combine():
    assert plan_mixes(["hair"], looks=3, count=5, seed=0) == []
    assert plan_mixes(["hat", "glasses"], looks=3, count=5, seed=0) == []
    assert plan_mixes(["hair", "lips"], looks=3, count=0, seed=0) == []
    assert all(set(codes) == {"hair", "hat"} for codes in plan_mixes(["hair", "hat"], looks=3, count=5, seed=0))
