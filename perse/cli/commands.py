"""The user's commands on a whole run: `perse run`, and `render`, `interp`, `sample`, `export` on a
trained avatar."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from perse.cli import add_config_args, config_from_args
from perse.errors import PerseError

# Every frame of a clip, and every tile of a sample sheet, is held in memory before it is written.
MAX_FRAMES = 1000
MAX_SAMPLES = 64
MAX_FPS = 120  # as export.fps in perse.config
MAX_SEED = 2**32 - 1  # the seed range of perse.config (every generator accepts it)


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="photo -> dataset -> avatar -> renders and report (resumable)")
    run.add_argument("photo", type=Path)
    run.add_argument("--out", type=Path, required=True, help="run folder (re-running resumes it)")
    add_config_args(run)
    run.set_defaults(handler=_run)

    render = subparsers.add_parser("render", help="render the avatar with chosen attributes, pose and expression")
    _avatar_args(render)
    render.add_argument("--set", default="", metavar="CAT=POS,...",
                        help="slider positions per category: hair=0.7 blends codes 0 and 1; a value label also "
                             "works (hair=blonde)")
    render.add_argument("--yaw", type=float, default=0.0, help="degrees; positive turns the face to the image's left")
    render.add_argument("--pitch", type=float, default=0.0, help="degrees; positive tilts the chin down")
    render.add_argument("--expr", default="", metavar="NAME=V,...", help="e.g. smile=0.5,jaw_open=0.3")
    render.add_argument("--sample", type=int, metavar="SEED", help="start from a random look drawn from the prior")
    render.add_argument("-o", "--output", type=Path, required=True, help=".png")
    render.set_defaults(handler=_render)

    interp = subparsers.add_parser("interp", help="GIF/MP4 of one category moving between two slider positions")
    _avatar_args(interp)
    interp.add_argument("--category", required=True)
    interp.add_argument("--from", dest="start", default="0", help="slider position or value label")
    interp.add_argument("--to", dest="end", required=True, help="slider position or value label")
    interp.add_argument("--frames", type=int, default=24)
    interp.add_argument("--yaw", type=float, default=0.0)
    interp.add_argument("--fps", type=int, default=24)
    interp.add_argument("-o", "--output", type=Path, required=True, help=".gif or .mp4")
    interp.set_defaults(handler=_interp)

    sample = subparsers.add_parser("sample", help="a grid of random values of one category (or all)")
    _avatar_args(sample)
    sample.add_argument("--category", help="category to sample (default: every category)")
    sample.add_argument("-n", type=int, default=6, help="number of samples")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("-o", "--output", type=Path, required=True, help=".png")
    sample.set_defaults(handler=_sample)

    export = subparsers.add_parser("export", help="the avatar as a 3DGS .ply or .splat (any attribute setting), "
                                                  "or as a web page that edits it live (--web)")
    _avatar_args(export)
    export.add_argument("--ply", type=Path, help="standard 3DGS .ply")
    export.add_argument("--splat", type=Path, help=".splat (32 bytes a Gaussian, antimatter15's format)")
    export.add_argument("--web", type=Path, metavar="DIR",
                        help="folder for index.html + the avatar's bundle: sliders, orbit and expressions run in "
                             "the browser (serve it with any static server); --set/--expr/--max-gaussians do not apply")
    export.add_argument("--set", default="", metavar="CAT=POS,...")
    export.add_argument("--expr", default="", metavar="NAME=V,...")
    export.add_argument("--max-gaussians", type=int, help="keep only the most opaque ones (for web viewers)")
    export.set_defaults(handler=_export)


def _avatar_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="a run folder with a trained avatar")
    parser.add_argument("--size", type=int, help="output size in pixels (default: the training size)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: CUDA when available")


def _whole(flag: str, value: int | None, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise PerseError(f"{flag} must be a whole number in [{low}, {high}], got {value}")


def _output(path: Path, suffixes: tuple[str, ...], flag: str) -> None:
    """Refuse an output path that cannot be written as asked before any work is done."""
    wanted = " or ".join(suffixes)
    if path.is_dir():
        example = path / f"out{suffixes[0]}"
        raise PerseError(f"{flag} {path} is a folder; give a file name ending in {wanted}, e.g. {example}")
    if path.suffix.lower() not in suffixes:
        raise PerseError(f"{flag} {path}: the file name must end in {wanted}")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise PerseError(f"{flag} {path}: {parent} {what}; create the folder first or choose another path")


def _pairs(text: str, what: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" not in item:
            raise PerseError(f"{what} '{item}' must look like name=value (e.g. hair=0.7)")
        name, value = item.split("=", 1)
        pairs[name.strip()] = value.strip()
    return pairs


def _position(avatar, category: str, value: str) -> float:
    """A slider position from a number or a value label of the category."""
    avatar.code(category, 0)  # unknown category -> its clear message
    values = avatar.categories[category]
    if value in values:
        return float(values.index(value))
    try:
        return float(value)
    except ValueError:
        raise PerseError(f"'{value}' is neither a slider position (0..{len(values) - 1}) nor a value of "
                         f"'{category}' ({', '.join(values)})") from None


def _latent(avatar, settings: str, base=None):
    latent = avatar.latent(base)
    for category, value in _pairs(settings, "--set").items():
        latent = avatar.with_code(latent, category, avatar.slider_code(category, _position(avatar, category, value)))
    return latent


def _expression(text: str) -> dict[str, float]:
    try:
        return {name: float(value) for name, value in _pairs(text, "--expr").items()}
    except ValueError as exc:
        raise PerseError(f"--expr values must be numbers: {exc}") from None


def _load(args):
    from perse.avatar.avatar import MAX_RENDER_SIZE, Avatar

    _whole("--size", args.size, 1, MAX_RENDER_SIZE)
    return Avatar.load(args.run, device=args.device)


def _run(args) -> int:
    from perse.cli.progress import ProgressPrinter, stop_on_ctrl_c
    from perse.pipeline import run

    config = config_from_args(args)
    start = time.perf_counter()
    with stop_on_ctrl_c() as cancel:
        ProgressPrinter().show(run(args.photo, args.out, config, cancel=cancel))
    print(f"done in {time.perf_counter() - start:.1f} s: {args.out}/report.html, {args.out}/renders/, "
          f"{args.out}/avatar/avatar.ply")
    return 0


def _render(args) -> int:
    from perse.core.io import save_png

    _output(args.output, (".png",), "-o")
    _whole("--sample", args.sample, 0, MAX_SEED)
    avatar = _load(args)
    base = avatar.sample(seed=args.sample) if args.sample is not None else None
    image = avatar.render(_latent(avatar, args.set, base), yaw=args.yaw, pitch=args.pitch,
                          expression=_expression(args.expr), size=args.size)
    save_png(args.output, image)
    print(args.output)
    return 0


def _interp(args) -> int:
    from perse.export.video import interpolation_frames, write_video

    _output(args.output, (".gif", ".mp4"), "-o")
    _whole("--frames", args.frames, 1, MAX_FRAMES)
    _whole("--fps", args.fps, 1, MAX_FPS)
    avatar = _load(args)
    a = avatar.slider_code(args.category, _position(avatar, args.category, args.start))
    b = avatar.slider_code(args.category, _position(avatar, args.category, args.end))
    frames = interpolation_frames(avatar, args.category, a, b, frames=args.frames, yaw=args.yaw, size=args.size)
    print(write_video(args.output, frames, fps=args.fps))
    return 0


def _sample(args) -> int:
    from perse.core.images import contact_sheet
    from perse.core.io import save_png

    _output(args.output, (".png",), "-o")
    _whole("-n", args.n, 1, MAX_SAMPLES)
    _whole("--seed", args.seed, 0, MAX_SEED - MAX_SAMPLES)
    avatar = _load(args)
    categories = [args.category] if args.category else None
    tiles = [avatar.render(avatar.sample(seed=args.seed + i, categories=categories), size=args.size)
             for i in range(args.n)]
    save_png(args.output, contact_sheet(tiles, [f"seed {args.seed + i}" for i in range(args.n)],
                                        tile=args.size or avatar.image_size))
    print(args.output)
    return 0


def _export(args) -> int:
    from perse.core.ply import write_ply
    from perse.export.splat import write_splat
    from perse.export.web import write_web_bundle

    if not (args.ply or args.splat or args.web):
        raise PerseError("perse export: say what to write: --ply FILE.ply, --splat FILE.splat and/or --web DIR")
    if args.ply:
        _output(args.ply, (".ply",), "--ply")
    if args.splat:
        _output(args.splat, (".splat",), "--splat")
    if args.web and args.web.exists() and not args.web.is_dir():
        raise PerseError(f"--web {args.web} is a file; give a folder (it is created if missing)")
    _whole("--max-gaussians", args.max_gaussians, 1, 2**31 - 1)
    avatar = _load(args)
    gaussians = avatar.gaussians(_latent(avatar, args.set), _expression(args.expr))
    for path, write in ((args.ply, write_ply), (args.splat, write_splat)):
        if path:
            write(path, gaussians, max_gaussians=args.max_gaussians)
            print(f"{path}  {_megabytes(path.stat().st_size)}")
    if args.web:
        sizes = write_web_bundle(args.web, avatar)
        print(f"{args.web / 'index.html'}  {_megabytes(sum(sizes.values()))} "
              f"({len(avatar.model.means)} Gaussians; serve the folder, e.g. python -m http.server -d {args.web})")
    return 0


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.2f} MB"
