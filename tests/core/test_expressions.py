"""The one vocabulary of expression controls: mediapipe's names, and the four old controls mapped onto them."""
import math

import pytest

from perse.core.expressions import (
    ARKIT_BLENDSHAPES,
    CONTROL_BLENDSHAPES,
    EXPRESSION_NAMES,
    LEGACY_CONTROLS,
    controls_from_blendshapes,
    expand_legacy,
)


def test_fourteen_controls_named_after_the_landmarkers_blendshapes():
    assert len(EXPRESSION_NAMES) == 14 and len(set(EXPRESSION_NAMES)) == 14
    assert all(name in ARKIT_BLENDSHAPES for names in CONTROL_BLENDSHAPES.values() for name in names)
    assert controls_from_blendshapes({"browDownLeft": 1.0, "jawOpen": 0.5})["browDown"] == 0.5


def test_old_names_map_onto_the_new_controls():
    assert expand_legacy({"jaw_open": 0.4}) == {"jawOpen": 0.4}
    assert expand_legacy({"smile": 0.5}) == {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5}
    assert expand_legacy({"blink": 1.0}) == {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}
    assert expand_legacy({"brow_raise": 0.3}) == {"browInnerUp": 0.3, "browOuterUp": 0.3}
    assert set(LEGACY_CONTROLS) == {"jaw_open", "smile", "blink", "brow_raise"}
    # A control named twice keeps the larger value; new names pass through.
    assert expand_legacy({"smile": 0.2, "mouthSmileLeft": 0.7}) == {"mouthSmileLeft": 0.7, "mouthSmileRight": 0.2}
    with pytest.raises(ValueError, match="unknown expression control 'grin'"):
        expand_legacy({"grin": 1.0})


def test_out_of_range_values_pass_through_for_the_callers_check():
    assert expand_legacy({"jawOpen": -0.5}) == {"jawOpen": -0.5}
    assert math.isnan(expand_legacy({"smile": math.nan})["mouthSmileLeft"])
