import json

import pytest

from perse.config import build_config, config_from_dict
from perse.errors import ConfigError


def test_preset_then_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("avatar:\n  steps: 123\n  lr: 0.5\nsynth:\n  categories: [hair, hat]\n")
    config = build_config("tiny", path, ["avatar.steps=7", "synth.values=4", "seed=3"])
    assert config.avatar.steps == 7  # override beats file
    assert config.avatar.lr == 0.5  # file beats preset default
    assert config.synth.categories == ("hair", "hat")
    assert config.synth.values == 4 and config.seed == 3
    assert config.synth.size == 64  # from the tiny preset


def test_tuple_and_bool_overrides_are_typed():
    config = build_config("fast", overrides=["synth.categories=hair,beard", "avatar.densify=off"])
    assert config.synth.categories == ("hair", "beard")
    assert config.avatar.densify is False


def test_round_trip_through_json():
    config = build_config("tiny", overrides=["avatar.steps=11"])
    again = config_from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


@pytest.mark.parametrize("override, fragment", [
    ("avatar.stepz=3", "unknown config key 'avatar.stepz'"),
    ("nosuch.steps=3", "unknown config section 'nosuch'"),
    ("avatar.steps=many", "cannot read 'many' as int"),
    ("avatar.densify=maybe", "cannot read 'maybe' as bool"),
    ("avatarsteps", "must look like section.key=value"),
])
def test_bad_overrides_name_the_problem(override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
        build_config("fast", overrides=[override])


def test_bad_file_and_preset(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not valid JSON"):
        build_config("fast", bad)
    with pytest.raises(ConfigError, match="cannot read it"):
        build_config("fast", tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        build_config("huge")


def test_optional_values_accept_none_and_numbers():
    assert build_config("fast").synth.identity_threshold is None
    assert build_config("fast", overrides=["synth.identity_threshold=0.3"]).synth.identity_threshold == 0.3
    assert build_config("fast", overrides=["synth.identity_threshold=none"]).synth.identity_threshold is None
