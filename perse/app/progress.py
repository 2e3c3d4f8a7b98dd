"""Turns the pipeline's `Progress` stream into what the app shows while a run is going.

Kept free of gradio so that it can be tested on its own: `RunView.update(event)` folds one event into
the view; app.py maps the view's fields onto components.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from perse.events import Progress
from perse.pipeline import STAGES

STAGE_TITLES = {
    "draft": "Building a draft avatar to play with",
    "ingest": "Reading the portrait",
    "synth": "Synthesizing attribute clips",
    "train": "Training the avatar",
    "export": "Exporting",
    "metrics": "Measuring quality",
}
# Each stage's share of a whole run's time, so that the overall bar moves with the clock rather than
# jumping a fifth per stage. On a GPU (`fast`, README "Measured": synth 38-45 s, train 51-65, export
# 18-24, metrics 15-19, ingest 0.5) training is about 40 %; on the CPU (`tiny`) it is about 80 %.
# Training time grows with its step count, so its share is scaled by the run's steps over these
# (`stage_weights`); quality's 12000 steps took 76 % of an H100 run, as the scaling predicts.
GPU_WEIGHTS = {"ingest": 0.01, "synth": 0.30, "train": 0.42, "export": 0.15, "metrics": 0.12}
GPU_REFERENCE_STEPS = 3000  # fast
CPU_WEIGHTS = {"ingest": 0.03, "synth": 0.08, "train": 0.80, "export": 0.04, "metrics": 0.05}
CPU_REFERENCE_STEPS = 200  # tiny


# A draft (perse.config.DraftConfig) costs about this share of a `fast` run's time on a GPU.
DRAFT_WEIGHT = 0.12


def stage_weights(steps: int, gpu: bool, draft: bool = False) -> dict[str, float]:
    base, reference = (GPU_WEIGHTS, GPU_REFERENCE_STEPS) if gpu else (CPU_WEIGHTS, CPU_REFERENCE_STEPS)
    return {**base, "train": base["train"] * steps / reference, **({"draft": DRAFT_WEIGHT} if draft else {})}


@dataclass
class RunView:
    stage: str = ""
    fraction: float = 0.0
    message: str = ""
    ingest_image: str | None = None
    gallery: list[tuple[str, str]] = field(default_factory=list)  # (image path, caption)
    losses: list[dict[str, float]] = field(default_factory=list)  # one row per logged training step
    preview: str | None = None
    summary: str = ""  # the metrics stage's closing message (held-out quality, identity, smoothness)
    report: str | None = None  # the metrics stage's HTML report
    identity: dict[str, Any] | None = None  # the report's identity section (mean, threshold, backend)
    weights: dict[str, float] = field(default_factory=lambda: dict(CPU_WEIGHTS))
    changed: set[str] = field(default_factory=set)  # which fields the last event touched

    def update(self, event: Progress) -> "RunView":
        self.changed = {"status"}
        self.stage, self.fraction, self.message = event.stage, float(event.fraction), event.message
        if event.stage == "ingest" and event.image:
            self.ingest_image = event.image
            self.changed.add("ingest")
        elif event.stage == "synth" and (event.image or event.clip):
            shown = event.image or event.clip
            if shown not in {path for path, _ in self.gallery}:
                self.gallery.append((shown, event.message))
                self.changed.add("gallery")
        elif event.image:
            self.preview = event.image
            self.changed.add("preview")
        if event.stage == "train":
            row = training_losses(event.metrics)
            if row:
                self.losses.append(row)
                self.changed.add("losses")
        elif event.stage == "metrics" and event.fraction >= 1.0:
            self.summary, self.report = event.message, event.clip
            self.identity = event.metrics.get("identity")
        return self

    @property
    def overall(self) -> float:
        """Whole-run progress in [0, 1], each stage weighted by its expected share of the time."""
        # The draft, when there is one, is built right after ingest (perse.pipeline.run).
        order = [name for name in (STAGES[0], "draft", *STAGES[1:]) if name in self.weights]
        if self.stage not in order:
            return 0.0
        total = sum(self.weights[name] for name in order)
        done = sum(self.weights[name] for name in order[:order.index(self.stage)])
        return (done + self.weights[self.stage] * min(max(self.fraction, 0.0), 1.0)) / total

    @property
    def identity_low(self) -> bool:
        """The report found the avatar less like the photo than the identity scorer's same-person threshold."""
        return bool(self.identity) and self.identity["mean"] < self.identity["threshold"]

    def status_markdown(self) -> str:
        title = STAGE_TITLES.get(self.stage, self.stage)
        return f"**{title}** — {self.fraction:.0%} of this stage, {self.overall:.0%} overall  \n{self.message}"


# Numbers a training event logs that are not losses: the x axis, wall time, and image quality.
NOT_LOSSES = frozenset({"step", "elapsed", "psnr"})


def training_losses(metrics: dict[str, Any]) -> dict[str, float]:
    """A training event's step and finite loss values ({} when the event logs none)."""
    if "step" not in metrics:
        return {}
    row = {name: float(value) for name, value in metrics.items()
           if name not in NOT_LOSSES and isinstance(value, (int, float)) and math.isfinite(float(value))}
    if not row:
        return {}
    row["step"] = float(metrics["step"])
    return row


def loss_figure(rows: list[dict[str, float]]):
    """A plotly line chart, one trace per loss, log y axis (losses span decades during training)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    names = list(dict.fromkeys(name for row in rows for name in row if name != "step"))
    for name in names:
        points = [(row["step"], row[name]) for row in rows if name in row]
        figure.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines", name=name))
    positive = all(row[name] > 0 for row in rows for name in row if name != "step")
    figure.update_layout(
        height=300, margin=dict(l=45, r=10, t=40, b=40),
        xaxis_title="step", yaxis_type="log" if rows and positive else "linear",
        legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"), template="plotly_white",
    )
    return figure

