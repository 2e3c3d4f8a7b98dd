"""A stand-in for the pipeline and the avatar loader, so that session, build and handler logic is tested
in milliseconds; the real pipeline behind the same handlers runs in tests/e2e."""
from __future__ import annotations

import threading

import numpy as np
import torch

from perse.app import studio
from perse.errors import InputImageError
from perse.events import Progress

INFO = studio.AvatarInfo(categories={"hair": ["source", "blonde", "red"]}, expressions=["smile"], image_size=32,
                         num_gaussians=300, interp_frames=4, fps=8)


class FakePipeline:
    """Each run yields an ingest event, then waits for `gate` (or a cancel), then finishes. A photo named
    *noface* fails the way ingest does; `identity` sets what the report says about the likeness."""

    def __init__(self):
        self.gate = threading.Event()
        self.gate.set()
        self.identity = {"backend": "dlib", "threshold": 0.5, "mean": 0.8}
        self.started = threading.Event()

    def events(self, photo, run_dir, config, cancel):
        self.started.set()
        if "noface" in photo:
            raise InputImageError(f"{photo}: no face found; use a photo where the face is clearly visible")
        yield Progress("ingest", 1.0, "aligned", image=f"{run_dir}/debug.png")
        yield Progress("train", 0.5, f"step 5/10, checkpoint {run_dir}/avatar/checkpoint.pt",
                       metrics={"step": 5, "l1": 0.1})
        while not self.gate.wait(0.01):
            cancel.check()
        cancel.check()
        yield Progress("metrics", 1.0, "held-out PSNR 20 dB", clip=f"{run_dir}/report.html",
                       metrics={"identity": dict(self.identity)})

    @staticmethod
    def open_avatar(run_dir, view):
        return INFO, torch.zeros(8), np.zeros((256, 256, 3), np.uint8)


def install(monkeypatch) -> FakePipeline:
    fake = FakePipeline()
    monkeypatch.setattr(studio, "pipeline_events", fake.events)
    monkeypatch.setattr(studio, "open_avatar", fake.open_avatar)
    return fake
