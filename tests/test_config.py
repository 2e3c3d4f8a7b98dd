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


def test_a_run_saved_with_a_retired_key_still_loads():
    config = build_config("tiny", overrides=["avatar.steps=11"])
    saved = config.to_dict()
    saved["export"]["web_ply_max_gaussians"] = 60_000  # written by runs before the browser viewer
    assert config_from_dict(saved) == config
    with pytest.raises(ConfigError, match="web_ply_max_gaussians"):
        build_config("tiny", overrides=["export.web_ply_max_gaussians=10"])  # but a user cannot set it


def test_a_run_saved_before_expression_features_keeps_its_structure():
    saved = build_config("tiny").to_dict()
    del saved["avatar"]["expression_feature_dim"]  # runs before expressions had features of their own
    assert config_from_dict(saved).avatar.expression_feature_dim == 0
    assert build_config("tiny").avatar.expression_feature_dim > 0


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


@pytest.mark.parametrize("override, allowed", [
    ("avatar.steps=0", "an integer >= 1"),
    ("avatar.num_gaussians=-1", "an integer >= 1"),
    ("synth.frames=0", "an integer >= 1"),
    ("synth.size=16", "an integer in [32, 4096]"),
    ("ingest.size=100000", "an integer in [32, 4096]"),
    ("export.fps=0", "an integer in [1, 120]"),
    ("export.turntable_frames=0", "an integer >= 1"),
    ("avatar.interp_start=1.5", "a number in [0, 1]"),
    ("avatar.lr_final=0", "a number in (0, 1]"),
    ("avatar.prune_opacity=1", "a number in [0, 1)"),
    ("avatar.prior_std=0", "a number > 0"),
    ("avatar.holdout_every=1", "0 or an integer >= 2"),
    ("ingest.fov_deg=180", "a number in (0, 180)"),
    ("synth.identity_threshold=2", "a number in [-1, 1]"),
    ("synth.interp_ts=0.5,1.0", "a number in (0, 1)"),
    ("seed=-1", "an integer in [0, 4294967295]"),
])
def test_out_of_range_values_name_the_allowed_range(override, allowed):
    key = override.split("=")[0]
    with pytest.raises(ConfigError) as error:
        build_config("fast", overrides=[override])
    message = str(error.value)
    assert message.startswith(f"config key '{key}': ") and message.endswith(f"is out of range; allowed: {allowed}")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_every_numeric_field_refuses_non_finite_values(value):
    import dataclasses
    import typing

    config = build_config("fast")
    for section in ("ingest", "synth", "avatar", "export"):
        for spec in dataclasses.fields(getattr(config, section)):
            hint = typing.get_type_hints(type(getattr(config, section)))[spec.name]
            if hint in (int, float) or hint == (float | None) or hint == tuple[float, ...]:
                with pytest.raises(ConfigError, match=f"'{section}.{spec.name}'"):
                    build_config("fast", overrides=[f"{section}.{spec.name}={value}"])


def test_every_preset_is_within_range_and_direct_changes_are_checked():
    from perse.config import PRESETS, check_config

    for preset in PRESETS:
        check_config(build_config(preset))
    config = build_config("tiny")
    config.avatar.steps = 0
    with pytest.raises(ConfigError, match="'avatar.steps': 0 is out of range"):
        check_config(config)
    assert build_config("fast", overrides=["avatar.holdout_every=0"]).avatar.holdout_every == 0
