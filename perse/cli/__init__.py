"""`perse` command line. Each command group has its own module in this package (a `register(subparsers)`
function, listed below), so the CLI grows with the pipeline without one file knowing every flag; all of
them print progress through `perse.cli.progress`."""
from __future__ import annotations

import argparse
import importlib
import sys

from perse.config import PipelineConfig, build_config
from perse.core.io import WRITE_REFUSED, storage_error
from perse.errors import Cancelled, PerseError

COMMAND_MODULES: list[str] = [
    "perse.cli.ingest",
    "perse.cli.synth",
    "perse.cli.avatar",
    "perse.cli.commands",
    "perse.cli.batch",
    "perse.cli.drive",
]


def add_config_args(parser: argparse.ArgumentParser, default_preset: str = "fast") -> None:
    """The options every command that builds a PipelineConfig shares."""
    parser.add_argument("--preset", default=default_preset, help="tiny (CPU, 64 px) | fast | quality")
    parser.add_argument("--config", help="YAML or JSON file with config sections (ingest, synth, avatar, export)")
    parser.add_argument("--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. --override avatar.steps=500 (repeatable)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to compute (default: auto)")
    parser.add_argument("--seed", type=int, help="random seed for every stage")


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    overrides = list(args.override)
    if args.device:
        overrides.append(f"device={args.device}")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    return build_config(args.preset, args.config, overrides)


class UsageError(PerseError):
    """A malformed command line."""


class Parser(argparse.ArgumentParser):
    """Usage mistakes end like every other error: one line saying what is wrong and where help is.
    (argparse's own prints the whole usage block first.) Sub-command parsers inherit this class."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="perse", description="PERSE Studio: one portrait -> editable 3D head avatar")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args) or 0)
    except Cancelled as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return 130
    except PerseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A write outside the atomic helpers (a log line, an HTML page) refused by the storage.
        if exc.errno not in WRITE_REFUSED:
            raise
        print(f"error: {storage_error(exc.filename or 'a file', exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished results are kept, re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
