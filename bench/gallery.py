"""The gallery: what the avatars of the portraits in assets/ look like, for anyone to judge by eye.

    python bench/gallery.py --preset fast --device cuda                         # on the GPU, into docs/gallery/
    python bench/gallery.py --preset tiny --device cpu --out /tmp/g --runs /tmp/g-runs    # CPU check

For every portrait it runs the pipeline into `--runs`/<name> (stages already complete there with the same
photo and config are reused, so a machine without mediapipe can start from portraits ingested elsewhere)
and renders from the trained avatar, into `--out`/<name>/:
  edits.jpg            every learned look, one row per category (source first), frontal
  between_<cat>.jpg    source -> the category's most visible look at even steps, frontal and turned
  samples.jpg          random looks (`Avatar.sample`)
  turntable.gif/.png   the source look turning +-35 degrees and nodding; the PNG is a strip of its frames
plus `--out`/README.md showing them with the report's goals. Sheets and strips are JPEG (a few hundred
KB each at most; PNG would be five times that), the turntable strip PNG.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TILE = 160  # px per tile in the sheets and strips
BETWEEN_STEPS = 8
BETWEEN_YAW = 25.0  # the turned row of an in-between strip: 3D consistency shows there
TURNTABLE_FRAMES = 36
TURNTABLE_YAW = 35.0  # the hole-free range
STRIP_FRAMES = 9
GIF_SIZE = 192
JPEG_QUALITY = 88
ENTRY = "entry.json"  # what the page says about one portrait, kept beside its images


def save_jpeg(path: Path, image: np.ndarray) -> Path:
    from perse.core.io import to_uint8

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(to_uint8(image), cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f"could not write {path}")
    return path


def edits_sheet(avatar) -> np.ndarray:
    """One row per category: the source look then every learned look, labelled with its value."""
    from perse.core.images import contact_sheet

    columns = max(len(values) for values in avatar.categories.values())
    tiles, labels = [], []
    for name, values in avatar.categories.items():
        for code in range(columns):
            blank = code >= len(values)
            tiles.append(np.ones((TILE, TILE, 3)) if blank else avatar.render({name: code}, size=TILE))
            labels.append("" if blank else name if code == 0 else values[code])
    return contact_sheet(tiles, labels, columns=columns, tile=TILE)


def most_visible_look(avatar, category: str) -> int:
    """The category's look whose render differs most from the source look's: its in-betweens show most."""
    source = avatar.render(None, size=64)
    changes = [np.abs(avatar.render({category: code}, size=64) - source).mean()
               for code in range(1, len(avatar.categories[category]))]
    return 1 + int(np.argmax(changes))


def between_strip(avatar, category: str) -> np.ndarray:
    """Source -> the category's most visible look in BETWEEN_STEPS even steps: a frontal row, a turned row."""
    from perse.core.images import contact_sheet
    from perse.export.video import interpolation_frames

    look = most_visible_look(avatar, category)
    rows = [interpolation_frames(avatar, category, 0, look, BETWEEN_STEPS, yaw=yaw, size=TILE, bounce=False)
            for yaw in (0.0, BETWEEN_YAW)]
    ts = np.linspace(0, 1, BETWEEN_STEPS)
    labels = ([f"t={t:.2f}" for t in ts[:-1]] + [avatar.categories[category][look]]
              + [f"yaw {BETWEEN_YAW:g}" if i == 0 else "" for i in range(len(ts))])
    return contact_sheet(rows[0] + rows[1], labels, columns=BETWEEN_STEPS, tile=TILE)


def render_portrait(run: Path, out: Path, seed: int, device: str) -> dict:
    """Every image of one portrait's gallery entry; returns what README.md needs about it."""
    from perse.avatar.avatar import Avatar
    from perse.core.images import contact_sheet
    from perse.core.io import save_png
    from perse.core.paths import RunPaths
    from perse.export.run import sample_grid
    from perse.export.video import turntable_frames, write_video

    avatar = Avatar.load(run, device=device)
    out.mkdir(parents=True, exist_ok=True)
    portrait = cv2.resize(cv2.imread(str(RunPaths(run).portrait)), (TILE, TILE), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out / "portrait.jpg"), portrait, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    save_jpeg(out / "edits.jpg", edits_sheet(avatar))
    for category in avatar.categories:
        save_jpeg(out / f"between_{category}.jpg", between_strip(avatar, category))
    save_jpeg(out / "samples.jpg", sample_grid(avatar, seed, size=TILE))
    frames = turntable_frames(avatar, frames=TURNTABLE_FRAMES, yaw_deg=TURNTABLE_YAW, size=GIF_SIZE)
    write_video(out / "turntable.gif", frames, fps=12)
    shown = frames[:: max(1, len(frames) // STRIP_FRAMES)][:STRIP_FRAMES]
    save_png(out / "turntable.png", contact_sheet(shown, [""] * len(shown), columns=len(shown), tile=TILE))
    report_path = RunPaths(run).report
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    # Entries are rebuilt one portrait at a time (a GPU call holds a few): each says when it was made.
    built = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return {"categories": list(avatar.categories), "goals": report.get("goals", []),
            "image_size": avatar.image_size, "gaussians": avatar.model.num_gaussians, "built": built}


def readme(entries: dict[str, dict], preset: str, device: str) -> str:
    intro = (f"Avatars of the portraits in `assets/`, built by `perse run --preset {preset}` ({device}); every "
             f"image is rendered from the trained avatar. Regenerate with `python bench/gallery.py --preset {preset}`.")
    contents = ("Per portrait: the learned looks (one row per category, the source look first), an in-between strip "
                f"per category (source to its most visible look, frontal and at yaw {BETWEEN_YAW:g}), random samples, and a "
                f"turntable (+-{TURNTABLE_YAW:g} degrees). The goals are the report's (`report.json`).")
    lines = ["# Gallery", "", intro, "", contents, ""]
    for name, entry in entries.items():
        lines += [f"## {name}", "", f"![{name}]({name}/portrait.jpg) ![turntable]({name}/turntable.gif)", ""]
        if entry["goals"]:
            lines += ["| measure | value | goal | |", "|---|---|---|---|"]
            lines += [f"| {g['measure']} | {g['shown']} | {g['goal']} | {'met' if g['met'] else '**missed**'} |"
                      for g in entry["goals"]]
            lines.append("")
        built = f" Built {entry['built']}." if entry.get("built") else ""
        lines += [f"{entry['image_size']} px, {entry['gaussians']} Gaussians.{built}", "",
                  "Learned looks:", "", f"![edits]({name}/edits.jpg)", "", "In-betweens:", ""]
        for category in entry["categories"]:
            lines += [f"{category}:", "", f"![{category}]({name}/between_{category}.jpg)", ""]
        lines += ["Random samples:", "", f"![samples]({name}/samples.jpg)", "",
                  "Turntable frames:", "", f"![turntable frames]({name}/turntable.png)", ""]
    return "\n".join(lines)


def main() -> int:
    from perse.config import build_config
    from perse.pipeline import run as run_pipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--photos", nargs="*", type=Path, default=sorted((ROOT / "assets").glob("*.[jp][pn]g")))
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "gallery", help="folder of run folders")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    parser.add_argument("--override", action="append", default=[])
    args = parser.parse_args()

    config = build_config(args.preset, overrides=[f"device={args.device}", *args.override])
    device = config.resolved_device()
    for photo in args.photos:
        run = args.runs / photo.stem
        for event in run_pipeline(photo, run, config):
            if event.fraction in (0.0, 1.0):
                print(f"{photo.stem}: [{event.stage}] {event.message}", flush=True)
        entry = render_portrait(run, args.out / photo.stem, config.seed, device)
        (args.out / photo.stem / ENTRY).write_text(json.dumps(entry, indent=1))
        print(f"{photo.stem}: gallery written to {args.out / photo.stem}", flush=True)
        # The page lists every portrait rendered so far, also by earlier invocations (one portrait each).
        entries = {path.parent.name: json.loads(path.read_text()) for path in sorted(args.out.glob(f"*/{ENTRY}"))}
        (args.out / "README.md").write_text(readme(entries, args.preset, device))
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"wrote {args.out / 'README.md'}; gallery {total / 2**20:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
