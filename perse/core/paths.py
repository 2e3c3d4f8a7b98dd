"""The run-folder contract in one place: every path a stage reads or writes inside `<run>/`.

```
<run>/portrait.png, portrait.json, matte.png, debug.png     ingest
<run>/config.json, stages.json                              pipeline (settings; which stages are done)
<run>/.lock, .work/                                         pipeline (the one writer; stages being rebuilt)
<run>/draft/                                                pipeline (the draft avatar: a run folder of its own)
<run>/dataset/meta.json, clips/, pairs/, previews/, edits.png, init_points.npz     synth (perse.dataset)
<run>/avatar/checkpoint.pt, config.json, holdout.json, avatar.ply, previews/, train_log.jsonl    train
<run>/renders/                                              export
<run>/report.json, report.html                              metrics
```
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunPaths:
    root: Path

    def __init__(self, root: Path | str):
        object.__setattr__(self, "root", Path(root))

    # ingest
    @property
    def portrait(self) -> Path:
        return self.root / "portrait.png"

    @property
    def portrait_meta(self) -> Path:
        return self.root / "portrait.json"

    @property
    def matte(self) -> Path:
        return self.root / "matte.png"

    @property
    def masks(self) -> Path:
        return self.root / "masks"

    @property
    def debug(self) -> Path:
        return self.root / "debug.png"

    # pipeline
    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def stages(self) -> Path:
        return self.root / "stages.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def work(self) -> Path:
        """Where the pipeline rebuilds stages before swapping them in (perse.pipeline)."""
        return self.root / ".work"

    @property
    def draft(self) -> Path:
        """The draft avatar's run folder (perse.config.DraftConfig), when the run builds one."""
        return self.root / "draft"

    # synth
    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def dataset_meta(self) -> Path:
        return self.dataset / "meta.json"

    @property
    def edits_sheet(self) -> Path:
        return self.dataset / "edits.png"

    @property
    def clip_previews(self) -> Path:
        return self.dataset / "previews"

    @property
    def init_points(self) -> Path:
        return self.dataset / "init_points.npz"

    # train
    @property
    def avatar(self) -> Path:
        return self.root / "avatar"

    @property
    def checkpoint(self) -> Path:
        return self.avatar / "checkpoint.pt"

    @property
    def avatar_config(self) -> Path:
        return self.avatar / "config.json"

    @property
    def holdout(self) -> Path:
        return self.avatar / "holdout.json"

    @property
    def avatar_ply(self) -> Path:
        return self.avatar / "avatar.ply"

    @property
    def train_previews(self) -> Path:
        return self.avatar / "previews"

    @property
    def train_log(self) -> Path:
        return self.avatar / "train_log.jsonl"

    # export
    @property
    def renders(self) -> Path:
        return self.root / "renders"

    # metrics
    @property
    def report(self) -> Path:
        return self.root / "report.json"

    @property
    def report_page(self) -> Path:
        return self.root / "report.html"

    def stage_outputs(self, stage: str) -> list[Path]:
        """Everything a stage writes: a stage is replaced by moving exactly these."""
        return {
            "ingest": [self.portrait, self.portrait_meta, self.matte, self.masks, self.debug],
            "synth": [self.dataset],
            "train": [self.avatar],
            "export": [self.renders],
            "metrics": [self.report, self.report_page],
        }[stage]
