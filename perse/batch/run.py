"""Many portraits at once, on Ray: one task per portrait, each with a whole GPU (or a few CPU cores),
on this machine or on a cluster already running.

The driver (this process) plans the run folders, skips portraits whose folder already holds a finished
avatar for these settings, starts Ray and submits at most `workers` tasks at a time. Each task runs the
pipeline (which resumes an interrupted run folder by itself). Progress flows back through a small actor
(perse.batch.worker.Hub), and so does cancellation: the first Ctrl-C lets every running portrait stop at
its next check, as `perse run` does. A portrait that fails is recorded with its message and the others go
on; the summary is rewritten whenever a portrait ends.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable

from perse.batch.plan import Portrait, is_finished, known_names, plan
from perse.batch.summary import PortraitStatus, counts, write_summary
from perse.batch.worker import STARTED, Hub, run_portrait
from perse.config import PipelineConfig, check_config
from perse.core.lock import run_lock
from perse.errors import PerseError
from perse.events import NEVER, CancelToken, Progress
from perse.pipeline import STAGES

# Presets made for CPUs: with device "auto" they run on CPU workers even where GPUs are.
CPU_PRESETS = {"tiny"}
# A CPU portrait's torch threads: two cores keep one portrait's training busy without starving the rest.
DEFAULT_CPUS_PER_PORTRAIT = 2
# A GPU portrait needs a core to feed its GPU; more would leave GPUs idle on nodes with few cores.
GPU_PORTRAIT_CPUS = 1
PROGRESS_INTERVAL_S = 1.0
WAIT_S = 0.2
# Only progress events and small results cross the object store: Ray's minimum keeps memory for training.
OBJECT_STORE_BYTES = 80 << 20


@dataclasses.dataclass(frozen=True)
class Placement:
    device: str  # "cuda" or "cpu", what every portrait's pipeline runs on
    cpus: int  # Ray CPUs per portrait (torch threads on CPU)
    gpus: int  # Ray GPUs per portrait
    workers: int  # portraits at a time

    def describe(self) -> str:
        each = "1 GPU" if self.gpus else f"{self.cpus} CPU core{'s' * (self.cpus > 1)}"
        return f"{self.workers} at a time, {each} each"


def placement(config: PipelineConfig, resources: dict[str, float], workers: int | None,
              cpus_per_portrait: int | None) -> Placement:
    """Where portraits run, from the config's device and what the Ray cluster offers."""
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    device = config.device
    if device == "auto":
        device = "cpu" if config.preset in CPU_PRESETS or gpus == 0 else "cuda"
    if device == "cuda" and gpus == 0:
        raise PerseError("device cuda was asked for but the Ray cluster has no GPUs; use --device cpu (or "
                         "--preset tiny), or join a cluster with GPUs with --address")
    if cpus_per_portrait is not None and cpus_per_portrait < 1:
        raise PerseError(f"--cpus-per-portrait must be at least 1, got {cpus_per_portrait}")
    if workers is not None and workers < 1:
        raise PerseError(f"--workers must be at least 1, got {workers}")
    if device == "cuda":
        each = cpus_per_portrait or GPU_PORTRAIT_CPUS
        return Placement("cuda", each, 1, workers or gpus)
    each = cpus_per_portrait or min(DEFAULT_CPUS_PER_PORTRAIT, max(cpus, 1))
    if each > cpus:
        raise PerseError(f"each portrait asks for {each} CPU cores but the Ray cluster has {cpus}; "
                         "lower --cpus-per-portrait")
    return Placement("cpu", each, 0, workers or max(1, cpus // each))


def _start_ray(address: str | None) -> bool:
    """Connect to `address`, or start Ray on this machine; True if this call started it (and so stops it)."""
    import ray

    if ray.is_initialized():
        return False
    # A batch should not phone home; a user who opted in keeps their setting.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "Ray on this machine"
        raise PerseError(f"cannot start or reach {where}: {exc}") from exc
    return True


class _Batch:
    """The driver's view of the batch: every portrait's status, and the events describing it."""

    def __init__(self, portraits: list[Portrait], out: Path, settings: dict[str, Any], names: dict[str, str],
                 progress: Callable[[Progress], None] | None):
        self.rows = [PortraitStatus(p.name, str(p.photo), str(p.run_dir)) for p in portraits]
        self.by_name = {row.name: row for row in self.rows}
        self.out, self.settings, self.names, self.progress = out, settings, names, progress
        self.last_emit, self.last_text = 0.0, ""

    def emit(self, news: str = "") -> None:
        """Send an event on news, and otherwise at most every PROGRESS_INTERVAL_S when something moved."""
        now = time.monotonic()
        if self.progress is None or (not news and now - self.last_emit < PROGRESS_INTERVAL_S):
            return
        tally = counts(self.rows)
        ended = tally["done"] + tally["skipped"] + tally["failed"] + tally["cancelled"]
        running = [row for row in self.rows if row.state == "running"]
        partial = sum((STAGES.index(row.stage) + row.fraction) / len(STAGES)
                      for row in running if row.stage in STAGES)
        text = (f"{tally['done'] + tally['skipped']}/{len(self.rows)} done, {tally['failed']} failed, "
                + (f"{tally['cancelled']} cancelled, " if tally["cancelled"] else "") + f"{len(running)} running")
        if running:
            text += ": " + ", ".join(f"{row.name} {row.stage} {row.fraction:.0%}" if row.stage else
                                     f"{row.name} starting" for row in running)
        if not news and text == self.last_text:
            return
        self.last_emit, self.last_text = now, text
        self.progress(Progress("batch", (ended + partial) / len(self.rows), f"{news} | {text}" if news else text,
                               metrics={"counts": tally, "portraits": {
                                   row.name: {"state": row.state, "stage": row.stage, "fraction": row.fraction}
                                   for row in self.rows}}))

    def update(self, name: str, stage: str, fraction: float, message: str) -> None:
        row = self.by_name[name]
        if row.state not in ("queued", "running"):
            return  # posted before the portrait ended, read after: its end already says what happened
        if stage == STARTED:
            row.state = "running"
            self.emit(f"{name} started")
            return
        changed = stage != row.stage
        row.stage, row.fraction, row.message = stage, fraction, message
        self.emit(f"{name} {stage}" if changed else "")

    def end(self, name: str, state: str, message: str, seconds: float | None = None, stage: str = "") -> None:
        row = self.by_name[name]
        row.state, row.message, row.seconds = state, message, seconds
        row.stage = stage or row.stage
        if state in ("done", "skipped"):
            row.stage, row.fraction = STAGES[-1], 1.0
            row.read_report()
        self.save()
        first_line = message.splitlines()[0] if message else ""
        detail = f" (goals met {row.goals_met})" if row.goals_met else f": {first_line}" if first_line else ""
        self.emit(f"{name} {state}{detail}")

    def save(self) -> None:
        write_summary(self.out, self.rows, self.settings, self.names)


def run_batch(photos: list[str | Path], out: str | Path, config: PipelineConfig, *, address: str | None = None,
              workers: int | None = None, cpus_per_portrait: int | None = None,
              progress: Callable[[Progress], None] | None = None,
              cancel: CancelToken = NEVER) -> list[PortraitStatus]:
    """Run (or resume) every photo into `out/<photo stem>/` on Ray and write the batch summary
    (summary.csv, summary.json, summary.html in `out`). `address` joins a running Ray cluster (its nodes
    must see `out` and the photos at the same paths); without it Ray starts on this machine with all
    its GPUs (or CPU cores). Returns every portrait's status; a portrait's failure is in its status,
    not raised. `progress` receives "batch" events; `cancel` stops every portrait at its next check."""
    check_config(config)
    out = Path(out)
    portraits = plan(photos, out)
    with run_lock(out, "perse batch"):
        names = {**known_names(out), **{str(p.photo): p.name for p in portraits}}
        batch = _Batch(portraits, out, {"preset": config.preset, "address": address or "local"}, names, progress)
        batch.save()
        todo = []
        for portrait in portraits:
            if is_finished(portrait, config):
                batch.end(portrait.name, "skipped", "finished earlier with these settings")
            else:
                todo.append(portrait)
        if todo:
            _run_on_ray(todo, batch, config, address, workers, cpus_per_portrait, cancel)
        batch.save()
        batch.emit("batch stopped" if any(row.state == "cancelled" for row in batch.rows) else "batch finished")
        return batch.rows


def _run_on_ray(todo: list[Portrait], batch: _Batch, config: PipelineConfig, address: str | None,
                workers: int | None, cpus_per_portrait: int | None, cancel: CancelToken) -> None:
    import ray

    started = _start_ray(address)
    running: dict[Any, Portrait] = {}
    try:
        place = placement(config, ray.cluster_resources(), workers, cpus_per_portrait)
        batch.settings.update({"device": place.device, "placement": place.describe()})
        batch.save()
        batch.emit(f"{len(todo)} to run on Ray ({place.describe()} on {place.device})")
        hub = ray.remote(num_cpus=0)(Hub).remote()
        task = ray.remote(run_portrait).options(num_cpus=place.cpus, num_gpus=place.gpus, max_retries=0)
        portrait_config = dataclasses.replace(config, device=place.device)
        threads = place.cpus if place.device == "cpu" else None
        queue = list(todo)
        told = False
        while queue or running:
            if cancel.cancelled and not told:
                hub.cancel.remote()
                told = True
                for portrait in queue:
                    batch.end(portrait.name, "cancelled", "not started; re-run the same command to run it")
                queue = []
            while queue and len(running) < place.workers:
                portrait = queue.pop(0)
                ref = task.remote(portrait.name, str(portrait.photo), str(portrait.run_dir), portrait_config,
                                  threads, hub)
                running[ref] = portrait
            ready, _ = ray.wait(list(running), num_returns=len(running), timeout=WAIT_S)
            for name, stage, fraction, message in ray.get(hub.take.remote()):
                batch.update(name, stage, fraction, message)
            for ref in ready:
                portrait = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    # The worker itself died (out of memory, killed, node lost): the run folder is as safe
                    # as after a crash of `perse run`, and a re-run resumes it.
                    batch.end(portrait.name, "failed", f"the worker stopped: {exc}")
                else:
                    batch.end(portrait.name, result["state"], result["message"], result["seconds"],
                              result["stage"])
            batch.emit()
    finally:
        # Reached with tasks running only on a second Ctrl-C or an error in the driver: stop them now.
        for ref, portrait in running.items():
            ray.cancel(ref, force=True)
            batch.end(portrait.name, "cancelled", "stopped at once; re-run the same command to resume it")
        if started:
            ray.shutdown()
