"""Draft-avatar bench (issue 14: "a usable avatar within 15 s of Run on a GPU"): seconds from Run to the
draft avatar that the app opens, in a process warmed up as the app's is at start (perse.core.render.warm_up).

    python bench/draft.py --device cuda [--photos assets/a.jpg ...] [--runs runs/bench] [--override draft.steps=300]

Each portrait's run folder is ingested first where it is not yet (a machine without mediapipe, the GPU box,
starts from portraits ingested elsewhere: the ingest time is then not in the total, and the table says so).
The pipeline runs up to ingest with draft.enabled, which builds RUN/draft/ and reports it; a draft already
built is deleted first so that it is timed. Prints a table and writes bench/results/draft_<device>.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine_info import device_name, machine  # noqa: E402  (bench/, beside this script)

TARGET_SECONDS = 15.0


def bench_one(photo: Path, run_dir: Path, config) -> dict:
    from perse.core.paths import RunPaths
    from perse.pipeline import run

    shutil.rmtree(RunPaths(run_dir).draft, ignore_errors=True)
    ingested_before = False
    ingest = 0.0  # seconds to the last ingest event
    start = time.perf_counter()
    for event in run(photo, run_dir, config, until="ingest"):
        if event.stage == "ingest":
            ingested_before = ingested_before or event.message.endswith("up to date, skipped")
            ingest = 0.0 if ingested_before else time.perf_counter() - start
        if event.avatar:
            break
    total = time.perf_counter() - start
    log = [json.loads(line) for line in RunPaths(RunPaths(run_dir).draft).train_log.read_text().splitlines()]
    train = log[-1]["elapsed"]
    return {"portrait": photo.name, "seconds_to_draft": round(total, 2),
            "ingest_seconds": None if ingested_before else round(ingest, 2),
            # Everything but ingest and the training loop: synthesis, loading its dataset, writing the avatar.
            "synth_seconds": round(total - ingest - train, 2),
            "train_steps": log[-1]["step"], "train_seconds": round(train, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--photos", nargs="*", type=Path, default=sorted((ROOT / "assets").glob("*.[jp][pn]g")))
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench", help="folder of run folders")
    parser.add_argument("--override", action="append", default=[], help="config KEY=VALUE, e.g. draft.steps=300")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from perse.config import build_config
    from perse.core.render import warm_up

    config = build_config("fast", overrides=[f"device={args.device}", "draft.enabled=true", *args.override])
    device = config.resolved_device()
    warm_up_seconds = warm_up()
    results = [bench_one(photo, args.runs / photo.stem, config) for photo in args.photos]
    print(f"\nPERSE Studio draft avatar (fast preset's draft settings), {device_name(device)}")
    print(f"{'portrait':<18}{'ingest':>8}{'synth+':>8}{'train':>8}{'steps':>7}{'to draft':>10}")
    print(f"{'goal':<18}{'':>31}{'<=' + format(TARGET_SECONDS, 'g'):>10}")
    for r in results:
        ingest = "before" if r["ingest_seconds"] is None else f"{r['ingest_seconds']:.2f}"
        print(f"{r['portrait']:<18}{ingest:>8}{r['synth_seconds']:>8.2f}{r['train_seconds']:>8.2f}{r['train_steps']:>7}"
              f"{r['seconds_to_draft']:>10.2f}")
    out = args.out or ROOT / "bench" / "results" / f"draft_{'cpu' if device == 'cpu' else 'cuda'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "bench": "draft", "device": device_name(device), "machine": machine(), "date": time.strftime("%Y-%m-%d"),
        "draft": config.to_dict()["draft"], "warm_up_seconds": warm_up_seconds, "target_seconds": TARGET_SECONDS,
        "meets_target": all(r["seconds_to_draft"] <= TARGET_SECONDS for r in results), "results": results,
    }, indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
