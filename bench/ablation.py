"""Train one run's dataset again under other settings and compare the report's measures side by side.

    python bench/ablation.py runs/me --variant f64:avatar.feature_dim=64 --variant long:avatar.steps=6000

Each variant copies the run's portrait and dataset into its own folder under --work, trains with the
run's config plus the variant's overrides, and writes the report (no export); the run itself is
untouched. A variant named `base` with no overrides (`--variant base:`) retrains the run's own config,
so timings compare on the same machine in the same call. Prints one row per variant and writes
bench/results/ablation_<run>.json with every variant's full report.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine_info import device_name  # noqa: E402  (bench/, beside this script)

# What the table shows: (column, path into report.json).
COLUMNS = (
    ("person dB", ("reconstruction", "psnr_person")),
    ("held-out looks dB", ("held_out_looks", "psnr")),
    ("pair targets dB", ("interpolation", "targets", "psnr_in_region")),
    ("ghost samples %", ("ghost", "sets", "samples")),
    ("ghost interp %", ("ghost", "sets", "interpolation")),
    ("holes %", ("holes", "share")),
    ("identity min", ("identity", "min")),
    ("weakest expression", ("expressions", "min")),
)


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, overrides = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"variant {text!r}: write NAME:section.key=value,... (NAME: alone for none)")
    return name, [item for item in overrides.split(",") if item]


def run_variant(run: Path, folder: Path, overrides: list[str], device: str | None) -> dict:
    import torch

    from perse.avatar.train import train
    from perse.config import config_from_dict, set_value
    from perse.core.paths import RunPaths
    from perse.metrics.report import write_report

    config = config_from_dict(json.loads(RunPaths(run).config.read_text()))
    for item in overrides:
        key, _, value = item.partition("=")
        set_value(config, key, value)
    if device:
        config.device = device
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("avatar", "renders", "report*", ".*"))
    start = time.perf_counter()
    for _ in train(folder, config):
        pass
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in write_report(folder, config):
        pass
    return {"overrides": overrides, "train_s": round(train_s, 2), "metrics_s": round(time.perf_counter() - start, 2),
            "report": json.loads(RunPaths(folder).report.read_text())}


def main() -> int:
    from perse.metrics import report_value

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder with a finished dataset (and config.json)")
    parser.add_argument("--variant", type=parse_variant, action="append", required=True,
                        help="NAME:section.key=value,... (repeatable)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--work", type=Path, default=None, help="where the variants' folders go (default: temp)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="perse-ablation-"))
    results = {}
    for name, overrides in args.variant:
        results[name] = run_variant(args.run, work / name, overrides, args.device)
        print(f"{name}: trained in {results[name]['train_s']:.1f} s, measured in {results[name]['metrics_s']:.1f} s",
              flush=True)
    header = f"{'variant':<14}{'train s':>9}" + "".join(f"{title:>19}" for title, _ in COLUMNS)
    print(header)
    for name, result in results.items():
        cells = []
        for title, path in COLUMNS:
            value = report_value(result["report"], path)
            scale = 100 if title.endswith("%") else 1
            cells.append(f"{'-' if value is None else f'{value * scale:.2f}':>19}")
        print(f"{name:<14}{result['train_s']:>9.1f}" + "".join(cells))
        looks = report_value(result["report"], ("held_out_looks", "categories")) or {}
        print(" " * 14 + "  held-out looks by category: "
              + ", ".join(f"{k} {v:.1f}" for k, v in looks.items() if isinstance(v, (int, float))))
        controls = report_value(result["report"], ("expressions", "grey_levels")) or {}
        print(" " * 14 + "  expression visibility (grey levels): "
              + ", ".join(f"{k} {v:.1f}" for k, v in controls.items()))
    device = args.device or ("cuda" if __import__("torch").cuda.is_available() else "cpu")
    out = args.out or ROOT / "bench" / "results" / f"ablation_{args.run.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"bench": "ablation", "run": args.run.name, "device": device_name(device),
                               "variants": results}, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
