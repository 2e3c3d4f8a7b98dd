"""`perse drive RUN VIDEO -o out.mp4`: a face video drives the trained avatar (docs/drive.md)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    from perse.cli import add_config_args

    parser = subparsers.add_parser(
        "drive", help="drive the avatar with a face video: its expressions and head motion, at any look",
        description="Tracks the face in VIDEO (mp4, mov, webm or gif), measures every frame against a calm "
                    "frontal frame of the video itself, and renders the avatar performing it into an MP4 or GIF. "
                    "Limits and estimators: the drive section of the config (--override drive.max_seconds=300).")
    parser.add_argument("run", type=Path, metavar="RUN", help="a run folder with a trained avatar")
    parser.add_argument("video", type=Path, metavar="VIDEO", help="the driving clip: .mp4, .mov, .webm or .gif")
    parser.add_argument("-o", "--output", type=Path, required=True, help=".mp4 (H.264) or .gif")
    parser.add_argument("--set", default="", metavar="CAT=POS,...",
                        help="the look: slider positions or value labels per category, e.g. hair=2,glasses=1")
    parser.add_argument("--side-by-side", action="store_true", help="put the driving video left of the avatar")
    parser.add_argument("--keep-audio", action="store_true", help="copy the video's sound into the MP4")
    parser.add_argument("--neutral", type=int, metavar="FRAME",
                        help="the frame (from 0) showing the resting face everything is measured from "
                             "(default: a calm frontal frame found in the video)")
    parser.add_argument("--size", type=int, help="render size in pixels (default: drive.size, else the avatar's)")
    add_config_args(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from perse.avatar.avatar import MAX_RENDER_SIZE, Avatar
    from perse.cli import config_from_args
    from perse.cli.commands import _latent, _whole
    from perse.cli.progress import ProgressPrinter, stop_on_ctrl_c
    from perse.drive import drive
    from perse.drive.run import check_output
    from perse.drive.track import start_tracking
    from perse.drive.video import probe

    check_output(args.output)
    _whole("--size", args.size, 1, MAX_RENDER_SIZE)
    _whole("--neutral", args.neutral, 0, 2**31 - 1)
    config = config_from_args(args)
    # A bad clip is refused before the avatar loads, and the tracking workers start while it does.
    start_tracking(config.drive, probe(args.video, config.drive.max_seconds).expected_frames)
    avatar = Avatar.load(args.run, device=config.resolved_device())
    look = _latent(avatar, args.set)
    printer = ProgressPrinter()
    with stop_on_ctrl_c() as cancel:
        events = list(_shown(printer, drive(avatar, args.video, args.output, look, config=config, neutral=args.neutral,
                                            side_by_side=args.side_by_side, keep_audio=args.keep_audio,
                                            size=args.size, cancel=cancel)))
    metrics = events[-1].metrics
    print(f"{args.output}  ({metrics['frames']} frames at {metrics['fps']:g} fps, neutral frame {metrics['neutral_frame']})")
    for note in metrics["notes"]:
        print(f"note: {note}")
    return 0


def _shown(printer, events):
    """Pass the events on after printing each (the last one carries the numbers)."""
    try:
        for event in events:
            printer(event)
            yield event
    finally:
        printer.close()
