"""One photo in, an editable avatar out: ingest -> synth -> train -> export -> metrics, as one stream of
`Progress` events that the CLI and the app both consume.

Each stage's inputs (the photo's bytes, its own config section, the previous stage's key) are hashed
into a key. A run folder is changed as a transaction (docs/architecture.md section 3):

- one writer at a time holds `<run>/.lock` (perse.core.lock);
- `<run>/.work/` is the run as the stages see it: a stage whose finished outputs are current is linked
  there (`.work/dataset -> ../dataset`), a stage to redo writes its outputs there for real, and keeps
  them across an interruption (training resumes from its checkpoint there);
- when the last stage has finished, the rebuilt outputs are moved over the old ones (a journal in
  `.work/commit.json` lets an interrupted swap be completed by the next writer), so a failed or
  interrupted run leaves the previous complete result, report included, as it was;
- `<run>/stages.json` records the key and a manifest (size and hash of every file) of each finished
  stage, so an output is called up to date only when it is still what was written.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

from perse.config import PipelineConfig, check_config
from perse.core.io import WRITE_REFUSED, atomic_write_json, keep_written_images, storage_error
from perse.core.lock import run_lock
from perse.core.paths import RunPaths
from perse.dataset import is_complete
from perse.errors import Cancelled, InputImageError, PerseError
from perse.events import NEVER, CancelToken, Progress
from perse.ingest.load import photo_file_size
from perse.ingest.portrait import is_ingested

STAGES = ("ingest", "synth", "train", "export", "metrics")
# A photo file larger than its decoded pixels at the ingest limit (16-bit RGBA, 8 bytes a pixel, is the
# largest format the loader reads), plus room for metadata, cannot be a usable photo: refused unread.
PHOTO_BYTES_PER_PIXEL = 8
PHOTO_METADATA_BYTES = 16 << 20
CHUNK = 1 << 20


def _hash(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _photo_hash(photo: Path, config: PipelineConfig) -> str:
    """The photo's content hash, after checking it is a photo file (`photo_file_size`) of a size a
    photo within the megapixel limit can have: hashing reads it whole."""
    size = photo_file_size(photo)
    limit = int(config.ingest.max_megapixels * 1e6 * PHOTO_BYTES_PER_PIXEL) + PHOTO_METADATA_BYTES
    if size > limit:
        raise InputImageError(f"{photo} is {size / 1e6:.0f} MB, more than any photo within the "
                              f"{config.ingest.max_megapixels:g} megapixel limit can be ({limit / 1e6:.0f} MB); "
                              "downscale or re-compress it first")
    try:
        return _file_digest(photo)
    except OSError as exc:
        raise InputImageError(f"{photo}: cannot read the photo ({exc.strerror}); check the path") from exc


def stage_keys(photo: Path, config: PipelineConfig) -> dict[str, str]:
    """What each stage's output depends on; a change upstream invalidates everything downstream."""
    sections = dataclasses.asdict(config)
    ingest = _hash(_photo_hash(Path(photo), config), sections["ingest"])
    synth = _hash(ingest, sections["synth"], config.seed)
    train = _hash(synth, sections["avatar"], config.seed)
    export = _hash(train, sections["export"])
    return {"ingest": ingest, "synth": synth, "train": train, "export": export, "metrics": export}


def manifest(root: Path, stage: str) -> dict[str, list]:
    """{relative path: [size, sha256]} of every file a stage wrote under `root`."""
    files: dict[str, list] = {}
    for output in RunPaths(root).stage_outputs(stage):
        found = sorted(p for p in output.rglob("*") if p.is_file()) if output.is_dir() else [output]
        for path in found:
            if path.is_file():
                files[path.relative_to(root).as_posix()] = [path.stat().st_size, _file_digest(path)]
    return files


def matches(root: Path, recorded: dict[str, list]) -> bool:
    """Every recorded file is still there with its size and content (a truncated file fails)."""
    for name, (size, digest) in recorded.items():
        path = root / name
        try:
            if path.stat().st_size != size or _file_digest(path) != digest:
                return False
        except OSError:
            return False
    return True


class RunState:
    """`<run>/stages.json`: per stage, the key and manifest of its finished outputs in the run folder
    (`done`), of those finished in `.work/` but not yet swapped in (`staged`), and the key it last
    started with there (`started`)."""

    def __init__(self, run: Path):
        self.path = RunPaths(run).stages
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            # Missing or damaged: nothing is known to be finished, so everything is checked and redone.
            data = {}
        data = data if isinstance(data, dict) else {}
        self.done: dict[str, str] = data.get("done", {})
        self.files: dict[str, dict[str, list]] = data.get("files", {})
        self.staged: dict[str, str] = data.get("staged", {})
        self.staged_files: dict[str, dict[str, list]] = data.get("staged_files", {})
        self.started: dict[str, str] = data.get("started", {})

    def data(self) -> dict[str, Any]:
        return {"done": self.done, "files": self.files, "staged": self.staged, "staged_files": self.staged_files,
                "started": self.started}

    def save(self) -> None:
        atomic_write_json(self.path, self.data())

    def is_done(self, stage: str, key: str) -> bool:
        return self.done.get(stage) == key

    def start(self, stage: str, key: str) -> bool:
        """Record that `stage` starts in `.work/` with `key`; True if what it left there came from other inputs."""
        stale = self.started.get(stage) != key
        for later in STAGES[STAGES.index(stage):]:
            self.staged.pop(later, None)
            self.staged_files.pop(later, None)
        self.started[stage] = key
        self.save()
        return stale

    def stage(self, stage: str, key: str, files: dict[str, list]) -> None:
        self.staged[stage] = key
        self.staged_files[stage] = files
        self.save()


def has_trained_avatar(run: Path) -> bool:
    """Training writes avatar.ply only after its last step, beside the final checkpoint, which must load."""
    from perse.avatar.avatar import load_checkpoint

    paths = RunPaths(run)
    if not (paths.checkpoint.exists() and paths.avatar_ply.exists()):
        return False
    try:
        load_checkpoint(paths.checkpoint)
    except PerseError:
        return False
    return True


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


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


class Workspace:
    """`<run>/.work/`: the run folder as the stages see it while some of them are rebuilt."""

    def __init__(self, run: Path):
        self.run = run
        self.root = RunPaths(run).work
        self.journal = self.root / "commit.json"
        self.trash = self.root / ".trash"

    def names(self, stage: str) -> list[str]:
        return [path.name for path in RunPaths(self.run).stage_outputs(stage)]

    def link(self, stage: str) -> None:
        """Show the run folder's finished outputs of `stage` in the workspace."""
        self.root.mkdir(exist_ok=True)
        for name in self.names(stage):
            _remove(self.root / name)
            if os.path.lexists(self.run / name):
                os.symlink(os.path.join("..", name), self.root / name)

    def prepare(self, stage: str, fresh: bool) -> None:
        """Make room for `stage` to write for real: links go; what an earlier attempt left stays, for
        it to resume from, unless `fresh` (it came from other inputs)."""
        self.root.mkdir(exist_ok=True)
        for name in self.names(stage):
            entry = self.root / name
            if entry.is_symlink() or fresh:
                _remove(entry)

    def commit(self, state: RunState, config: PipelineConfig) -> None:
        """Move every stage rebuilt here over its old outputs, record them as done with the settings
        that made them, and link them back."""
        rebuilt = [name for stage in STAGES for name in self.names(stage)
                   if os.path.lexists(self.root / name) and not (self.root / name).is_symlink()]
        after = {"done": {**state.done, **state.staged}, "files": {**state.files, **state.staged_files},
                 "staged": {}, "staged_files": {}, "started": {}}
        atomic_write_json(self.journal, {"move": rebuilt, "state": after, "config": config.to_dict()})
        self.finish()

    def finish(self) -> None:
        """Carry out the journal: each step can be repeated, so a swap interrupted anywhere completes."""
        if not self.journal.exists():
            shutil.rmtree(self.trash, ignore_errors=True)
            return
        journal = json.loads(self.journal.read_text())
        self.trash.mkdir(exist_ok=True)
        for name in journal["move"]:
            entry, target = self.root / name, self.run / name
            if entry.is_symlink() or not os.path.lexists(entry):
                continue  # moved already
            if os.path.lexists(target):
                _remove(self.trash / name)
                os.rename(target, self.trash / name)
            os.rename(entry, target)
        atomic_write_json(RunPaths(self.run).config, journal["config"])
        atomic_write_json(RunPaths(self.run).stages, journal["state"])
        self.journal.unlink()
        shutil.rmtree(self.trash, ignore_errors=True)
        for stage in STAGES:
            self.link(stage)


def run(photo: str | Path, run_dir: str | Path, config: PipelineConfig,
        cancel: CancelToken = NEVER, until: str = STAGES[-1], ingested: Path | None = None) -> Iterator[Progress]:
    """Run (or resume) the pipeline for one photo into `run_dir`, up to and including stage `until`,
    yielding progress events. With `config.draft.enabled`, a draft avatar is built right after ingest
    (`_draft`). `ingested`: a folder holding this photo's ingest outputs, copied instead of ingesting again."""
    from perse.avatar.train import train
    from perse.export.run import export_run
    from perse.metrics.report import write_report
    from perse.synth import run_synth

    check_config(config)
    photo, run_dir = Path(photo), Path(run_dir)
    keys = stage_keys(photo, config)
    with run_lock(run_dir, "perse run"):
        try:
            work = Workspace(run_dir)
            work.finish()
            # Later stages read what synthesis wrote from memory rather than decoding it again.
            with keep_written_images():
                then = {}
                if config.draft.enabled and not RunState(run_dir).is_done("train", keys["train"]):
                    then["ingest"] = lambda root: _draft(photo, root, RunPaths(run_dir).draft, config, cancel)
                yield from _stages(run_dir, config, cancel, keys, work, STAGES[:STAGES.index(until) + 1], then, {
                    "ingest": lambda root: (_copy_ingest(ingested, root) if ingested else _ingest(photo, root, config)),
                    "synth": lambda root: run_synth(root, config, cancel=cancel),
                    "train": lambda root: _logged(train(root, config, cancel=cancel, resume=True),
                                                  RunPaths(root).train_log),
                    "export": lambda root: export_run(root, config, cancel=cancel),
                    "metrics": lambda root: write_report(root, config, cancel=cancel),
                })
        except OSError as exc:
            if exc.errno not in WRITE_REFUSED:
                raise
            raise storage_error(exc.filename or run_dir, exc) from exc


# Each stage's share of a draft's time (a few hundred steps: synthesis is about half of it).
DRAFT_SHARES = {"ingest": 0.05, "synth": 0.45, "train": 0.5}


def _draft(photo: Path, ingested: Path, folder: Path, config: PipelineConfig,
           cancel: CancelToken) -> Iterator[Progress]:
    """The draft avatar (`perse.config.draft_config`) in `folder`, a run folder of its own (resumable,
    skipped when current) that starts from the main run's ingest outputs in `ingested`, as "draft"
    events; the last one names the folder to open."""
    from perse.config import draft_config

    reached = dict.fromkeys(DRAFT_SHARES, 0.0)
    for event in run(photo, folder, draft_config(config), cancel, until="train", ingested=ingested):
        reached[event.stage] = max(reached[event.stage], event.fraction)
        yield Progress("draft", sum(DRAFT_SHARES[stage] * reached[stage] for stage in DRAFT_SHARES),
                       f"draft avatar: {event.message}")
    yield Progress("draft", 1.0, "draft avatar ready: sliders and pose work now; the full avatar replaces it "
                                 "when it is trained", avatar=str(folder))


def _ingest(photo: Path, root: Path, config: PipelineConfig) -> Iterator[Progress]:
    from perse.ingest import ingest_to_run

    yield Progress("ingest", 0.0, f"reading {photo.name}")
    portrait = ingest_to_run(photo, root, config)
    notes = "; ".join(portrait.warnings)
    yield Progress("ingest", 1.0, "portrait aligned" + (f" ({notes})" if notes else ""),
                   image=str(RunPaths(root).debug),
                   metrics={"head_pose": portrait.head_pose, "detection_score": portrait.detection_score})


def _copy_ingest(source: Path, root: Path) -> Iterator[Progress]:
    yield Progress("ingest", 0.0, f"portrait taken from {source}")
    for path in RunPaths(source).stage_outputs("ingest"):
        if path.exists():
            copy = shutil.copytree if path.is_dir() else shutil.copy2
            copy(path, root / path.relative_to(source))
    yield Progress("ingest", 1.0, "portrait aligned")


def _stages(run_dir: Path, config: PipelineConfig, cancel: CancelToken, keys: dict[str, str], work: Workspace,
            stages: tuple[str, ...], then: dict[str, Callable[[Path], Iterator[Progress]]],
            works: dict[str, Callable[[Path], Iterator[Progress]]]) -> Iterator[Progress]:
    """Each of `stages` skipped when current, else rebuilt in the workspace; `then[stage]` runs once that
    stage's outputs are in the workspace, rebuilt or not; everything is committed together at the end."""
    state = RunState(run_dir)
    # A stage that is redone invalidates every later one, even where their settings did not change (a
    # new PERSE Studio refusing an old dataset retrains the avatar, whose renders and report are then stale).
    redone = False
    for name in stages:
        key = keys[name]
        if (not redone and state.is_done(name, key) and matches(run_dir, state.files.get(name, {}))
                and _outputs_valid(name, run_dir, config)):
            # A run finished before manifests were recorded passed the stage's own check: record one now.
            state.files.setdefault(name, manifest(run_dir, name))
            work.link(name)
            yield Progress(name, 1.0, f"{name}: up to date, skipped")
        elif (not redone and state.staged.get(name) == key and matches(work.root, state.staged_files.get(name, {}))
                and _outputs_valid(name, work.root, config)):
            yield Progress(name, 1.0, f"{name}: up to date, skipped")
        else:
            # After an earlier stage was redone, what an interrupted attempt left here came from its old outputs.
            work.prepare(name, fresh=state.start(name, key) or redone)
            redone = True
            try:
                cancel.check()
                yield from works[name](work.root)
            except Cancelled:
                raise Cancelled(f"stopped during {name}; the run folder still holds its last complete result, and "
                                "running again with the same photo and settings resumes from here") from None
            state.stage(name, key, manifest(work.root, name))
        if name in then:
            yield from then[name](work.root)
    work.commit(state, config)
