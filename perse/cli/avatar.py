"""`perse train RUN [--resume]`: train the avatar of a run folder whose dataset is complete."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from perse.cli import add_config_args

    parser = subparsers.add_parser(
        "train", help="train the latent Gaussian avatar from RUN/dataset (checkpointed, resumable)",
        description="Writes RUN/avatar/checkpoint.pt, config.json, holdout.json, previews/ and avatar.ply. "
                    "Ctrl-C or SIGTERM saves a checkpoint; --resume continues from it.")
    parser.add_argument("run", metavar="RUN", help="run folder holding dataset/meta.json (from `perse synth`)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN/avatar/checkpoint.pt")
    add_config_args(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from perse.avatar.train import train
    from perse.cli import config_from_args
    from perse.cli.progress import ProgressPrinter, stop_on_ctrl_c
    from perse.core.lock import run_lock

    config = config_from_args(args)
    # Ctrl-C asks the trainer to stop after its current step; it saves a checkpoint and raises Cancelled,
    # whose message says how to resume.
    with run_lock(args.run, "perse train", create=False), stop_on_ctrl_c() as cancel:
        ProgressPrinter().show(train(args.run, config, cancel=cancel, resume=args.resume))
    return 0
