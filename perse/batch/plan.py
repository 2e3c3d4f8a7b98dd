"""Which run folder each photo of a batch gets, and whether it already holds a finished avatar.

Every portrait runs in `<out>/<photo stem>/`. The names a batch gave are recorded in
`<out>/summary.json`, so a re-run (with photos added, removed or in another order) finds each photo's
folder again; a new photo whose stem is taken gets the first free `<stem>-2`, `<stem>-3`, ...
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from perse.config import PipelineConfig
from perse.core.paths import RunPaths
from perse.errors import PerseError
from perse.pipeline import STAGES, RunState, Workspace, matches, stage_keys
from perse.batch.summary import SUMMARY_CSV, SUMMARY_HTML, SUMMARY_JSON


@dataclass(frozen=True)
class Portrait:
    name: str  # the run folder's name under the batch folder
    photo: Path  # absolute: workers on other processes (or nodes) read it
    run_dir: Path


def known_names(out: Path) -> dict[str, str]:
    """photo -> run folder name of every photo any earlier batch into `out` ran (summary.json keeps
    them all, also those left out of later batches); an unreadable summary knows none."""
    try:
        names = json.loads((out / SUMMARY_JSON).read_text())["names"]
        return {str(photo): str(name) for photo, name in names.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _free(stem: str, taken: set[str]) -> str:
    # Hidden names would hide the run; compared case-insensitively, as macOS and Windows file systems do.
    base = stem.lstrip(".") or "photo"
    name, n = base, 2
    while name.lower() in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def plan(photos: list[str | Path], out: Path) -> list[Portrait]:
    """One Portrait per distinct photo, in the order given."""
    if not photos:
        raise PerseError("no photos given; pass one or more portrait files, e.g. `perse batch photos/*.jpg --out runs`")
    out = out.resolve()
    previous = {Path(photo): name for photo, name in known_names(out).items()}
    resolved = list(dict.fromkeys(Path(photo).resolve() for photo in photos))
    taken = {name.lower() for name in (SUMMARY_CSV, SUMMARY_JSON, SUMMARY_HTML)}
    names: dict[Path, str] = {}
    # Names recorded earlier are kept first, so a new photo never takes an existing run's folder.
    for photo in resolved:
        name = previous.get(photo)
        if name and name.lower() not in taken:
            names[photo] = name
            taken.add(name.lower())
    taken |= {name.lower() for name in previous.values()}
    for photo in resolved:
        if photo not in names:
            names[photo] = _free(photo.stem, taken)
            taken.add(names[photo].lower())
    return [Portrait(names[photo], photo, out / names[photo]) for photo in resolved]


def is_finished(portrait: Portrait, config: PipelineConfig) -> bool:
    """The run folder holds every stage, made from this photo with these settings and unchanged since
    (the pipeline's own record and manifests), with no writer and no swap pending: safe to skip without
    starting a worker. Anything less goes to a worker, whose pipeline resumes what is there."""
    paths = RunPaths(portrait.run_dir)
    if not paths.stages.exists() or paths.lock.exists() or Workspace(portrait.run_dir).journal.exists():
        return False
    try:
        keys = stage_keys(portrait.photo, config)
    except PerseError:
        return False  # an unreadable photo: the worker reports why
    state = RunState(portrait.run_dir)
    return all(state.is_done(stage, keys[stage]) and matches(portrait.run_dir, state.files.get(stage, {}))
               for stage in STAGES) and paths.report.exists()
