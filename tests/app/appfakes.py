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
# A draft learns fewer looks a category: its sliders have fewer stops.
DRAFT_INFO = studio.AvatarInfo(categories={"hair": ["source", "blonde"]}, expressions=["smile"], image_size=16,
                               num_gaussians=100, interp_frames=4, fps=8)


class FakePipeline:
    """Each run yields an ingest event (then, with `draft`, a draft avatar and, once `trained` is set, a
    training checkpoint), then waits for `gate` (or a cancel), then finishes. A photo named *noface* fails
    the way ingest does; `identity` sets what the report says about the likeness. `opened` lists the
    folders avatars were opened from, `edited` those edits rendered."""

    def __init__(self):
        self.gate = threading.Event()
        self.gate.set()
        self.trained = threading.Event()  # the training checkpoint after a draft waits for it
        self.trained.set()
        self.identity = {"backend": "dlib", "threshold": 0.5, "mean": 0.8}
        self.started = threading.Event()
        self.draft = False
        self.opened: list[str] = []
        self.edited: list[str] = []

    def events(self, photo, run_dir, config, cancel):
        self.started.set()
        if "noface" in photo:
            raise InputImageError(f"{photo}: no face found; use a photo where the face is clearly visible")
        yield Progress("ingest", 1.0, "aligned", image=f"{run_dir}/debug.png")
        if self.draft:
            yield Progress("draft", 1.0, "draft avatar ready", avatar=f"{run_dir}/draft")
            self._wait(self.trained, cancel)
        yield Progress("train", 0.5, f"step 5/10, checkpoint {run_dir}/avatar/checkpoint.pt",
                       metrics={"step": 5, "l1": 0.1}, avatar=f"{run_dir}/.work" if self.draft else None)
        self._wait(self.gate, cancel)
        yield Progress("metrics", 1.0, "held-out PSNR 20 dB", clip=f"{run_dir}/report.html",
                       metrics={"identity": dict(self.identity)})

    @staticmethod
    def _wait(gate: threading.Event, cancel) -> None:
        while not gate.wait(0.01):
            cancel.check()
        cancel.check()

    def open_avatar(self, run_dir, view):
        self.opened.append(run_dir)
        info = DRAFT_INFO if run_dir.endswith("/draft") else INFO
        return info, torch.zeros(8), np.zeros((256, 256, 3), np.uint8)

    def edit(self, run_dir, latent, view, op="render", category=None, value=0.0):
        self.edited.append(run_dir)
        return latent, np.zeros((256, 256, 3), np.uint8)


def install(monkeypatch) -> FakePipeline:
    fake = FakePipeline()
    monkeypatch.setattr(studio, "pipeline_events", fake.events)
    monkeypatch.setattr(studio, "open_avatar", fake.open_avatar)
    monkeypatch.setattr(studio, "edit", fake.edit)
    return fake
