"""PERSE Studio: one portrait photo -> an animatable 3D Gaussian head avatar with attribute sliders.

The public API, importable from the package (each name loads its stage on first use, so `import perse`
stays light):

    from perse import Avatar, build_config, run
    for event in run("photo.jpg", "runs/me", build_config("fast")):
        print(event.stage, event.fraction, event.message)
    avatar = Avatar.load("runs/me")
    image = avatar.render(avatar.sample(seed=3), yaw=20)

`docs/architecture.md` describes the stages, the run folder and where backends plug in.
"""
from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "run": "perse.pipeline",
    "Avatar": "perse.avatar.avatar",
    "PipelineConfig": "perse.config",
    "build_config": "perse.config",
    "Progress": "perse.events",
    "CancelToken": "perse.events",
    "PerseError": "perse.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'perse' has no attribute '{name}'")
