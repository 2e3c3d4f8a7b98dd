"""End-to-end bench: per-stage and total wall time, peak memory and the report's metrics for every portrait.

Beside the timings and the classic metrics, the table shows the measures of the faults a visitor sees
(ghost pixels, holes at yaw +-35, held-out looks, identity at +-35, the weakest expression control), with
their goals in the row under the header, and how many of the report's goals each portrait meets.

    python bench/e2e.py --preset fast --device cuda            # on the GPU machine
    python bench/e2e.py --preset tiny --device cpu             # on a CPU

Stages that are already complete in a run folder (same photo, same config) are skipped by the pipeline,
listed under "reused_stages" and left out of the target check; `--runs` lets a machine without
mediapipe (the GPU box) start from portraits ingested elsewhere. Writes bench/results/e2e_<preset>.json.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from math import nan
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine_info import device_name  # noqa: E402  (bench/, beside this script)

TARGET_SECONDS = {"tiny": 90.0, "fast": 120.0, "quality": 600.0}


def bench_one(photo: Path, run: Path, config) -> dict:
    import torch

    from perse.pipeline import run as run_pipeline

    times: dict[str, float] = {}
    skipped: list[str] = []
    first_avatar = None
    # The synth stage's seconds per phase; phases run on threads sum their time, so can exceed the wall.
    synth_phases = None
    stage, stage_start = None, time.perf_counter()
    start = stage_start
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    for event in run_pipeline(photo, run, config):
        if event.stage != stage:
            now = time.perf_counter()
            if stage is not None:
                times[stage] = now - stage_start
            stage, stage_start = event.stage, now
        if event.message.endswith("up to date, skipped"):
            skipped.append(event.stage)
        if event.avatar and first_avatar is None:
            first_avatar = time.perf_counter() - start
        if event.stage == "synth" and event.metrics.get("phases"):
            synth_phases = event.metrics["phases"]
    times[stage] = time.perf_counter() - stage_start
    total = time.perf_counter() - start
    report = json.loads((run / "report.json").read_text())
    result = {
        "portrait": photo.name,
        "seconds": {k: round(v, 2) for k, v in times.items()},
        "total_seconds": round(total, 2),
        # From Run to the first avatar one can open (the draft's, with draft.enabled): issue 14's "within 15 s".
        "first_avatar_seconds": round(first_avatar, 2) if first_avatar is not None else None,
        "reused_stages": skipped,
        "synth_phases": synth_phases,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "reconstruction": report["reconstruction"],
        "identity": {k: report["identity"][k] for k in ("backend", "mean", "min", "threshold", "yaw-35", "yaw+35")},
        "interpolation": {"distance": report["interpolation"]["distance"], **report["interpolation"]["mean"],
                          "targets": report["interpolation"]["targets"]},
        "ghost": {k: report["ghost"][k] for k in ("share", "sets", "worst")},
        "holes": {k: v for k, v in report["holes"].items() if k.startswith("yaw") or k == "share"},
        "held_out_looks": {k: report["held_out_looks"][k] for k in ("looks", "psnr", "psnr_source_code", "categories")
                           if k in report["held_out_looks"]},
        "expressions": report["expressions"]["grey_levels"],
        "goals": {g["measure"]: {"value": g["value"], "goal": g["goal"], "met": g["met"]} for g in report["goals"]},
        "gaussians": report["gaussians"],
        "image_size": report["image_size"],
    }
    if torch.cuda.is_available():
        result["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def fresh_seconds(result: dict) -> float:
    """Wall time of the stages this run computed (reused ones were measured elsewhere)."""
    return result["total_seconds"] - sum(result["seconds"].get(k, 0.0) for k in result["reused_stages"])


# The issue-10 measures beside the timings: (column, width, value from a result, format, goal shown).
FAULT_COLUMNS = (
    ("ghost%", 8, lambda r: 100 * r["ghost"]["share"], ".2f", "<=0.5"),
    ("holes%", 8, lambda r: 100 * r["holes"]["share"], ".2f", "<=0.2"),
    ("heldout", 8, lambda r: r["held_out_looks"].get("psnr", nan), ".2f", ">=26"),
    ("id35", 7, lambda r: min(r["identity"]["yaw-35"], r["identity"]["yaw+35"]), ".3f", ">=thr"),
    ("expr", 7, lambda r: min(r["expressions"].values(), default=nan), ".1f", ">=5"),
)
STAGES = ("ingest", "draft", "synth", "train", "export", "metrics")


def print_table(results: list[dict], target: float | None) -> None:
    """Seconds per stage, the classic metrics and the fault measures, a goal row under the header."""
    header = (f"{'portrait':<18}" + "".join(f"{k:>8}" for k in (*STAGES, "total", "1stavtr"))
              + f"{'PSNR':>7}{'SSIM':>7}{'ident':>7}{'PPL':>7}" + "".join(f"{c:>{w}}" for c, w, *_ in FAULT_COLUMNS)
              + f"{'goals':>7}")
    goal = (f"{'goal':<18}" + " " * 8 * len(STAGES) + (f"{'<=' + format(target, 'g'):>8}" if target else " " * 8)
            + f"{'<=15':>8}" + " " * 28 + "".join(f"{g:>{w}}" for _, w, _, _, g in FAULT_COLUMNS))
    print(header)
    print(goal)
    print("-" * len(header))
    for r in results:
        s = r["seconds"]
        met = f"{sum(g['met'] for g in r['goals'].values())}/{len(r['goals'])}"
        print(f"{r['portrait']:<18}" + "".join(f"{s.get(k, nan):>8.1f}" for k in STAGES)
              + f"{r['total_seconds']:>8.1f}{r['first_avatar_seconds'] or nan:>8.1f}"
              f"{r['reconstruction'].get('psnr', nan):>7.2f}"
              f"{r['reconstruction'].get('ssim', nan):>7.3f}"
              f"{r['identity']['mean']:>7.3f}{r['interpolation'].get('ppl', nan):>7.3f}"
              + "".join(f"{value(r):>{w}{fmt}}" for _, w, value, fmt, _ in FAULT_COLUMNS)
              + f"{met:>7}")


def main() -> int:
    from perse.config import build_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--photos", nargs="*", type=Path,
                        default=sorted((ROOT / "assets").glob("*.[jp][pn]g")))
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench", help="folder of run folders")
    parser.add_argument("--override", action="append", default=[])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    config = build_config(args.preset, overrides=[f"device={args.device}", *args.override])
    device = config.resolved_device()
    target = TARGET_SECONDS.get(args.preset)
    out = args.out or ROOT / "bench" / "results" / f"e2e_{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    # As the app does at start (app.py), so the first portrait does not pay for loading the renderer.
    from perse.core.render import warm_up

    warm_up_seconds = warm_up()
    results = []
    for photo in args.photos:
        results.append(bench_one(photo, args.runs / photo.stem, config))
        print(json.dumps(results[-1]), flush=True)
        # Written after every portrait so a run cut short still leaves its measurements.
        out.write_text(json.dumps({
            "bench": "e2e",
            "preset": args.preset,
            "overrides": args.override,
            "device": device_name(device),
            "date": time.strftime("%Y-%m-%d"),
            "warm_up_seconds": warm_up_seconds,
            "target_total_seconds": target,
            "meets_target": all(fresh_seconds(r) <= target for r in results) if target else None,
            "results": results,
        }, indent=1))

    print(f"\nPERSE Studio end-to-end, preset {args.preset}, {device_name(device)}")
    print_table(results, target)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
