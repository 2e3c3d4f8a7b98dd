"""The on-disk dataset contract (docs/architecture.md section 3): every stage reads and writes it only through here.

```
<run>/dataset/meta.json             version, image size, intrinsics, categories, expression names,
                                    clips[], pairs[]
<run>/dataset/clips/<id>/frames/NNNN.png, masks/NNNN.png, frames.json
<run>/dataset/pairs/<id>/image.png, mask.png (region), matte.png (person alpha)
```
Latent codes: every category owns codes 0..n, code 0 being the *source* (unedited) look. A clip of
category c with code k is rendered with code k for c and code 0 for every other category; the source
clip (category "source") uses code 0 everywhere. A pair supervises the latent blend
(1 - t) * code(clip_a) + t * code(clip_b) of one category at one camera and expression.

Held-out looks: a clip marked `holdout` is never trained on (nor are pairs that use it); the metrics
stage fits its category's code to the look's frontal frame and scores the other frames, which says
whether the latent space reaches looks it never saw. Held-out looks take their category's last codes,
so the codes the avatar learns stay 0..n (`Dataset.trained_categories`).

Writes are atomic (temporary file + rename), and `meta.json` is written last, so a folder with a
valid meta.json is a complete dataset.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from perse.core.expressions import EXPRESSION_NAMES
from perse.core.io import atomic_write_json, load_png, save_png
from perse.core.paths import RunPaths
from perse.errors import DatasetError

# 2: pairs carry the person matte of their target; 3: clips carry a holdout flag; 4: frames carry the 14
# expression controls of perse.core.expressions (they had four)
VERSION = 4
SOURCE = "source"
# The category of a clip that changes several categories at once (its `codes` name them): mixed looks
# teach the avatar how looks combine, which a random look or a visitor's sliders ask of it.
MIX = "mix"


@dataclass
class Frame:
    index: int
    world_to_camera: list[list[float]]
    expression: list[float]
    identity: float | None = None
    kept: bool = True

    @property
    def image_file(self) -> str:
        return f"frames/{self.index:04d}.png"

    @property
    def mask_file(self) -> str:
        return f"masks/{self.index:04d}.png"


@dataclass
class Clip:
    id: str
    category: str
    value: str
    strength: float
    code: int
    frames: list[Frame] = field(default_factory=list)
    holdout: bool = False  # a look kept out of training, scored by fitting a code to it
    codes: dict[str, int] = field(default_factory=dict)  # a MIX clip: category -> code of each changed one

    @property
    def kept_frames(self) -> list[Frame]:
        return [f for f in self.frames if f.kept]

    @property
    def changes(self) -> dict[str, int]:
        """category -> code of every category this clip changes from the source look."""
        if self.category == MIX:
            return dict(self.codes)
        return {} if self.category == SOURCE else {self.category: self.code}


@dataclass
class Pair:
    id: str
    category: str
    clip_a: str
    clip_b: str
    t: float
    world_to_camera: list[list[float]]
    expression: list[float]
    image_file: str = "image.png"
    mask_file: str = "mask.png"  # the category's region
    matte_file: str = "matte.png"  # the person alpha of the target, as a clip frame's mask


@dataclass
class Meta:
    image_size: int
    intrinsics: list[list[float]]
    # category -> value labels by code index; index 0 is always "source".
    categories: dict[str, list[str]]
    expression_names: list[str] = field(default_factory=lambda: list(EXPRESSION_NAMES))
    clips: list[Clip] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    version: int = VERSION
    extra: dict[str, Any] = field(default_factory=dict)


class Dataset:
    """A validated dataset folder with loaders for frames, masks and pair targets."""

    def __init__(self, root: Path, meta: Meta):
        self.root = Path(root)
        self.meta = meta
        self.clips = {clip.id: clip for clip in meta.clips}

    @property
    def category_names(self) -> list[str]:
        return list(self.meta.categories)

    @property
    def trained_categories(self) -> dict[str, list[str]]:
        """category -> the value labels the avatar learns codes for (the held-out looks' codes cut off)."""
        first_held_out = {name: len(values) for name, values in self.meta.categories.items()}
        for clip in self.held_out_looks:
            first_held_out[clip.category] = min(first_held_out[clip.category], clip.code)
        return {name: values[:first_held_out[name]] for name, values in self.meta.categories.items()}

    @property
    def trained_clips(self) -> list[Clip]:
        return [clip for clip in self.meta.clips if not clip.holdout]

    @property
    def held_out_looks(self) -> list[Clip]:
        return [clip for clip in self.meta.clips if clip.holdout]

    @property
    def trained_pairs(self) -> list[Pair]:
        """Pairs between trained looks: a pair touching a held-out look would teach the avatar that look."""
        return [p for p in self.meta.pairs if not (self.clips[p.clip_a].holdout or self.clips[p.clip_b].holdout)]

    def code_vector(self, clip: Clip) -> np.ndarray:
        """Per-category code indices (n_categories,) for a clip: its own category's code (a MIX clip: each of
        its categories' codes), 0 elsewhere."""
        codes = np.zeros(len(self.meta.categories), dtype=np.int64)
        for name, code in clip.changes.items():
            codes[self.category_names.index(name)] = code
        return codes

    def clip_dir(self, clip: Clip | str) -> Path:
        return self.root / "clips" / (clip.id if isinstance(clip, Clip) else clip)

    def frame_image(self, clip: Clip, frame: Frame) -> np.ndarray:
        return load_png(self.clip_dir(clip) / frame.image_file)

    def frame_mask(self, clip: Clip, frame: Frame) -> np.ndarray:
        return load_png(self.clip_dir(clip) / frame.mask_file, gray=True)

    def pair_dir(self, pair: Pair) -> Path:
        return self.root / "pairs" / pair.id

    def pair_image(self, pair: Pair) -> np.ndarray:
        return load_png(self.pair_dir(pair) / pair.image_file)

    def pair_mask(self, pair: Pair) -> np.ndarray:
        return load_png(self.pair_dir(pair) / pair.mask_file, gray=True)

    def pair_matte(self, pair: Pair) -> np.ndarray:
        return load_png(self.pair_dir(pair) / pair.matte_file, gray=True)

    def intrinsics(self) -> np.ndarray:
        return np.asarray(self.meta.intrinsics, dtype=np.float64)


class DatasetWriter:
    """Writes a dataset incrementally; `close()` validates and writes meta.json last."""

    def __init__(self, run: Path, image_size: int, intrinsics: np.ndarray, categories: dict[str, list[str]],
                 expression_names: Iterable[str] = EXPRESSION_NAMES, extra: dict[str, Any] | None = None):
        self.paths = RunPaths(run)
        self.root = self.paths.dataset
        self.paths.dataset_meta.unlink(missing_ok=True)
        self.meta = Meta(
            image_size=int(image_size),
            intrinsics=np.asarray(intrinsics, dtype=float).tolist(),
            categories={name: list(values) for name, values in categories.items()},
            expression_names=list(expression_names),
            extra=dict(extra or {}),
        )
        self.root.mkdir(parents=True, exist_ok=True)

    def _check_image(self, what: str, image: np.ndarray, channels: int | None) -> None:
        size = self.meta.image_size
        expected = (size, size) if channels is None else (size, size, channels)
        if tuple(np.shape(image)) != expected:
            raise DatasetError(f"{what}: expected an image of shape {expected}, got {tuple(np.shape(image))}")

    def add_clip(self, clip: Clip, frames: Iterable[tuple[Frame, np.ndarray, np.ndarray]]) -> Clip:
        """Write a clip: `frames` yields (Frame record, RGB image, person alpha)."""
        if clip.id in {c.id for c in self.meta.clips}:
            raise DatasetError(f"clip id '{clip.id}' is used twice")
        directory = self.root / "clips" / clip.id
        if directory.exists():
            shutil.rmtree(directory)
        clip.frames = []
        for frame, image, alpha in frames:
            self._check_image(f"clip {clip.id} frame {frame.index}", image, 3)
            self._check_image(f"clip {clip.id} mask {frame.index}", alpha, None)
            save_png(directory / frame.image_file, image)
            save_png(directory / frame.mask_file, alpha)
            clip.frames.append(frame)
        atomic_write_json(directory / "frames.json", {"frames": [asdict(f) for f in clip.frames]})
        self.meta.clips.append(clip)
        return clip

    def add_pair(self, pair: Pair, image: np.ndarray, region: np.ndarray, matte: np.ndarray) -> Pair:
        """Write a pair: its target image, the category's region and the target's person alpha."""
        self._check_image(f"pair {pair.id} image", image, 3)
        self._check_image(f"pair {pair.id} mask", region, None)
        self._check_image(f"pair {pair.id} matte", matte, None)
        directory = self.root / "pairs" / pair.id
        save_png(directory / pair.image_file, image)
        save_png(directory / pair.mask_file, region)
        save_png(directory / pair.matte_file, matte)
        self.meta.pairs.append(pair)
        return pair

    def close(self) -> Dataset:
        data = asdict(self.meta)
        for clip in data["clips"]:
            clip.pop("frames")  # per-clip frames.json holds them; meta stays small
        dataset = Dataset(self.root, self.meta)
        validate(dataset, check_files=False)
        atomic_write_json(self.paths.dataset_meta, data)
        return dataset


def _parse_meta(paths: RunPaths) -> Meta:
    meta_path, root = paths.dataset_meta, paths.dataset
    if not meta_path.exists():
        raise DatasetError(f"{meta_path} is missing: the dataset was never finished; run `perse synth` on this run")
    try:
        data = json.loads(meta_path.read_text())
        clips = []
        for record in data.pop("clips"):
            frames_path = root / "clips" / record["id"] / "frames.json"
            try:
                frames = json.loads(frames_path.read_text())["frames"]
            except FileNotFoundError as exc:
                raise DatasetError(f"{frames_path} is missing; re-run `perse synth`") from exc
            clips.append(Clip(**record, frames=[Frame(**f) for f in frames]))
        pairs = [Pair(**p) for p in data.pop("pairs")]
        return Meta(**data, clips=clips, pairs=pairs)
    except DatasetError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{meta_path}: malformed dataset metadata ({exc}); re-run `perse synth`") from exc


def validate(dataset: Dataset, check_files: bool = True) -> None:
    meta = dataset.meta
    where = dataset.root
    if meta.version != VERSION:
        raise DatasetError(f"{where}: dataset version {meta.version}, this PERSE Studio reads {VERSION}; "
                           "re-run `perse synth` (or `perse run`) to rewrite it")
    for name, values in meta.categories.items():
        if not values or values[0] != SOURCE:
            raise DatasetError(f"{where}: category '{name}' must list '{SOURCE}' as code 0, got {values[:1]}")
    if np.asarray(meta.intrinsics).shape != (3, 3):
        raise DatasetError(f"{where}: intrinsics must be 3x3")
    if list(meta.expression_names) != list(EXPRESSION_NAMES):
        raise DatasetError(f"{where}: the dataset's expression controls ({', '.join(meta.expression_names)}) are not "
                           f"this PERSE Studio's ({', '.join(EXPRESSION_NAMES)}); re-run `perse synth` (or `perse run`) "
                           "to rewrite it")
    n_expr = len(meta.expression_names)
    for clip in meta.clips:
        if clip.category == MIX:
            unknown = sorted(set(clip.codes) - set(meta.categories))
            if not clip.codes or unknown or clip.holdout:
                raise DatasetError(f"{where}: mixed clip '{clip.id}' must name known categories' codes and be "
                                   f"trained; it has codes {clip.codes}{' (holdout)' if clip.holdout else ''}")
        elif clip.category != SOURCE:
            if clip.category not in meta.categories:
                raise DatasetError(f"{where}: clip '{clip.id}' has unknown category '{clip.category}'")
            if not 0 <= clip.code < len(meta.categories[clip.category]):
                raise DatasetError(f"{where}: clip '{clip.id}' code {clip.code} is outside category "
                                   f"'{clip.category}' (codes 0..{len(meta.categories[clip.category]) - 1})")
        elif clip.holdout:
            raise DatasetError(f"{where}: the source clip '{clip.id}' cannot be held out: every look is an edit of it")
        if not clip.frames:
            raise DatasetError(f"{where}: clip '{clip.id}' has no frames")
        for frame in clip.frames:
            if np.asarray(frame.world_to_camera).shape != (4, 4):
                raise DatasetError(f"{where}: clip '{clip.id}' frame {frame.index}: world_to_camera must be 4x4")
            if len(frame.expression) != n_expr:
                raise DatasetError(f"{where}: clip '{clip.id}' frame {frame.index}: expression has "
                                   f"{len(frame.expression)} values, expected {n_expr}")
            if check_files:
                for file in (frame.image_file, frame.mask_file):
                    if not (dataset.clip_dir(clip) / file).exists():
                        raise DatasetError(f"{dataset.clip_dir(clip) / file} is missing; re-run `perse synth`")
    trained = dataset.trained_categories
    for clip in dataset.trained_clips:
        for name, code in clip.changes.items():
            if not 0 <= code < len(trained[name]):
                raise DatasetError(f"{where}: trained clip '{clip.id}' has code {code}, after a held-out look of "
                                   f"'{name}'; held-out looks must take their category's last codes")
    for pair in meta.pairs:
        for clip_id in (pair.clip_a, pair.clip_b):
            if clip_id not in dataset.clips:
                raise DatasetError(f"{where}: pair '{pair.id}' refers to unknown clip '{clip_id}'")
        if not 0.0 <= pair.t <= 1.0:
            raise DatasetError(f"{where}: pair '{pair.id}' has t={pair.t}, outside [0, 1]")
        if pair.category not in meta.categories:
            raise DatasetError(f"{where}: pair '{pair.id}' has unknown category '{pair.category}'")
        if check_files:
            for file in (pair.image_file, pair.mask_file, pair.matte_file):
                if not (dataset.pair_dir(pair) / file).exists():
                    raise DatasetError(f"{dataset.pair_dir(pair) / file} is missing; re-run `perse synth`")


def read_dataset(run: Path, check_files: bool = True) -> Dataset:
    paths = RunPaths(run)
    dataset = Dataset(paths.dataset, _parse_meta(paths))
    validate(dataset, check_files=check_files)
    return dataset


def is_complete(run: Path) -> bool:
    try:
        read_dataset(run)
        return True
    except DatasetError:
        return False
