"""`perse ingest PHOTO --out RUN`: align a portrait and write its crop, landmarks, matte and masks."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from perse.cli import add_config_args

    parser = subparsers.add_parser(
        "ingest", help="align a portrait photo: crop, landmarks, head pose, matte and region masks",
        description="Writes RUN/portrait.png, portrait.json, matte.png, masks/*.png and debug.png (check it).")
    parser.add_argument("photo", help="a JPEG, PNG, WebP, BMP or TIFF photo with one clearly visible face")
    parser.add_argument("--out", required=True, metavar="RUN", help="run folder to write (created if missing)")
    add_config_args(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from perse.cli import config_from_args
    from perse.core.lock import run_lock
    from perse.ingest import ingest_to_run

    config = config_from_args(args)
    with run_lock(args.out, "perse ingest"):
        portrait = ingest_to_run(args.photo, args.out, config)
    pose = portrait.head_pose
    print(f"{Path(args.out) / 'portrait.png'}: {portrait.size}x{portrait.size} crop; head yaw {pose['yaw']:+.1f}, "
          f"pitch {pose['pitch']:+.1f}, roll {pose['roll']:+.1f} deg; check {Path(args.out) / 'debug.png'}")
    for note in portrait.warnings:
        print(f"warning: {note}")
    return 0
