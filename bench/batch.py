"""Batch throughput: portraits per hour for N portraits run by `perse.batch.run_batch` on one worker and
on every worker of the machine (one GPU each, or `--cpus-per-portrait` cores each on CPU).

    python bench/batch.py --device cuda --preset fast --portraits 8        # a multi-GPU machine: 1 vs all GPUs
    python bench/batch.py --device cpu --preset tiny --portraits 4 --cpus-per-portrait 1   # CPU workers

Target (issue 14): on a 2-GPU machine, 2 GPUs give >= 1.8x the throughput of one. That measurement has
not been made yet: no multi-GPU machine was lent in the session that wrote this bench, so
bench/results/batch.json holds only the CPU measurement (tiny, 1 vs 2 single-core workers) until this
script is run on one. Every count starts from empty run folders, so nothing is skipped or resumed; the
wall time includes starting Ray and its workers, as a user sees it. The portraits are the four shared
test photos, repeated (as copies under other names) when more are asked for.

Writes bench/results/batch.json: one measurement per preset and device kind, merged into the file.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine_info import device_name, machine  # noqa: E402  (bench/, beside this script)

TARGET_SPEEDUP = 1.8  # 2 workers vs 1, issue 14
GPU_NOT_MEASURED = ("not measured yet: the session that wrote this bench had no multi-GPU machine; run "
                    "`python bench/batch.py --device cuda --preset fast --portraits 8` on one")


def photos(count: int, folder: Path) -> list[Path]:
    found = sorted(p for p in (ROOT / "assets").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    chosen = []
    for i in range(count):
        source = found[i % len(found)]
        copy = folder / f"{source.stem}_{i}{source.suffix}"
        shutil.copyfile(source, copy)
        chosen.append(copy)
    return chosen


def measure(portraits: list[Path], out: Path, config, workers: int, cpus: int | None) -> dict:
    from perse.batch import run_batch

    # Other programs' load decides what a CPU comparison on a shared machine can show: kept per count.
    load_before = round(os.getloadavg()[0], 2)
    start = time.perf_counter()
    rows = run_batch(portraits, out, config, workers=workers, cpus_per_portrait=cpus)
    wall = time.perf_counter() - start
    done = sum(row.state == "done" for row in rows)
    return {"workers": workers, "portraits": len(rows), "done": done,
            "load_average_1min": [load_before, round(os.getloadavg()[0], 2)],
            "not_done": [f"{row.name}: {row.message.splitlines()[0]}" for row in rows if row.state != "done"],
            "wall_s": round(wall, 1), "portraits_per_hour": round(3600 * done / wall, 1),
            "mean_portrait_s": round(sum(row.seconds or 0 for row in rows) / max(1, len(rows)), 1)}


def main() -> int:
    from perse.config import build_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--portraits", type=int, default=4)
    parser.add_argument("--workers", type=int, help="the 'all' count (default: every GPU, or cores // cpus)")
    parser.add_argument("--cpus-per-portrait", type=int)
    parser.add_argument("--override", action="append", default=[])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "batch.json")
    parser.add_argument("--note", default="", help="what the numbers alone do not say (stored with them)")
    args = parser.parse_args()

    config = build_config(args.preset, overrides=[f"device={args.device}", *args.override])
    if args.workers:
        most = args.workers
    elif args.device == "cuda":
        import torch

        most = torch.cuda.device_count()
    else:
        most = len(os.sched_getaffinity(0)) // (args.cpus_per_portrait or 2)
    counts = sorted({1, max(1, most)})
    results = []
    with tempfile.TemporaryDirectory(prefix="perse-bench-batch-") as tmp:
        portraits = photos(args.portraits, Path(tmp))
        for workers in counts:
            results.append(measure(portraits, Path(tmp) / f"out_{workers}", config, workers, args.cpus_per_portrait))
            print(json.dumps(results[-1]), flush=True)
    speedup = results[-1]["portraits_per_hour"] / results[0]["portraits_per_hour"] if len(results) > 1 else None

    kind = f"{args.preset}-{args.device}"
    entry = {"preset": args.preset, "device": device_name(args.device), "machine": machine(),
             "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "overrides": args.override,
             "cpus_per_portrait": args.cpus_per_portrait, "note": args.note, "results": results,
             f"speedup_{counts[-1]}_vs_1": round(speedup, 2) if speedup else None}
    if args.device == "cuda" and counts[-1] == 2:
        entry["meets_target"] = speedup is not None and speedup >= TARGET_SPEEDUP
    try:
        previous = json.loads(args.out.read_text())
    except (OSError, ValueError):
        previous = {}
    measurements = {**previous.get("measurements", {}), kind: entry}
    gpu_measured = any(key.endswith("-cuda") for key in measurements)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "bench": "batch",
        "target": f"2 GPUs >= {TARGET_SPEEDUP}x the throughput (portraits/hour) of one GPU",
        "gpu_target_status": "see the -cuda measurement" if gpu_measured else GPU_NOT_MEASURED,
        "measurements": measurements}, indent=1))

    print(f"\nPERSE Studio batch throughput, preset {args.preset}, {device_name(args.device)}, "
          f"{args.portraits} portraits")
    print(f"{'workers':>8} {'done':>5} {'wall s':>8} {'portraits/h':>12} {'mean s/portrait':>16}")
    for r in results:
        print(f"{r['workers']:>8} {r['done']:>5} {r['wall_s']:>8.1f} {r['portraits_per_hour']:>12.1f} "
              f"{r['mean_portrait_s']:>16.1f}")
    if speedup:
        print(f"speedup {counts[-1]} vs 1: {speedup:.2f}x")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
