"""Editing speed: every look and in-between that a preset's synthesis draws for one portrait, on threads.

Synthesis draws its looks and interpolation targets on one thread per core beside the animator
(perse.synth.run); at `fast` that is most of its CPU work. This bench draws the same jobs (each
category's looks, held-out ones included, then the in-betweens `interpolation_pairs` plans) with the
same editor on the same number of threads, without animating, so the editor's own speed and how well
its threads run together can be measured alone, plus the seconds of one thread per job kind.

    python bench/editing.py --run runs/me                    # an ingested run folder; fast preset
    python bench/editing.py --run runs/me --threads 16 --device cuda

Prints a table and writes bench/results/editing_<device>.json (the device named, the load average).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine_info import device_name, machine  # noqa: E402  (bench/, beside this script)


def jobs(config) -> list[tuple[str, str, object, object, float]]:
    """(kind, category, value a, value b, t) in synthesis's order: looks, then in-betweens."""
    from perse.synth.catalog import interpolation_pairs, sample_values

    syn = config.synth
    chosen = sample_values(syn.categories, syn.values + syn.holdout_looks, config.seed)
    looks = [("look", name, None, value, 1.0) for name, values in chosen.items() for value in values]
    between = [("between", name, ([None] + values)[a], ([None] + values)[b], t)
               for name, values in chosen.items() for a, b, t in interpolation_pairs(syn.values, syn.interp_ts)]
    return looks + between


def main() -> int:
    import torch

    from perse.config import build_config
    from perse.ingest.portrait import Portrait
    from perse.synth.catalog import category
    from perse.synth.edit import make_editor
    from perse.synth.run import cores, resize_portrait

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="an ingested run folder (perse ingest)")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=cores())
    parser.add_argument("--serial-every", type=int, default=9, help="time every Nth job alone on one thread")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    config = build_config(args.preset, overrides={"device": args.device})
    portrait = resize_portrait(Portrait.load(args.run), config.synth.size)
    editor = make_editor(config.synth.editor, config)
    work = jobs(config)

    def draw(job) -> float:
        kind, name, a, b, t = job
        start = time.perf_counter()
        editor.edit_between(portrait, category(name), a, b, t)
        return time.perf_counter() - start

    draw(next(job for job in work if job[1] == "hat"))  # warm-up: imports, the lifted head, CUDA kernels
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        seconds = list(pool.map(draw, work))
    wall = time.perf_counter() - start
    serial: dict[str, list[float]] = {}
    for job in work[::args.serial_every]:
        serial.setdefault(job[0], []).append(draw(job))
    per_category: dict[str, dict[str, float]] = {}
    for job, s in zip(work, seconds):
        row = per_category.setdefault(job[1], {"looks": 0, "between": 0, "thread_seconds": 0.0})
        row["looks" if job[0] == "look" else "between"] += 1
        row["thread_seconds"] += s
    print(f"{len(work)} jobs at {config.synth.size} px on {args.threads} threads ({device_name(args.device)}): "
          f"{wall:.1f} s")
    print(f"{'category':<10}{'looks':>7}{'between':>9}{'thread s':>10}")
    for name, row in per_category.items():
        print(f"{name:<10}{row['looks']:>7}{row['between']:>9}{row['thread_seconds']:>10.1f}")
    one = {kind: round(sum(v) / len(v), 3) for kind, v in serial.items()}
    print(f"one thread, seconds a job: {one}")
    result = {"bench": "editing", "preset": args.preset, "device": args.device, "device_name": device_name(args.device),
              "machine": machine(), "load_average_1min_before": round(load_before, 2),
              "date": time.strftime("%Y-%m-%d"), "size_px": config.synth.size, "jobs": len(work),
              "threads": args.threads, "wall_seconds": round(wall, 2),
              "thread_seconds": round(sum(seconds), 2), "one_thread_seconds_a_job": one,
              "categories": {k: {**v, "thread_seconds": round(v["thread_seconds"], 2)} for k, v in per_category.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"editing_{args.device}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
