"""`perse synth RUN`: write the synthetic attribute dataset of an ingested run."""
from __future__ import annotations

import argparse

from perse.core.paths import RunPaths


def register(subparsers: argparse._SubParsersAction) -> None:
    from perse.cli import add_config_args

    parser = subparsers.add_parser("synth", help="edit, animate and identity-filter the portrait into a dataset",
                                   description="Write RUN/dataset from RUN/portrait.* (run `perse ingest` first).")
    parser.add_argument("run", help="run folder holding portrait.png/portrait.json")
    parser.add_argument("--categories", help="comma-separated attribute categories, e.g. hair,glasses,beard "
                                             "(default: the preset's)")
    parser.add_argument("--values", type=int, help="values per category (default: the preset's)")
    parser.add_argument("--frames", type=int, help="frames per clip (default: the preset's)")
    parser.add_argument("--size", type=int, help="image size of the dataset in pixels (default: the preset's)")
    parser.add_argument("--force", action="store_true", help="regenerate even if a complete dataset exists")
    add_config_args(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from perse.cli import config_from_args
    from perse.cli.progress import ProgressPrinter, stop_on_ctrl_c
    from perse.core.lock import run_lock
    from perse.synth import run_synth

    for flag, key in (("categories", "synth.categories"), ("values", "synth.values"), ("frames", "synth.frames"),
                      ("size", "synth.size")):
        value = getattr(args, flag)
        if value is not None:
            args.override.append(f"{key}={value}")
    config = config_from_args(args)
    with run_lock(args.run, "perse synth", create=False):
        if args.force:
            RunPaths(args.run).dataset_meta.unlink(missing_ok=True)
        with stop_on_ctrl_c() as cancel:
            ProgressPrinter().show(run_synth(args.run, config, cancel=cancel))
    return 0
