"""`run_synth`: one ingested portrait -> the whole synthetic dataset (PERSE.md sections 1, 2 and 4).

For every selected category it draws `values` catalog values, edits the portrait (editor backend),
animates each edit with the run's single motion script (animator backend), scores every frame's
identity against the portrait and marks drifted frames dropped, then writes interpolation targets
between every two codes of the category (the source look included) at `interp_ts`. Everything goes
through perse/dataset.py; meta.json is written last, so an interrupted run leaves no valid dataset and
the next run starts over, while a complete dataset is skipped.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from perse.config import PipelineConfig
from perse.core import camera as cam
from perse.core.images import contact_sheet
from perse.core.io import save_npz, save_png
from perse.dataset import (
    EXPRESSION_NAMES,
    SOURCE,
    Clip,
    DatasetWriter,
    Frame,
    Pair,
    dataset_dir,
    is_complete,
)
from perse.errors import PerseError
from perse.events import NEVER, CancelToken, Progress
from perse.ingest.portrait import Portrait
from perse.synth.catalog import category as get_category
from perse.synth.catalog import sample_values

INIT_POINTS = "init_points.npz"
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


def run_synth(run_dir: str | Path, config: PipelineConfig, cancel: CancelToken = NEVER) -> Iterator[Progress]:
    """Write `<run>/dataset` and yield Progress events (stage "synth"); skip a complete dataset."""
    run = Path(run_dir)
    root = dataset_dir(run)
    if is_complete(run):
        sheet = root / "edits.png"
        yield Progress("synth", 1.0, f"dataset in {root} is complete; skipped (delete it to regenerate)",
                       image=str(sheet) if sheet.exists() else None)
        return
    syn = config.synth
    started = time.perf_counter()
    portrait = resize_portrait(Portrait.load(run), syn.size)
    chosen = sample_values(syn.categories, syn.values, config.seed)
    if syn.frames < 1:
        raise PerseError(f"synth.frames={syn.frames}: a clip needs at least one frame")
    ts = [float(t) for t in syn.interp_ts]
    if any(not 0.0 < t < 1.0 for t in ts):
        raise PerseError(f"synth.interp_ts={syn.interp_ts}: every t must lie strictly between 0 and 1")

    from perse.synth.animate import make_animator
    from perse.synth.animate.motion import motion_script
    from perse.synth.edit import make_editor
    from perse.synth.filter import IdentityFilter
    from perse.synth.identity import make_scorer
    from perse.synth.interp import check_method, morph

    editor = make_editor(syn.editor, config)
    interp = check_method(syn.interp, getattr(editor, "exact", False))
    yield Progress("synth", 0.0, f"lifting the portrait to 3D ({syn.size}px, {syn.animator} animator)")
    timer = _Timer()
    with timer("lift"):
        animator = make_animator(syn.animator, portrait, config)
    script = motion_script(syn.frames, portrait.fov_deg, animator.pivot)
    with timer("identity"):
        scorer = make_scorer(syn.identity, config)
        identity = IdentityFilter.for_portrait(scorer, portrait.image, portrait.landmarks, syn.identity_threshold)
    source_image = portrait.image.astype(np.float32) / 255.0

    n_clips = 1 + sum(len(v) for v in chosen.values())
    n_pairs = sum(len(ts) * (len(v) + 1) * len(v) // 2 for v in chosen.values())
    # A pair target costs about a tenth of an animated, identity-scored clip.
    pair_cost = 0.1
    units, done = n_clips + pair_cost * n_pairs, 0.0
    background = tuple(float(c) for c in animator.background)
    points, colors = animator.point_cloud(source_image, portrait.matte)
    root.mkdir(parents=True, exist_ok=True)
    save_npz(root / INIT_POINTS, points=points, colors=colors)
    writer = DatasetWriter(
        run, syn.size, portrait.intrinsics,
        {name: [SOURCE] + [v.label for v in values] for name, values in chosen.items()},
        extra={
            "init_points": INIT_POINTS,
            "background": list(background),
            "editor": syn.editor, "animator": syn.animator, "interp": interp,
            "identity": {"backend": syn.identity, "threshold": identity.threshold},
            "pivot": animator.pivot.tolist(),
            "motion": {"yaw_deg": script.yaw.tolist(), "pitch_deg": script.pitch.tolist()},
        },
    )

    totals = {"kept": 0, "dropped": 0}
    edits: dict[str, list] = {}
    sheet_images, sheet_labels = [source_image], ["source"]
    # PNG encoding and pair targets run on worker threads (zlib, numpy and OpenCV release the GIL) while
    # the main thread renders and scores the next clip; at most two jobs per worker wait in memory.
    workers = max(1, min(8, os.cpu_count() or 1))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="synth-write")
    pending: list[Future] = []

    def submit(job, *args) -> None:
        while True:
            running = [f for f in pending if not f.done()]
            if len(running) < 2 * workers:
                break
            wait(running, return_when=FIRST_COMPLETED)
        pending.append(pool.submit(job, *args))

    def store_clip(clip: Clip, records: list[Frame], images: np.ndarray, alphas: np.ndarray) -> None:
        with timer("write"):
            writer.add_clip(clip, ((records[i], images[i], alphas[i]) for i in range(len(records))))

    def animate_clip(clip_id: str, category: str, label: str, code: int, image: np.ndarray, matte: np.ndarray):
        with timer("animate"):
            frames = animator.animate(image, matte, script)
        with timer("identity"):
            scores = identity.scores(frames.images, frames.landmarks)
        kept = identity.keep(scores)
        records = [Frame(i, frames.viewmats[i].tolist(), frames.expressions[i].tolist(), float(scores[i]), bool(kept[i]))
                   for i in range(len(scores))]
        step = max(1, len(records) // PREVIEW_FRAMES)
        picks = list(range(0, len(records), step))[:PREVIEW_FRAMES]
        preview = root / "previews" / f"{clip_id}.png"
        save_png(preview, contact_sheet([frames.images[i] for i in picks],
                                        [f"{records[i].identity:.2f}{'' if records[i].kept else ' x'}" for i in picks],
                                        columns=PREVIEW_FRAMES, tile=min(160, syn.size)))
        submit(store_clip, Clip(clip_id, category, label, 1.0 if code else 0.0, code), records, frames.images,
               frames.alphas)
        totals["kept"] += int(kept.sum())
        totals["dropped"] += int((~kept).sum())
        return int(kept.sum()), len(kept), preview

    def store_pair(pair: Pair, category, options: list, edited: list, a: int, b: int) -> None:
        with timer("pairs"):
            if interp == "exact":
                target = editor.edit_between(portrait, category, options[a], options[b], pair.t)
            else:
                first, second = edited[a], edited[b]
                region = second.region if first is None else np.maximum(first.region, second.region)
                target = morph(source_image if first is None else first.image, second.image,
                               portrait.matte if first is None else first.matte, second.matte, region, pair.t)
            writer.add_pair(pair, _composite(target.image, target.matte, background), target.region, target.matte)

    clip_order: list[str] = []
    pair_order: list[str] = []
    try:
        cancel.check()
        kept, count, preview = animate_clip(SOURCE, SOURCE, SOURCE, 0, source_image, portrait.matte)
        clip_order.append(SOURCE)
        done += 1
        yield Progress("synth", done / units, f"source clip: kept {kept}/{count} frames", image=str(preview),
                       metrics={"clip": SOURCE, "kept": kept, "dropped": count - kept})
        for name, values in chosen.items():
            category = get_category(name)
            edits[name] = [None]
            for code, value in enumerate(values, start=1):
                cancel.check()
                with timer("edit"):
                    result = editor.edit(portrait, category, value, 1.0)
                edits[name].append(result)
                sheet_images.append(result.image)
                sheet_labels.append(value.label)
                clip_id = f"{name}-{code}"
                kept, count, preview = animate_clip(clip_id, name, value.label, code, result.image, result.matte)
                clip_order.append(clip_id)
                done += 1
                note = "" if kept >= count / 4 else " (identity drifted in most frames: check this edit)"
                if (np.abs(result.image - source_image).max(-1) > 2.5 / 255).mean() < 1e-3:
                    note += f" (the edit changed almost nothing: does the portrait show its {name} region?)"
                yield Progress("synth", done / units, f"{name} = {value.label}: kept {kept}/{count} frames{note}",
                               image=str(preview), metrics={"clip": clip_id, "kept": kept, "dropped": count - kept})

        frontal = cam.head_pose_viewmat(portrait.fov_deg, 0.0, 0.0, 0.0, animator.pivot).tolist()
        neutral = [0.0] * len(EXPRESSION_NAMES)
        for name, values in chosen.items():
            category = get_category(name)
            options = [None] + list(values)
            for a, b in itertools.combinations(range(len(options)), 2):
                cancel.check()
                for t in ts:
                    pair = Pair(f"{name}-{a}-{b}-t{round(t * 1000):04d}", name, SOURCE if a == 0 else f"{name}-{a}",
                                f"{name}-{b}", t, frontal, neutral)
                    pair_order.append(pair.id)
                    submit(store_pair, pair, category, options, edits[name], a, b)
                    done += pair_cost
            yield Progress("synth", min(done / units, 0.99), f"{name}: interpolation targets queued ({interp})")
        for future in pending:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

    # Workers finish in any order; the dataset lists clips and pairs in the order they were planned.
    writer.meta.clips.sort(key=lambda clip: clip_order.index(clip.id))
    writer.meta.pairs.sort(key=lambda pair: pair_order.index(pair.id))
    sheet = root / "edits.png"
    save_png(sheet, contact_sheet(sheet_images, sheet_labels, columns=min(6, len(sheet_images)),
                                  tile=min(256, syn.size)))
    writer.close()
    elapsed = time.perf_counter() - started
    total = totals["kept"] + totals["dropped"]
    yield Progress("synth", 1.0,
                   f"dataset written: {n_clips} clips, {len(pair_order)} pairs, kept {totals['kept']}/{total} frames "
                   f"(identity >= {identity.threshold}) in {elapsed:.1f} s",
                   image=str(sheet), metrics={**totals, "clips": n_clips, "pairs": len(pair_order), "seconds": elapsed,
                                              "phases": {k: round(v, 3) for k, v in timer.seconds.items()}})
