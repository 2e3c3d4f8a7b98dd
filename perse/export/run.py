"""The export stage of a run: what a user takes away from a trained avatar.

<run>/renders/turntable.<format>     the source look, head turning and nodding (export.turntable_formats)
<run>/renders/interp_<category>.gif  source -> every value of the category and back, one loop
<run>/renders/samples.png            random looks drawn from the fitted prior
<run>/avatar/avatar.ply              standard 3DGS file of the source look (written by training)
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from perse.avatar.avatar import Avatar
from perse.config import PipelineConfig
from perse.core.io import save_png
from perse.core.paths import RunPaths
from perse.dataset import read_dataset
from perse.errors import DatasetError
from perse.events import NEVER, CancelToken, Progress
from perse.export.video import turntable_frames, write_video

SAMPLES = 8


def expected_exports(run: Path, categories: list[str], config: PipelineConfig) -> list[Path]:
    folder = RunPaths(run).renders
    return ([folder / f"turntable.{fmt}" for fmt in config.export.turntable_formats] + [folder / "samples.png"]
            + [folder / f"interp_{name}.gif" for name in categories])


def exports_complete(run: Path, config: PipelineConfig) -> bool:
    try:
        categories = read_dataset(run, check_files=False).category_names
    except DatasetError:
        return False
    return all(path.exists() for path in expected_exports(run, categories, config))


def value_path_frames(avatar: Avatar, category: str, steps_per_value: int, size: int | None = None) -> list[np.ndarray]:
    """Renders walking a category's codes in order (source, value 1, ..., value n), `steps_per_value` each."""
    values = avatar.categories[category]
    frames = []
    for a, b in zip(range(len(values) - 1), range(1, len(values))):
        ts = np.linspace(0.0, 1.0, steps_per_value, endpoint=False)
        frames += [avatar.render(avatar.interpolate(category, a, b, float(t)), size=size) for t in ts]
    frames.append(avatar.render({category: len(values) - 1}, size=size))
    return frames


def sample_grid(avatar: Avatar, seed: int, size: int | None = None) -> np.ndarray:
    from perse.core.images import contact_sheet

    tiles = [avatar.render(avatar.sample(seed=seed + i), size=size) for i in range(SAMPLES)]
    return contact_sheet(tiles, [f"seed {seed + i}" for i in range(SAMPLES)], columns=SAMPLES // 2,
                         tile=max(128, size or avatar.image_size))


def export_run(run_dir: Path | str, config: PipelineConfig, cancel: CancelToken = NEVER) -> Iterator[Progress]:
    run = Path(run_dir)
    avatar = Avatar.load(run, device=config.resolved_device())
    folder = RunPaths(run).renders
    cfg = config.export
    categories = list(avatar.categories)
    total = 2 + len(categories)

    gif_size = min(cfg.gif_size, avatar.image_size)
    yield Progress("export", 0.0, "rendering the turntable")
    written = [write_video(folder / f"turntable.{fmt}",
                           turntable_frames(avatar, frames=cfg.turntable_frames, size=gif_size if fmt == "gif" else None),
                           fps=cfg.fps)
               for fmt in cfg.turntable_formats]
    yield Progress("export", 1 / total, "turntable written", clip=str(written[0]) if written else None)

    for done, category in enumerate(categories, start=2):
        cancel.check()
        steps = max(2, cfg.interp_frames // max(1, len(avatar.categories[category]) - 1))
        frames = value_path_frames(avatar, category, steps, size=gif_size)
        gif = write_video(folder / f"interp_{category}.gif", frames + frames[-2:0:-1], fps=cfg.fps)
        yield Progress("export", done / total, f"{category}: interpolation written", clip=str(gif))

    cancel.check()
    grid = folder / "samples.png"
    save_png(grid, sample_grid(avatar, config.seed))
    yield Progress("export", 1.0, "random samples written", image=str(grid))
