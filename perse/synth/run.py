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
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from perse import camera as cam
from perse.config import PipelineConfig
from perse.dataset import (EXPRESSION_NAMES, SOURCE, Clip, DatasetWriter, Frame, Pair, atomic_write_bytes,
                           dataset_dir, is_complete, save_png)
from perse.errors import PerseError
from perse.events import NEVER, CancelToken, Progress
from perse.ingest.portrait import Portrait
from perse.synth.catalog import category as get_category
from perse.synth.catalog import sample_values
from perse.synth.sheet import contact_sheet

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
        crop_transform=np.asarray(portrait.crop_transform) * np.array([[factor], [factor]]),
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


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    import io

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


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
    animator = make_animator(syn.animator, portrait, config)
    script = motion_script(syn.frames, portrait.fov_deg, animator.pivot)
    scorer = make_scorer(syn.identity, config)
    source_image = portrait.image.astype(np.float32) / 255.0
    identity = IdentityFilter.for_portrait(scorer, portrait.image, portrait.landmarks, syn.identity_threshold)

    n_clips = 1 + sum(len(v) for v in chosen.values())
    n_pairs = sum(len(ts) * (len(v) + 1) * len(v) // 2 for v in chosen.values())
    # A pair target costs about a tenth of an animated, identity-scored clip.
    pair_cost = 0.1
    units, done = n_clips + pair_cost * n_pairs, 0.0
    background = tuple(float(c) for c in animator.background)
    points, colors = animator.point_cloud(source_image, portrait.matte)
    root.mkdir(parents=True, exist_ok=True)
    _save_npz(root / INIT_POINTS, points=points, colors=colors)
    writer = DatasetWriter(
        run, syn.size, portrait.intrinsics,
        {name: [SOURCE] + [v.label for v in values] for name, values in chosen.items()},
        extra={
            "init_points": INIT_POINTS,
            "background": list(background),
            "editor": syn.editor, "animator": syn.animator, "interp": interp,
            "identity": {"backend": syn.identity, "threshold": syn.identity_threshold},
            "pivot": animator.pivot.tolist(),
            "motion": {"yaw_deg": script.yaw.tolist(), "pitch_deg": script.pitch.tolist()},
        },
    )

    totals = {"kept": 0, "dropped": 0}
    edits: dict[str, list] = {}
    sheet_images, sheet_labels = [source_image], ["source"]

    def write_clip(clip_id: str, category: str, label: str, code: int, image: np.ndarray, matte: np.ndarray):
        frames = animator.animate(image, matte, script)
        scores = identity.scores(frames.images, frames.landmarks)
        kept = identity.keep(scores)
        records = [Frame(i, frames.viewmats[i].tolist(), frames.expressions[i].tolist(), float(scores[i]), bool(kept[i]))
                   for i in range(len(scores))]
        writer.add_clip(Clip(clip_id, category, label, 1.0 if code else 0.0, code),
                        ((records[i], frames.images[i], frames.alphas[i]) for i in range(len(records))))
        step = max(1, len(records) // PREVIEW_FRAMES)
        picks = list(range(0, len(records), step))[:PREVIEW_FRAMES]
        preview = root / "previews" / f"{clip_id}.png"
        save_png(preview, contact_sheet([frames.images[i] for i in picks],
                                        [f"{records[i].identity:.2f}{'' if records[i].kept else ' x'}" for i in picks],
                                        columns=PREVIEW_FRAMES, tile=min(160, syn.size)))
        totals["kept"] += int(kept.sum())
        totals["dropped"] += int((~kept).sum())
        return int(kept.sum()), len(kept), preview

    cancel.check()
    kept, count, preview = write_clip(SOURCE, SOURCE, SOURCE, 0, source_image, portrait.matte)
    done += 1
    yield Progress("synth", done / units, f"source clip: kept {kept}/{count} frames", image=str(preview),
                   metrics={"clip": SOURCE, "kept": kept, "dropped": count - kept})
    for name, values in chosen.items():
        category = get_category(name)
        edits[name] = [None]
        for code, value in enumerate(values, start=1):
            cancel.check()
            result = editor.edit(portrait, category, value, 1.0)
            edits[name].append(result)
            sheet_images.append(result.image)
            sheet_labels.append(value.label)
            clip_id = f"{name}-{code}"
            kept, count, preview = write_clip(clip_id, name, value.label, code, result.image, result.matte)
            done += 1
            note = "" if kept >= count / 4 else " (identity drifted in most frames: check this edit)"
            yield Progress("synth", done / units, f"{name} = {value.label}: kept {kept}/{count} frames{note}",
                           image=str(preview), metrics={"clip": clip_id, "kept": kept, "dropped": count - kept})

    frontal = cam.head_pose_viewmat(portrait.fov_deg, 0.0, 0.0, 0.0, animator.pivot).tolist()
    neutral = [0.0] * len(EXPRESSION_NAMES)
    written = 0
    for name, values in chosen.items():
        category = get_category(name)
        options = [None] + list(values)
        for a, b in itertools.combinations(range(len(options)), 2):
            cancel.check()
            clip_a = SOURCE if a == 0 else f"{name}-{a}"
            clip_b = f"{name}-{b}"
            for t in ts:
                if interp == "exact":
                    target = editor.edit_between(portrait, category, options[a], options[b], t)
                    image, region, matte = target.image, target.region, target.matte
                else:
                    first = edits[name][a] if a else None
                    second = edits[name][b]
                    region = second.region if first is None else np.maximum(first.region, second.region)
                    target = morph(source_image if first is None else first.image, second.image,
                                   portrait.matte if first is None else first.matte, second.matte, region, t)
                    image, region, matte = target.image, target.region, target.matte
                pair = Pair(f"{name}-{a}-{b}-t{round(t * 1000):04d}", name, clip_a, clip_b, t, frontal, neutral)
                writer.add_pair(pair, _composite(image, matte, background), region)
                written += 1
                done += pair_cost
        yield Progress("synth", min(done / units, 0.99), f"{name}: interpolation targets written ({interp})")

    sheet = root / "edits.png"
    save_png(sheet, contact_sheet(sheet_images, sheet_labels, columns=min(6, len(sheet_images)),
                                  tile=min(256, syn.size)))
    writer.close()
    elapsed = time.perf_counter() - started
    total = totals["kept"] + totals["dropped"]
    yield Progress("synth", 1.0,
                   f"dataset written: {n_clips} clips, {written} pairs, kept {totals['kept']}/{total} frames "
                   f"(identity >= {syn.identity_threshold}) in {elapsed:.1f} s",
                   image=str(sheet), metrics={**totals, "clips": n_clips, "pairs": written, "seconds": elapsed})
