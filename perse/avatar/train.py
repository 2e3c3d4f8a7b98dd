"""Train a PERSE avatar from a run's dataset (docs/architecture.md section 3) as a generator of Progress events.

Stage 1 (reconstruction): each frame is rendered with its clip's latent (the clip's code for its
category, source codes elsewhere), its expression and its camera; loss = L1 + SSIM against the
matte-premultiplied frame, L1 of alpha against the matte, and a prior pulling each category's codes
towards N(0, prior_std^2) statistics. Stage 2 (from interp_start) adds the interpolation loss: the
blended latent of a pair must reproduce the pair's 2D target inside its region mask.

Everything the loop touches lives on the device as tensors; the frame/pair schedule of the whole run
is drawn up-front from the seed, so a resumed run replays exactly the same steps.
"""
from __future__ import annotations

import math
import signal
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from perse.avatar.avatar import (
    Avatar,
    load_checkpoint,
    save_checkpoint,
)
from perse.avatar.areas import FaceAreas
from perse.avatar.densify import DENSIFIERS, GAUSSIAN_PARAMS, make_densifier
from perse.avatar.losses import load_lpips, psnr, ssim
from perse.avatar.model import AvatarModel
from perse.config import PipelineConfig
from perse.core.camera import unproject
from perse.core.gaussians import Gaussians
from perse.core.io import atomic_write_json, save_png
from perse.core.paths import RunPaths
from perse.core.ply import write_ply
from perse.core.render import RENDERERS, render_batch
from perse.dataset import Dataset, read_dataset
from perse.dataset.tensors import FrameData, load_frames, load_pairs, over_background
from perse.errors import Cancelled, DatasetError, PerseError
from perse.events import NEVER, CancelToken, Progress

# Config fields that may differ between a checkpoint and the run resuming it: they change when
# things are saved or shown, never what is computed.
RESUMABLE_DIFFERENCES = {"checkpoint_every", "preview_every", "renderer"}


def initial_points(dataset: Dataset, frames: FrameData, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(points, colours, scale) for n canonical Gaussians: the dataset's point cloud if it names one,
    else a head ellipsoid fitted to the most frontal training matte."""
    generator = np.random.default_rng(seed)
    extra = dataset.meta.extra.get("init_points")
    if extra:
        path = dataset.root / extra
        try:
            with np.load(path, allow_pickle=False) as data:
                points, colors = np.asarray(data["points"], np.float32), np.asarray(data["colors"], np.float32)
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(f"{path}: cannot read the initial point cloud (needs arrays 'points' (N, 3) and "
                               f"'colors' (N, 3)): {exc}; re-run `perse synth`") from exc
        if points.ndim != 2 or points.shape[1] != 3 or colors.shape != points.shape or len(points) == 0:
            raise DatasetError(f"{path}: 'points' and 'colors' must both be (N, 3) with N > 0, got {points.shape} "
                               f"and {colors.shape}; re-run `perse synth`")
        if colors.max() > 1.0:
            colors = colors / 255.0
        pick = generator.choice(len(points), n, replace=n > len(points))
        chosen = points[pick]
        # Duplicates (when upsampling) are jittered apart so they can specialise.
        extent = np.ptp(points, axis=0).max()
        spacing = extent * math.sqrt(1.0 / max(len(points), 1))
        if n > len(points):
            chosen = chosen + generator.normal(0, 0.3 * spacing, chosen.shape).astype(np.float32)
        scale = extent * math.sqrt(1.0 / n)
        return torch.tensor(chosen), torch.tensor(np.clip(colors[pick], 0.02, 0.98)), torch.tensor([scale * 0.5])
    return _ellipsoid_points(dataset, frames, n, generator)


def _ellipsoid_points(dataset: Dataset, frames: FrameData, n: int, generator: np.random.Generator):
    viewmats = frames.viewmats.cpu().numpy()
    # Most frontal frame: rotation closest to identity.
    best = int(np.argmax(np.trace(viewmats[:, :3, :3], axis1=1, axis2=2)))
    mask = frames.masks[best].cpu().numpy() / 255.0
    image = frames.images[best].cpu().numpy() / 255.0
    size = mask.shape[0]
    ys, xs = np.nonzero(mask > 0.5)
    if len(xs) < 4:
        raise DatasetError(f"{dataset.root}: the training mattes are empty, cannot place the head; check the "
                           "masks/ images of the clips")
    K = dataset.intrinsics() * np.array([[size / dataset.meta.image_size]] * 2 + [[1.0]])
    viewmat = viewmats[best].astype(np.float64)
    depth = viewmat[2, 3]
    corners = unproject(np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1]], float),
                        np.array([depth, depth]), viewmat, K)
    centre = corners.mean(0)
    half = np.abs(corners[1] - corners[0]) / 2
    radius_z = half[0]
    centre[2] = radius_z  # the face plane z = 0 touches the front of the head
    axes = np.array([half[0], half[1], radius_z])
    # Oversample the surface and keep points that fall inside the matte, then take n of them.
    unit = generator.normal(size=(4 * n, 3))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    shell = generator.uniform(0.85, 1.0, size=(4 * n, 1))
    points = centre + unit * axes * shell
    cam = points @ viewmat[:3, :3].T + viewmat[:3, 3]
    uv = cam[:, :2] / cam[:, 2:3] * np.array([K[0, 0], K[1, 1]]) + K[:2, 2]
    px = np.clip(uv.astype(int), 0, size - 1)
    inside = mask[px[:, 1], px[:, 0]] > 0.5
    candidates = np.nonzero(inside)[0] if inside.sum() >= n // 4 else np.arange(len(points))
    pick = generator.choice(candidates, n, replace=n > len(candidates))
    colors = np.clip(image[px[pick, 1], px[pick, 0]], 0.02, 0.98)
    area = 4 * math.pi * axes.mean() ** 2
    return (torch.tensor(points[pick], dtype=torch.float32), torch.tensor(colors, dtype=torch.float32),
            torch.tensor([0.5 * math.sqrt(area / n)], dtype=torch.float32))


def make_optimizer(model: AvatarModel, config) -> torch.optim.Optimizer:
    # One named group per per-Gaussian tensor: densification (gsplat's strategy) replaces them one by one.
    groups = [{"params": [getattr(model, attribute)], "lr": config.means_lr if name == "means" else config.lr,
               "name": name} for name, attribute in GAUSSIAN_PARAMS.items()]
    groups += [
        {"params": [*model.decoder.parameters(), *model.position_features.parameters()],
         "lr": config.decoder_lr, "name": "decoder"},
        {"params": list(model.codes.parameters()), "lr": config.code_lr, "name": "codes"},
    ]
    fused = model.means.is_cuda
    return torch.optim.Adam(groups, eps=1e-15, fused=fused)


def code_prior(model: AvatarModel, std: float) -> torch.Tensor:
    """Each category's codes should look like draws from N(0, std^2): zero mean, std per dimension."""
    # Categories with the same number of values (usually all) are scored as one stacked tensor: a
    # handful of kernels per step instead of a handful per category.
    groups: dict[int, list[torch.Tensor]] = {}
    for table in model.codes:
        groups.setdefault(table.shape[0], []).append(table)
    loss = model.means.new_zeros(())
    for rows, tables in groups.items():
        stacked = torch.stack(tables)  # (categories, rows, latent_dim)
        per_category = (stacked.mean(1) / std).pow(2).mean(-1)
        if rows > 1:
            per_category = per_category + (stacked.std(1, unbiased=False) / std - 1).pow(2).mean(-1)
        loss = loss + per_category.sum()
    return loss / len(model.codes)


def schedule(config: PipelineConfig, n_frames: int, n_pairs: int
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The frame indices, background colours and pair indices of every step, drawn from the seed alone.

    Each frame is composited over a random background: on a fixed black one, transparency is a free
    way to draw dark pupils and mouths, and those holes show as white blobs on any other background."""
    generator = torch.Generator().manual_seed(config.seed)
    steps = config.avatar.steps
    frames = torch.randint(n_frames, (steps, config.avatar.batch_frames), generator=generator)
    pairs = torch.randint(n_pairs, (steps, config.avatar.pair_batch), generator=generator) if n_pairs else None
    backgrounds = torch.rand(steps, config.avatar.batch_frames, 3, generator=generator)
    return frames, backgrounds, pairs


class Trainer:
    """One training run's state; `step(i)` advances it by one optimisation step."""

    def __init__(self, run: Path, config: PipelineConfig, device: str):
        self.run = Path(run)
        self.config = config
        self.avatar_config = config.avatar
        self.device = device
        self.dataset = read_dataset(self.run)
        every = self.avatar_config.holdout_every
        self.frames = load_frames(self.dataset, every, False, device)
        self.holdout = load_frames(self.dataset, every, True, device)
        self.pairs = load_pairs(self.dataset, device)
        meta = self.dataset.meta
        self.size = meta.image_size
        self.K = torch.tensor(meta.intrinsics, dtype=torch.float32, device=device)
        points, colors, scale = initial_points(self.dataset, self.frames, self.avatar_config.num_gaussians, config.seed)
        counts = {name: len(values) for name, values in self.dataset.trained_categories.items()}
        self.model = AvatarModel(self.avatar_config, counts, len(meta.expression_names), points, colors, scale,
                                 seed=config.seed, areas=FaceAreas.for_run(self.run, self.dataset)).to(device)
        self.optimizer = make_optimizer(self.model, self.avatar_config)
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.densifier = make_densifier(self.model, self.optimizer, self.avatar_config, config.seed)
        self.frame_schedule, self.background_schedule, self.pair_schedule = schedule(
            config, len(self.frames), len(self.pairs or []))
        self.frame_schedule = self.frame_schedule.to(device)
        self.background_schedule = self.background_schedule.to(device)
        if self.pair_schedule is not None:
            self.pair_schedule = self.pair_schedule.to(device)
        self.lpips, self.lpips_note = (None, "")
        if self.avatar_config.lpips_weight > 0:
            self.lpips, self.lpips_note = load_lpips(device)
        self.step_index = 0

    # -- checkpoints ---------------------------------------------------------------------------
    def state(self) -> dict:
        meta = self.dataset.meta
        return {
            "step": self.step_index,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "densify": self.densifier.state_dict() if self.densifier else {},
            "config": self.config.to_dict(),
            "categories": self.dataset.trained_categories,
            "expression_names": meta.expression_names,
            "image_size": meta.image_size,
            "intrinsics": meta.intrinsics,
            "holdout": [list(name) for name in self.holdout.names],
        }

    def save(self) -> Path:
        path = RunPaths(self.run).checkpoint
        save_checkpoint(path, self.state())
        return path

    def restore(self, state: dict) -> None:
        saved = state["config"]["avatar"]
        current = self.config.to_dict()["avatar"]
        changed = sorted(k for k in current if k not in RESUMABLE_DIFFERENCES and saved.get(k) != current[k])
        if changed or state["config"]["seed"] != self.config.seed:
            raise PerseError(f"{RunPaths(self.run).checkpoint} was trained with different settings "
                             f"({', '.join(changed) or 'seed'}); resume with the same config, or train without "
                             "--resume to start over")
        if "densify" not in state:
            raise PerseError(f"{RunPaths(self.run).checkpoint} was written by an older PERSE Studio; train "
                             "without --resume to start over")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])  # lrs included: they follow the decay
        if self.densifier:
            self.densifier.load_state_dict(state["densify"])
        self.step_index = int(state["step"])

    # -- one step ------------------------------------------------------------------------------
    def decode(self, latents: torch.Tensor, expressions: torch.Tensor) -> Gaussians:
        return self.model.decode(latents, expressions)

    def render(self, gaussians: Gaussians, viewmats: torch.Tensor, background: torch.Tensor | None = None):
        return render_batch(gaussians, viewmats, self.K, self.size, self.size, background,
                            backend=self.config.avatar.renderer)

    def step(self) -> dict[str, torch.Tensor]:
        cfg = self.avatar_config
        i = self.step_index
        idx = self.frame_schedule[i]
        f = self.frames
        target_alpha = f.masks[idx].float() / 255
        background = self.background_schedule[i]
        target = over_background(f.images[idx].float() / 255, target_alpha, background)
        out = self.render(self.decode(self.model.latent(f.codes[idx]), f.expressions[idx]), f.viewmats[idx],
                          background)
        l1 = (out.rgb - target).abs().mean()
        losses = {"l1": l1}
        loss = (1 - cfg.ssim_weight) * l1
        if cfg.ssim_weight > 0:
            losses["ssim"] = 1 - ssim(out.rgb, target)
            loss = loss + cfg.ssim_weight * losses["ssim"]
        losses["alpha"] = (out.alpha - target_alpha).abs().mean()
        loss = loss + cfg.alpha_weight * losses["alpha"]
        if self.lpips is not None:
            losses["lpips"] = self.lpips(out.rgb, target)
            loss = loss + cfg.lpips_weight * losses["lpips"]
        losses["prior"] = code_prior(self.model, cfg.prior_std)
        loss = loss + cfg.prior_weight * losses["prior"]
        if self.pairs is not None and cfg.interp_weight > 0 and i >= cfg.interp_start * cfg.steps:
            pair_background = background[:1].expand(len(self.pair_schedule[i]), 3)
            losses["interp"] = self.interp_loss(self.pair_schedule[i], pair_background)
            loss = loss + cfg.interp_weight * losses["interp"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.densifier:
            self.densifier.after_backward()
        self.optimizer.step()
        self.step_index = i + 1
        decay = cfg.lr_final ** (self.step_index / cfg.steps)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * decay
        if self.densifier:
            self.densifier.after_step(self.step_index, cfg.means_lr * decay)
        losses["total"] = loss
        self.last_render = (out.rgb.detach(), target)
        return losses

    def interp_loss(self, idx: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
        """L1 of colour and alpha to the 2D interpolation targets inside their regions.

        Like a frame, a target is compared over a random `background` through its matte: over the
        target's own pixels a transparent avatar would reproduce it exactly, and the loss would teach
        holes in every region it supervises."""
        cfg = self.avatar_config
        p = self.pairs
        t = p.t[idx][:, None]
        latents = (1 - t) * self.model.latent(p.codes_a[idx]) + t * self.model.latent(p.codes_b[idx])
        out = self.render(self.decode(latents, p.expressions[idx]), p.viewmats[idx], background)
        matte = p.mattes[idx].float() / 255
        target = over_background(p.images[idx].float() / 255, matte, background)
        region = p.masks[idx].float() / 255
        error = (out.rgb - target).abs().mean(-1) + cfg.alpha_weight * (out.alpha - matte).abs()
        return (error * region).sum() / region.sum().clamp_min(1.0)

    # -- previews ------------------------------------------------------------------------------
    @torch.no_grad()
    def preview(self) -> Path:
        """Side by side: a held-out frame (or the first training frame) and its render."""
        data = self.holdout if len(self.holdout) else self.frames
        idx = torch.zeros(1, dtype=torch.long, device=self.device)
        out = self.render(self.decode(self.model.latent(data.codes[idx]), data.expressions[idx]), data.viewmats[idx])
        alpha = data.masks[0].float()[..., None] / 255
        target = data.images[0].float() / 255 * alpha
        panel = torch.cat([target, out.rgb[0].clamp(0, 1)], dim=1).cpu().numpy()
        path = RunPaths(self.run).train_previews / f"step_{self.step_index:06d}.png"
        save_png(path, panel)
        return path


class _TermSignal:
    """Turns SIGTERM into a flag the loop checks (so a checkpoint is written before exiting)."""

    def __init__(self):
        self.received = False
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def write_holdout(trainer: Trainer) -> None:
    frames: dict[str, list[int]] = {}
    for clip_id, index in trainer.holdout.names:
        frames.setdefault(clip_id, []).append(index)
    atomic_write_json(RunPaths(trainer.run).holdout,
                      {"every": trainer.avatar_config.holdout_every, "frames": frames,
                       "looks": [clip.id for clip in trainer.dataset.held_out_looks]})


def train(run_dir: Path | str, config: PipelineConfig, cancel: CancelToken = NEVER,
          resume: bool = False) -> Iterator[Progress]:
    """Train the avatar of `run_dir`, yielding Progress events; writes <run>/avatar/checkpoint.pt,
    config.json, holdout.json, previews/ and avatar.ply.

    With `resume`, continues from the checkpoint (same config required) and ends where an
    uninterrupted run ends. Cancellation (token or SIGTERM) saves a checkpoint, then raises Cancelled.
    """
    run = Path(run_dir)
    device = config.resolved_device()
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    start = time.perf_counter()
    yield Progress("train", 0.0, "loading the dataset")
    trainer = Trainer(run, config, device)
    checkpoint = RunPaths(run).checkpoint
    if resume and checkpoint.exists():
        trainer.restore(load_checkpoint(checkpoint, device))
    atomic_write_json(RunPaths(run).avatar_config, {**config.to_dict(), "backends": {
        "renderer": RENDERERS.resolve(config.avatar.renderer, device),
        "densifier": DENSIFIERS.resolve(config.avatar.densifier, device) if config.avatar.densify else None}})
    write_holdout(trainer)
    cfg = config.avatar
    note = f"; {trainer.lpips_note}" if trainer.lpips_note else ""
    yield Progress("train", trainer.step_index / cfg.steps,
                   f"training {trainer.model.num_gaussians} Gaussians on {len(trainer.frames)} frames "
                   f"({len(trainer.holdout)} held out) from step {trainer.step_index}{note}")
    log_every = max(1, cfg.steps // 100)
    with _TermSignal() as term:
        while trainer.step_index < cfg.steps:
            if cancel.cancelled or term.received:
                trainer.save()
                raise Cancelled(f"training stopped at step {trainer.step_index}; checkpoint saved, "
                                f"`perse train {run} --resume` continues")
            losses = trainer.step()
            i = trainer.step_index
            saved = i % cfg.checkpoint_every == 0 and i < cfg.steps
            if saved:
                trainer.save()
            image = trainer.preview() if i % cfg.preview_every == 0 or i == cfg.steps else None
            if i % log_every == 0 or image is not None or saved or i == cfg.steps:
                metrics = {"step": i, "elapsed": time.perf_counter() - start, "psnr": psnr(*trainer.last_render)}
                metrics.update({k: float(v.detach()) for k, v in losses.items()})
                yield Progress("train", i / cfg.steps, f"step {i}/{cfg.steps} loss {metrics['total']:.4f}",
                               image=str(image) if image else None, metrics=metrics, avatar=str(run) if saved else None)
    trainer.save()
    avatar = Avatar(trainer.model, config, trainer.dataset.trained_categories, trainer.dataset.meta.expression_names,
                    trainer.size, np.asarray(trainer.dataset.meta.intrinsics))
    ply = write_ply(RunPaths(run).avatar_ply, avatar.gaussians())
    yield Progress("train", 1.0, f"done in {time.perf_counter() - start:.1f} s; avatar saved to {checkpoint}",
                   clip=str(ply), metrics={"step": trainer.step_index, "elapsed": time.perf_counter() - start},
                   avatar=str(run))
