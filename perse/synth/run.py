"""`run_synth`: one ingested portrait -> the whole synthetic dataset (docs/architecture.md sections 1 and 3).

For every selected category it draws `values` looks plus `holdout_looks` held-out ones (named presets,
then continuous looks), edits the portrait (editor backend), animates each edit with the run's single
motion script (animator backend), scores every frame's identity against the portrait and marks drifted
frames dropped, then writes the interpolation targets `interpolation_pairs` plans between the trained
looks (the source look included), and animates `mixes` clips that combine trained looks of several
categories (perse.synth.mix). Everything goes through perse.dataset; meta.json is written last,
so an interrupted run leaves no valid dataset and the next run starts over, while a complete dataset
is skipped.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from perse.config import PipelineConfig
from perse.core import camera as cam
from perse.core.images import contact_sheet
from perse.core.io import save_npz, save_png, to_uint8
from perse.core.paths import RunPaths
from perse.dataset import (
    EXPRESSION_NAMES,
    MIX,
    SOURCE,
    Clip,
    DatasetWriter,
    Frame,
    Pair,
    is_complete,
)
from perse.errors import PerseError
from perse.events import NEVER, CancelToken, Progress
from perse.ingest.portrait import Portrait
from perse.synth.animate.motion import motion_script
from perse.synth.catalog import Value, interpolation_pairs, sample_values
from perse.synth.catalog import category as get_category
from perse.synth.edit import EditResult
from perse.synth.mix import plan_mixes

PREVIEW_FRAMES = 8


def resize_portrait(portrait: Portrait, size: int) -> Portrait:
    """The portrait at the dataset's image size: pixels resampled, landmarks (z too) and intrinsics scaled."""
    if portrait.size == size:
        return portrait
    if size < 32:
        raise PerseError(f"synth.size={size} is too small to draw a face; use 32 or more")
    factor = size / portrait.size
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    resize = lambda a: np.clip(cv2.resize(np.asarray(a), (size, size), interpolation=interpolation), 0, None)  # noqa: E731
    return Portrait(
        image=resize(portrait.image).astype(np.uint8),
        landmarks=(np.asarray(portrait.landmarks, np.float64) * factor).astype(np.float32),
        matte=np.clip(resize(portrait.matte.astype(np.float32)), 0, 1),
        masks={name: np.clip(resize(mask.astype(np.float32)), 0, 1) for name, mask in portrait.masks.items()},
        # warpAffine puts pixel centres at integers: scaling about them shifts by (factor - 1) / 2.
        crop_transform=np.asarray(portrait.crop_transform) * factor + np.array([[0, 0, (factor - 1) / 2]] * 2),
        head_pose=dict(portrait.head_pose),
        intrinsics=cam.intrinsics(size, portrait.fov_deg),
        fov_deg=portrait.fov_deg,
        source=portrait.source,
        source_size=portrait.source_size,
        detection_score=portrait.detection_score,
        warnings=list(portrait.warnings),
        extra=dict(portrait.extra),
    )


def _composite(image: np.ndarray, matte: np.ndarray, background: tuple[float, float, float]) -> np.ndarray:
    return image * matte[..., None] + (1 - matte[..., None]) * np.asarray(background, np.float32)


class _Timer:
    """Seconds per phase, reported in the final event so benches and users see where time goes (phases
    that run on worker threads sum their workers' time, so the phases can add up to more than the wall)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[phase] += time.perf_counter() - start


def cores() -> int:
    """The cores this process may run on (its affinity, which containers and `taskset` narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _BackgroundJobs:
    """PNG encoding runs on worker threads, one per core (zlib releases the GIL), while the main thread
    renders and scores the next clip; at most two jobs per worker wait in memory."""

    def __init__(self) -> None:
        self.workers = cores()
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="synth-write")
        self.pending: list[Future] = []

    def submit(self, job: Callable, *args) -> None:
        while True:
            running = [f for f in self.pending if not f.done()]
            if len(running) < 2 * self.workers:
                break
            wait(running, return_when=FIRST_COMPLETED)
        self.pending.append(self.pool.submit(job, *args))

    def finish(self) -> None:
        """Wait for every job; the first failure is raised here."""
        for future in self.pending:
            future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


# A pair target costs about a tenth of an animated, identity-scored clip (progress accounting).
PAIR_COST = 0.1


class _Synthesis:
    """One synth run: the backends built for this portrait, the writer, and the steps run_synth calls in
    order (source clip, one clip per chosen value, interpolation targets, the contact sheet)."""

    def __init__(self, run: Path, config: PipelineConfig, cancel: CancelToken):
        from perse.synth.animate import make_animator
        from perse.synth.edit import make_editor
        from perse.synth.filter import IdentityFilter
        from perse.synth.identity import make_scorer
        from perse.synth.interp import check_method

        syn = self.syn = config.synth
        self.paths = RunPaths(run)
        self.cancel = cancel
        self.timer = _Timer()
        self.portrait = resize_portrait(Portrait.load(run), syn.size)
        # The last `holdout_looks` values of each category are held-out looks (perse.dataset: they take
        # the category's last codes); they get clips but no interpolation targets.
        self.chosen = sample_values(syn.categories, syn.values + syn.holdout_looks, config.seed)
        if syn.frames < 1:
            raise PerseError(f"synth.frames={syn.frames}: a clip needs at least one frame")
        self.ts = [float(t) for t in syn.interp_ts]
        if any(not 0.0 < t < 1.0 for t in self.ts):
            raise PerseError(f"synth.interp_ts={syn.interp_ts}: every t must lie strictly between 0 and 1")
        self.editor = make_editor(syn.editor, config)
        self.interp = check_method(syn.interp, getattr(self.editor, "exact", False))
        with self.timer("lift"):
            self.animator = make_animator(syn.animator, self.portrait, config)
        poses = motion_script(syn.frames, self.portrait.fov_deg, self.animator.pivot)
        self.motion = {"yaw_deg": poses.yaw.tolist(), "pitch_deg": poses.pitch.tolist()}
        with self.timer("identity"):
            scorer = make_scorer(syn.identity, config)
            self.identity = IdentityFilter.for_portrait(scorer, self.portrait.image, self.portrait.landmarks,
                                                        syn.identity_threshold)
        self.source_image = self.portrait.image.astype(np.float32) / 255.0
        self.background = tuple(float(c) for c in self.animator.background)
        self.mixes = plan_mixes(list(self.chosen), syn.values, syn.mixes, config.seed)
        self.n_clips = 1 + sum(len(v) for v in self.chosen.values()) + len(self.mixes)
        self.pair_plan = interpolation_pairs(self.syn.values, self.ts)
        self.n_pairs = len(self.chosen) * len(self.pair_plan)
        self.units = self.n_clips + PAIR_COST * self.n_pairs
        self.done = 0.0
        self.totals = {"kept": 0, "dropped": 0}
        self.edits: dict[str, list] = {}
        self.sheet_images, self.sheet_labels = [self.source_image], ["source"]
        self.clip_order: list[str] = []
        self.pair_order: list[str] = []
        self.jobs = _BackgroundJobs()
        # Edits and interpolation targets: numpy, OpenCV and torch work on whole images, which release
        # the GIL for most of their time (on 16 cores, 16 threads kept 11 busy), one thread per core.
        self.editing = ThreadPoolExecutor(cores(), thread_name_prefix="synth-edit")
        self.pair_targets: deque[tuple[Pair, Future]] = deque()
        self.writer = self._open_writer()

    def _open_writer(self) -> DatasetWriter:
        points, colors = self.animator.point_cloud(self.source_image, self.portrait.matte)
        self.paths.dataset.mkdir(parents=True, exist_ok=True)
        save_npz(self.paths.init_points, points=points, colors=colors)
        syn = self.syn
        return DatasetWriter(
            self.paths.root, syn.size, self.portrait.intrinsics,
            {name: [SOURCE] + [v.label for v in values] for name, values in self.chosen.items()},
            extra={
                "init_points": self.paths.init_points.name,
                "background": list(self.background),
                "editor": syn.editor, "animator": syn.animator, "interp": self.interp,
                "identity": {"backend": syn.identity, "threshold": self.identity.threshold},
                "pivot": self.animator.pivot.tolist(),
                "motion": self.motion,
            },
        )

    def _progress(self, message: str, **fields) -> Progress:
        return Progress("synth", min(self.done / self.units, 0.99), message, **fields)

    def _store_clip(self, clip: Clip, records: list[Frame], images: np.ndarray, alphas: np.ndarray) -> None:
        with self.timer("write"):
            self.writer.add_clip(clip, ((records[i], images[i], alphas[i]) for i in range(len(records))))

    def animate_clip(self, clip_id: str, category: str, label: str, code: int, image: np.ndarray,
                     matte: np.ndarray, accessory=None, codes: dict[str, int] | None = None) -> tuple[int, int, Path]:
        """Animate, score and queue one clip (with the edit's 3D accessory, if any); returns (kept
        frames, frames, preview sheet path)."""
        holdout = code > self.syn.values
        with self.timer("animate"):
            # Each trained clip shows its own run of expressions (perse.synth.animate.motion), at the same
            # poses. A held-out look shows the source clip's, so that the metrics compare each of its
            # frames with the source frame of the same camera and expression (perse.metrics.looks).
            script = motion_script(self.syn.frames, self.portrait.fov_deg, self.animator.pivot,
                                   clip=0 if holdout else len(self.clip_order))
            frames = self.animator.animate(image, matte, script, accessory=accessory)
        # Rounded to bytes once, here: the identity scorer and the dataset's PNG writers both take bytes (the
        # writers' threads had rounded every frame a second time), and a clip waiting to be written holds a
        # quarter of the memory.
        images = to_uint8(frames.images)
        with self.timer("identity"):
            scores = self.identity.scores(images, frames.landmarks)
        kept = self.identity.keep(scores)
        records = [Frame(i, frames.viewmats[i].tolist(), frames.expressions[i].tolist(), float(scores[i]),
                         bool(kept[i])) for i in range(len(scores))]
        step = max(1, len(records) // PREVIEW_FRAMES)
        picks = list(range(0, len(records), step))[:PREVIEW_FRAMES]
        preview = self.paths.clip_previews / f"{clip_id}.png"
        save_png(preview, contact_sheet([images[i] for i in picks],
                                        [f"{records[i].identity:.2f}{'' if records[i].kept else ' x'}" for i in picks],
                                        columns=PREVIEW_FRAMES, tile=min(160, self.syn.size)))
        self.jobs.submit(self._store_clip, Clip(clip_id, category, label, 1.0 if code or codes else 0.0, code,
                                                holdout=holdout, codes=codes or {}),
                         records, images, frames.alphas)
        self._write_pairs()
        self.totals["kept"] += int(kept.sum())
        self.totals["dropped"] += int((~kept).sum())
        self.clip_order.append(clip_id)
        self.done += 1
        return int(kept.sum()), len(kept), preview

    def source_clip(self) -> Iterator[Progress]:
        self.cancel.check()
        kept, count, preview = self.animate_clip(SOURCE, SOURCE, SOURCE, 0, self.source_image, self.portrait.matte)
        yield self._progress(f"source clip: kept {kept}/{count} frames", image=str(preview),
                             metrics={"clip": SOURCE, "kept": kept, "dropped": count - kept})

    def _edit(self, name: str, value: Value, portrait: Portrait | None = None) -> EditResult:
        with self.timer("edit"):
            return self.editor.edit(portrait or self.portrait, get_category(name), value, 1.0)

    def _edit_mix(self, codes: dict[str, int]) -> EditResult:
        """Several looks on one portrait, each drawn over the previous one's result (perse.synth.mix)."""
        portrait, region, result = self.portrait, None, None
        for name, code in codes.items():
            result = self._edit(name, self.chosen[name][code - 1], portrait)
            region = result.region if region is None else np.maximum(region, result.region)
            portrait = dataclasses.replace(portrait, image=to_uint8(result.image), matte=result.matte)
        return EditResult(result.image, region, result.matte, result.accessory)

    def _ahead(self, jobs: list[tuple[Any, Callable[[], EditResult]]]) -> Iterator[tuple[Any, EditResult]]:
        """(key, edit) for every (key, edit job) in order. Edits are CPU work (a 3D hat takes seconds at
        512 px) while animating is GPU work, so worker threads edit a few looks ahead of the animator;
        the window bounds the edits held in memory."""
        pending = iter(jobs)
        ahead: deque = deque()
        try:
            while True:
                for key, job in itertools.islice(pending, 2 * self.jobs.workers - len(ahead)):
                    ahead.append((key, self.editing.submit(job)))
                if not ahead:
                    return
                key, future = ahead.popleft()
                yield key, future.result()
        finally:
            for _, future in ahead:
                future.cancel()

    def value_clips(self) -> Iterator[Progress]:
        """One edited, animated clip per chosen look of every category; a category's interpolation targets
        are queued as soon as its looks are edited, so they are written while later clips animate."""
        looks = [((name, code, value), functools.partial(self._edit, name, value))
                 for name, values in self.chosen.items() for code, value in enumerate(values, start=1)]
        for (name, code, value), result in self._ahead(looks):
            self.cancel.check()
            self.edits.setdefault(name, [None]).append(result)
            self.sheet_images.append(result.image)
            self.sheet_labels.append(value.label)
            clip_id = f"{name}-{code}"
            kept, count, preview = self.animate_clip(clip_id, name, value.label, code, result.image, result.matte,
                                                     result.accessory)
            note = "" if kept >= count / 4 else " (identity drifted in most frames: check this edit)"
            if (np.abs(result.image - self.source_image).max(-1) > 2.5 / 255).mean() < 1e-3:
                note += f" (the edit changed almost nothing: does the portrait show its {name} region?)"
            yield self._progress(f"{name} = {value.label}: kept {kept}/{count} frames{note}", image=str(preview),
                                 metrics={"clip": clip_id, "kept": kept, "dropped": count - kept})
            if code == len(self.chosen[name]):
                self._queue_pairs(name)
                yield self._progress(f"{name}: interpolation targets queued ({self.interp})")

    def mix_clips(self) -> Iterator[Progress]:
        """One clip per planned mix of trained looks (perse.synth.mix)."""
        jobs = [((index, codes), functools.partial(self._edit_mix, codes)) for index, codes in enumerate(self.mixes, 1)]
        for (index, codes), result in self._ahead(jobs):
            self.cancel.check()
            label = " + ".join(self.chosen[name][code - 1].label for name, code in codes.items())
            self.sheet_images.append(result.image)
            self.sheet_labels.append(label)
            kept, count, preview = self.animate_clip(f"{MIX}-{index}", MIX, label, 0, result.image, result.matte,
                                                     result.accessory, codes)
            yield self._progress(f"mixed look {index}/{len(self.mixes)} ({label}): kept {kept}/{count} frames",
                                 image=str(preview), metrics={"clip": f"{MIX}-{index}", "kept": kept,
                                                              "dropped": count - kept})

    def _pair_target(self, pair: Pair, category, options: list, edited: list, a: int,
                     b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pair's image, region and matte as the dataset stores them (8 bits a channel)."""
        from perse.synth.interp import morph

        with self.timer("pairs"):
            if self.interp == "exact":
                target = self.editor.edit_between(self.portrait, category, options[a], options[b], pair.t)
                # A look on its way (a beard at half length) covers less than its endpoints: the pair
                # supervises everything either endpoint may change.
                for end in (edited[a], edited[b]):
                    if end is not None:
                        target.region = np.maximum(target.region, end.region)
            else:
                first, second = edited[a], edited[b]
                region = second.region if first is None else np.maximum(first.region, second.region)
                target = morph(self.source_image if first is None else first.image, second.image,
                               self.portrait.matte if first is None else first.matte, second.matte, region, pair.t)
            return (to_uint8(_composite(target.image, target.matte, self.background)), to_uint8(target.region),
                    to_uint8(target.matte))

    def _store_pair(self, pair: Pair, images: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        with self.timer("pairs"):
            self.writer.add_pair(pair, *images)

    def _write_pairs(self, wait: bool = False) -> None:
        """Queue the writing of the interpolation targets made so far (all of them when `wait`), in order."""
        while self.pair_targets and (wait or self.pair_targets[0][1].done()):
            pair, future = self.pair_targets.popleft()
            self.jobs.submit(self._store_pair, pair, future.result())

    def _queue_pairs(self, name: str) -> None:
        """Interpolation targets of one category between the trained codes `interpolation_pairs` plans (the
        source look included), at the frontal camera with a neutral expression; held-out looks get none,
        since a pair would teach them."""
        frontal = cam.head_pose_viewmat(self.portrait.fov_deg, 0.0, 0.0, 0.0, self.animator.pivot).tolist()
        neutral = [0.0] * len(EXPRESSION_NAMES)
        category = get_category(name)
        options = [None] + list(self.chosen[name])
        for a, b, t in self.pair_plan:
            self.cancel.check()
            pair = Pair(f"{name}-{a}-{b}-t{round(t * 1000):04d}", name, SOURCE if a == 0 else f"{name}-{a}",
                        f"{name}-{b}", t, frontal, neutral)
            self.pair_order.append(pair.id)
            # On the editing threads, not the writers': queued there, 46 targets of a category would hold
            # the main thread (and the animator) until all but two per writer were done.
            self.pair_targets.append((pair, self.editing.submit(self._pair_target, pair, category, options,
                                                                self.edits[name], a, b)))
            self.done += PAIR_COST

    def close(self) -> Path:
        """Wait for the writers, order the records as planned, write the contact sheet and meta.json
        (last: it marks the dataset complete); returns the sheet's path."""
        self._write_pairs(wait=True)
        self.jobs.finish()
        # Workers finish in any order; the dataset lists clips and pairs in the order they were planned.
        self.writer.meta.clips.sort(key=lambda clip: self.clip_order.index(clip.id))
        self.writer.meta.pairs.sort(key=lambda pair: self.pair_order.index(pair.id))
        save_png(self.paths.edits_sheet, contact_sheet(self.sheet_images, self.sheet_labels,
                                                       columns=min(6, len(self.sheet_images)),
                                                       tile=min(256, self.syn.size)))
        self.writer.close()
        return self.paths.edits_sheet


def run_synth(run_dir: str | Path, config: PipelineConfig, cancel: CancelToken = NEVER) -> Iterator[Progress]:
    """Write `<run>/dataset` and yield Progress events (stage "synth"); skip a complete dataset."""
    run = Path(run_dir)
    paths = RunPaths(run)
    if is_complete(run):
        sheet = paths.edits_sheet
        yield Progress("synth", 1.0, f"dataset in {paths.dataset} is complete; skipped (delete it to regenerate)",
                       image=str(sheet) if sheet.exists() else None)
        return
    started = time.perf_counter()
    yield Progress("synth", 0.0, f"lifting the portrait to 3D ({config.synth.size}px, {config.synth.animator} animator)")
    job = _Synthesis(run, config, cancel)
    try:
        yield from job.source_clip()
        yield from job.value_clips()
        yield from job.mix_clips()
        sheet = job.close()
    finally:
        job.editing.shutdown(wait=True, cancel_futures=True)
        job.jobs.close()
    elapsed = time.perf_counter() - started
    totals = job.totals
    total = totals["kept"] + totals["dropped"]
    yield Progress("synth", 1.0,
                   f"dataset written: {job.n_clips} clips, {len(job.pair_order)} pairs, kept {totals['kept']}/{total} "
                   f"frames (identity >= {job.identity.threshold}) in {elapsed:.1f} s",
                   image=str(sheet), metrics={**totals, "clips": job.n_clips, "pairs": len(job.pair_order),
                                              "seconds": elapsed,
                                              "phases": {k: round(v, 3) for k, v in job.timer.seconds.items()}})
