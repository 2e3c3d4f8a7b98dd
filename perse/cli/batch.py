"""`perse batch PHOTOS... --out DIR`: every photo's pipeline on Ray, with a summary of their measures."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    from perse.cli import add_config_args

    parser = subparsers.add_parser(
        "batch", help="many photos -> one run folder each under DIR, on Ray (resumable), with a summary",
        description="Runs every photo's pipeline into DIR/<photo stem>/ (one GPU per portrait, or CPU cores "
                    "for --preset tiny and --device cpu), skips finished portraits, resumes interrupted "
                    "ones and writes DIR/summary.csv, summary.json and summary.html. See docs/batch.md.")
    parser.add_argument("photos", nargs="+", type=Path, metavar="PHOTO", help="portrait photos (e.g. photos/*.jpg)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="batch folder (re-running resumes it)")
    parser.add_argument("--address", help="join a running Ray cluster (e.g. ray://head:10001 or auto); its "
                                          "nodes must see the photos and DIR at the same paths")
    parser.add_argument("--workers", type=int, help="portraits at a time (default: every GPU, or every "
                                                    "--cpus-per-portrait cores, of the cluster)")
    parser.add_argument("--cpus-per-portrait", type=int,
                        help="CPU cores per portrait (CPU runs: default 2; GPU runs: default 1)")
    add_config_args(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from perse.batch import run_batch
    from perse.cli import config_from_args
    from perse.cli.progress import ProgressPrinter, stop_on_ctrl_c

    config = config_from_args(args)
    printer = ProgressPrinter()
    with stop_on_ctrl_c() as cancel:
        try:
            rows = run_batch(args.photos, args.out, config, address=args.address, workers=args.workers,
                             cpus_per_portrait=args.cpus_per_portrait, progress=printer, cancel=cancel)
        finally:
            printer.close()
    width = max(len(row.name) for row in rows)
    for row in rows:
        detail = f"goals met {row.goals_met}" if row.goals_met else (row.message.splitlines() or [""])[0]
        print(f"{row.name:<{width}}  {row.state:<9}  {detail}")
    print(f"summary: {args.out / 'summary.html'}, summary.csv, summary.json")
    if any(row.state == "cancelled" for row in rows):
        print("stopped; re-run the same command to resume", flush=True)
        return 130
    return 1 if any(row.state == "failed" for row in rows) else 0
