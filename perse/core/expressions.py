"""The avatar's expression controls, in the vocabulary of mediapipe's face landmarker.

mediapipe's face landmarker reports 52 ARKit-style blendshapes per frame (`ARKIT_BLENDSHAPES`). The
avatar learns `EXPRESSION_NAMES`, a subset of them in which each mirror pair that a face rarely moves
apart (press, stretch, eye wide, outer brow, brow down) is one symmetric control, so that every control
is seen at full strength in the synthetic clips. `controls_from_blendshapes` maps a landmarker frame
onto the controls; `LEGACY_CONTROLS` maps the four controls of datasets and checkpoints written before
(and of the API's old names) onto the new ones.

Synthesis (which draws these expressions), the avatar (which learns one basis per control), the
metrics, the exports and the video driver all take the list from here, so it is one list.
"""
from __future__ import annotations

from typing import Mapping

# mediapipe's FaceLandmarker blendshape categories, in its output order (index 0 is "_neutral").
ARKIT_BLENDSHAPES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft",
    "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)
ARKIT_INDEX = {name: i for i, name in enumerate(ARKIT_BLENDSHAPES)}

# Each control and the landmarker blendshapes it averages. "Left" is the person's left, as in ARKit
# and mediapipe (the image's right in an unmirrored photo).
CONTROL_BLENDSHAPES: dict[str, tuple[str, ...]] = {
    "jawOpen": ("jawOpen",),
    "mouthSmileLeft": ("mouthSmileLeft",),
    "mouthSmileRight": ("mouthSmileRight",),
    "mouthPucker": ("mouthPucker",),
    "mouthFunnel": ("mouthFunnel",),
    "mouthPress": ("mouthPressLeft", "mouthPressRight"),
    "mouthStretch": ("mouthStretchLeft", "mouthStretchRight"),
    "eyeBlinkLeft": ("eyeBlinkLeft",),
    "eyeBlinkRight": ("eyeBlinkRight",),
    "eyeWide": ("eyeWideLeft", "eyeWideRight"),
    "browInnerUp": ("browInnerUp",),
    "browOuterUp": ("browOuterUpLeft", "browOuterUpRight"),
    "browDown": ("browDownLeft", "browDownRight"),
    "cheekPuff": ("cheekPuff",),
}
EXPRESSION_NAMES = tuple(CONTROL_BLENDSHAPES)

# The parts of the face the controls move, and how many of the avatar's expression features each part
# gets (of 16; perse.avatar.areas scales them to avatar.expression_feature_dim): the lower face holds
# eight controls, the brows three, each eye two.
FACE_AREAS: dict[str, int] = {"lowerFace": 8, "brows": 4, "eyeLeft": 2, "eyeRight": 2}
CONTROL_AREAS: dict[str, tuple[str, ...]] = {
    **{name: ("lowerFace",) for name in ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "mouthPucker",
                                         "mouthFunnel", "mouthPress", "mouthStretch", "cheekPuff")},
    "eyeBlinkLeft": ("eyeLeft",),
    "eyeBlinkRight": ("eyeRight",),
    "eyeWide": ("eyeLeft", "eyeRight"),
    **{name: ("brows",) for name in ("browInnerUp", "browOuterUp", "browDown")},
}

# The controls of version-3 datasets and checkpoints, and the values of the new controls each stands for.
LEGACY_CONTROLS: dict[str, dict[str, float]] = {
    "jaw_open": {"jawOpen": 1.0},
    "smile": {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},
    "blink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},
    "brow_raise": {"browInnerUp": 1.0, "browOuterUp": 1.0},
}


def controls_from_blendshapes(scores: Mapping[str, float]) -> dict[str, float]:
    """The avatar's controls from one frame's landmarker scores (missing blendshapes count as 0)."""
    return {control: sum(float(scores.get(name, 0.0)) for name in names) / len(names)
            for control, names in CONTROL_BLENDSHAPES.items()}


def expand_legacy(expression: Mapping[str, float]) -> dict[str, float]:
    """An expression given with old control names (jaw_open, smile, blink, brow_raise) in the new ones;
    new names pass through. Unknown names raise ValueError naming the known ones."""
    out: dict[str, float] = {}

    def give(control: str, value: float) -> None:
        # A control named twice (directly and through an old name) keeps the larger value; a single
        # value passes through unchanged, so a caller's range check still sees a negative or NaN one.
        out[control] = max(out[control], value) if control in out else value

    for name, value in expression.items():
        if name in CONTROL_BLENDSHAPES:
            give(name, float(value))
        elif name in LEGACY_CONTROLS:
            for control, weight in LEGACY_CONTROLS[name].items():
                give(control, weight * float(value))
        else:
            raise ValueError(f"unknown expression control {name!r}; the controls are {', '.join(EXPRESSION_NAMES)}"
                             f" (old names {', '.join(LEGACY_CONTROLS)} still work)")
    return out
