"""One photo in, an editable avatar out: ingest -> synth -> train -> export -> metrics, as one stream of
`Progress` events that the CLI and the app both consume.

Each stage's inputs (the photo's bytes, its own config section, the previous stage's key) are hashed
into a key stored in `<run>/stages.json` once the stage has finished. A re-run skips every stage whose
key is unchanged and whose outputs still validate, and resumes training from its last checkpoint, so an
interrupted or cancelled run continues where it stopped.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

from perse.config import PipelineConfig
from perse.core.io import atomic_write_json
from perse.core.paths import RunPaths
from perse.dataset import is_complete
from perse.errors import InputImageError
from perse.events import NEVER, CancelToken, Progress
from perse.ingest.portrait import is_ingested

STAGES = ("ingest", "synth", "train", "export", "metrics")


def _hash(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _file_hash(path: Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise InputImageError(f"{path}: cannot read the photo ({exc.strerror}); check the path") from exc


def stage_keys(photo: Path, config: PipelineConfig) -> dict[str, str]:
    """What each stage's output depends on; a change upstream invalidates everything downstream."""
    sections = dataclasses.asdict(config)
    ingest = _hash(_file_hash(photo), sections["ingest"])
    synth = _hash(ingest, sections["synth"], config.seed)
    train = _hash(synth, sections["avatar"], config.seed)
    export = _hash(train, sections["export"])
    return {"ingest": ingest, "synth": synth, "train": train, "export": export, "metrics": export}


class RunState:
    """`<run>/stages.json`: for each stage, the key it last started with and the key it finished with."""

    def __init__(self, run: Path):
        self.path = RunPaths(run).stages
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.started: dict[str, str] = data.get("started", {})
        self.done: dict[str, str] = data.get("done", {})

    def _save(self) -> None:
        atomic_write_json(self.path, {"started": self.started, "done": self.done})

    def is_done(self, stage: str, key: str) -> bool:
        return self.done.get(stage) == key

    def start(self, stage: str, key: str) -> bool:
        """Record that `stage` starts with `key`; True if outputs it left came from other inputs."""
        stale = self.started.get(stage, key) != key
        for later in STAGES[STAGES.index(stage):]:
            self.done.pop(later, None)
        self.started[stage] = key
        self._save()
        return stale

    def mark(self, stage: str, key: str) -> None:
        self.done[stage] = key
        self._save()


def has_trained_avatar(run: Path) -> bool:
    """Training writes avatar.ply only after its last step, beside the final checkpoint."""

    return RunPaths(run).checkpoint.exists() and RunPaths(run).avatar_ply.exists()


def _logged(events: Iterator[Progress], log: Path) -> Iterator[Progress]:
    """Append every training event that carries a step to the log the report charts."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        for event in events:
            if "step" in event.metrics:
                handle.write(json.dumps({k: v for k, v in event.metrics.items()
                                         if isinstance(v, (int, float))}) + "\n")
                handle.flush()
            yield event


def _outputs_valid(stage: str, run: Path, config: PipelineConfig) -> bool:
    from perse.export.run import exports_complete

    checks: dict[str, Callable[[Path], bool]] = {
        "ingest": is_ingested,
        "synth": is_complete,
        "train": has_trained_avatar,
        "export": lambda r: exports_complete(r, config),
        "metrics": lambda r: RunPaths(r).report.exists(),
    }
    return checks[stage](run)


def run(photo: str | Path, run_dir: str | Path, config: PipelineConfig,
        cancel: CancelToken = NEVER) -> Iterator[Progress]:
    """Run (or resume) the whole pipeline for one photo into `run_dir`, yielding progress events."""
    from perse.avatar.train import train
    from perse.export.run import export_run
    from perse.ingest import ingest_to_run
    from perse.metrics.report import write_report
    from perse.synth import run_synth

    photo, run_dir = Path(photo), Path(run_dir)
    keys = stage_keys(photo, config)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RunPaths(run_dir).config, config.to_dict())
    state = RunState(run_dir)

    def stage(name: str, work: Callable[[], Iterator[Progress] | None]) -> Iterator[Progress]:
        if state.is_done(name, keys[name]) and _outputs_valid(name, run_dir, config):
            yield Progress(name, 1.0, f"{name}: up to date, skipped")
            return
        if state.start(name, keys[name]):
            # What this and later stages left (e.g. a checkpoint to resume from) was made from other
            # inputs; the same inputs, interrupted, are resumed instead.
            for later in STAGES[STAGES.index(name):]:
                _discard_outputs(later, run_dir)
        cancel.check()
        events = work()
        if events is not None:
            yield from events
        state.mark(name, keys[name])

    def do_ingest() -> Iterator[Progress]:
        yield Progress("ingest", 0.0, f"reading {photo.name}")
        portrait = ingest_to_run(photo, run_dir, config)
        notes = "; ".join(portrait.warnings)
        yield Progress("ingest", 1.0, "portrait aligned" + (f" ({notes})" if notes else ""),
                       image=str(RunPaths(run_dir).debug),
                       metrics={"head_pose": portrait.head_pose, "detection_score": portrait.detection_score})

    yield from stage("ingest", do_ingest)
    yield from stage("synth", lambda: run_synth(run_dir, config, cancel=cancel))
    yield from stage("train", lambda: _logged(train(run_dir, config, cancel=cancel, resume=True),
                                                 RunPaths(run_dir).train_log))
    yield from stage("export", lambda: export_run(run_dir, config, cancel=cancel))
    yield from stage("metrics", lambda: write_report(run_dir, config, cancel=cancel))


def _discard_outputs(stage: str, run: Path) -> None:
    """Outputs made with other inputs must not be mistaken for current ones (e.g. resumed from)."""
    paths = RunPaths(run)
    folders = {"synth": [paths.dataset], "train": [paths.avatar], "export": [paths.renders], "metrics": []}
    for folder in folders.get(stage, []):
        shutil.rmtree(folder, ignore_errors=True)
