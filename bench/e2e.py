"""End-to-end bench: per-stage and total wall time, peak memory and the report's metrics for every portrait.

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
    times[stage] = time.perf_counter() - stage_start
    total = time.perf_counter() - start
    report = json.loads((run / "report.json").read_text())
    result = {
        "portrait": photo.name,
        "seconds": {k: round(v, 2) for k, v in times.items()},
        "total_seconds": round(total, 2),
        "reused_stages": skipped,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "reconstruction": report["reconstruction"],
        "identity": {k: report["identity"][k] for k in ("backend", "mean", "threshold")},
        "interpolation": {"distance": report["interpolation"]["distance"], **report["interpolation"]["mean"],
                          "targets": report["interpolation"]["targets"]},
        "gaussians": report["gaussians"],
        "image_size": report["image_size"],
    }
    if torch.cuda.is_available():
        result["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def fresh_seconds(result: dict) -> float:
    """Wall time of the stages this run computed (reused ones were measured elsewhere)."""
    return result["total_seconds"] - sum(result["seconds"].get(k, 0.0) for k in result["reused_stages"])


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
            "target_total_seconds": target,
            "meets_target": all(fresh_seconds(r) <= target for r in results) if target else None,
            "results": results,
        }, indent=1))

    print(f"\nPERSE Studio end-to-end, preset {args.preset}, {device_name(device)}")
    header = f"{'portrait':<18}{'ingest':>8}{'synth':>8}{'train':>8}{'export':>8}{'metrics':>8}{'total':>8}" \
             f"{'PSNR':>7}{'SSIM':>7}{'ident':>7}{'PPL':>7}"
    print(header)
    print("-" * len(header))
    for r in results:
        s = r["seconds"]
        print(f"{r['portrait']:<18}" + "".join(f"{s.get(k, float('nan')):>8.1f}" for k in
                                               ("ingest", "synth", "train", "export", "metrics"))
              + f"{r['total_seconds']:>8.1f}{r['reconstruction'].get('psnr', float('nan')):>7.2f}"
              f"{r['reconstruction'].get('ssim', float('nan')):>7.3f}"
              f"{r['identity']['mean']:>7.3f}{r['interpolation'].get('ppl', float('nan')):>7.3f}")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
