"""Avatar speed bench: prints a table and writes bench/results/avatar.json (GPU) or avatar_cpu.json.

GPU (`--device cuda`, the `fast` preset at 512 px): training step time with ~100k Gaussians and the
decoder, decoded render FPS, the wall time of a full `fast` training run (dataset loading, checkpoints,
previews and the .ply included) and peak GPU memory.
CPU (`--device cpu`, the `tiny` preset at 64 px): the wall time of a 200-step training run, and the
one-thread CPU time of rendering a lifted 128 px portrait (target 0.1 s).

    .venv/bin/python bench/avatar.py --device cpu
    python3 bench/avatar.py --device cuda        # on the device machine
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine_info import device_name  # noqa: E402  (bench/, beside this script)

from perse.avatar.avatar import Avatar  # noqa: E402
from perse.avatar.train import Trainer, train  # noqa: E402
from perse.config import build_config  # noqa: E402
from perse.core.camera import Camera  # noqa: E402
from perse.core.gaussians import Gaussians  # noqa: E402
from perse.core.render import render  # noqa: E402
from perse.testing.procedural import write_procedural_dataset  # noqa: E402

TARGETS = {"train_step_ms": 10.0, "render_fps": 300.0, "train_wall_s": 60.0, "peak_gpu_gb": 16.0,
           "cpu_train_wall_s": 60.0, "cpu_lifted_render_s": 0.1}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench_gpu(run: Path, steps: int, frames: int) -> dict:
    config = build_config("fast", overrides={"device": "cuda", "avatar.steps": steps})
    t0 = time.perf_counter()
    write_procedural_dataset(run, size=512, frames=frames, n_gaussians=config.avatar.num_gaussians,
                             init_points=True, device="cuda")
    results = {"dataset_write_s": time.perf_counter() - t0, "num_gaussians": config.avatar.num_gaussians,
               "batch_frames": config.avatar.batch_frames, "image_size": 512, "steps": steps}
    torch.backends.cuda.matmul.allow_tf32 = True
    trainer = Trainer(run, config, "cuda")
    for _ in range(20):
        trainer.step()
    sync("cuda")
    timed = 100
    t0 = time.perf_counter()
    for _ in range(timed):
        trainer.step()
    sync("cuda")
    results["train_step_ms"] = (time.perf_counter() - t0) / timed * 1000
    results["train_step_ms_per_frame"] = results["train_step_ms"] / config.avatar.batch_frames
    # Stage 2 steps also render a batch of interpolation pairs.
    trainer.step_index = int(config.avatar.interp_start * steps)
    trainer.step()
    sync("cuda")
    t0 = time.perf_counter()
    for _ in range(timed):
        trainer.step()
    sync("cuda")
    results["train_step_stage2_ms"] = (time.perf_counter() - t0) / timed * 1000
    trainer.save()
    avatar = Avatar.load(run, "cuda")
    camera = avatar.camera(yaw=10.0)
    latent = avatar.latent()
    expression = avatar.expression(None)
    with torch.no_grad():
        for _ in range(10):
            render(avatar.gaussians(latent, expression), camera)
        sync("cuda")
        t0 = time.perf_counter()
        count = 200
        for i in range(count):
            render(avatar.gaussians(latent, expression), camera)
        sync("cuda")
    results["render_fps"] = count / (time.perf_counter() - t0)
    del trainer, avatar
    shutil.rmtree(run / "avatar")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    psnr = None
    for event in train(run, config):
        psnr = event.metrics.get("psnr", psnr)
    results["train_wall_s"] = time.perf_counter() - t0
    results["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 1e9
    results["final_train_psnr"] = psnr
    return results


def lifted_portrait_render_s(size: int = 128) -> float:
    """One-thread CPU time of a lifted-portrait-sized scene (~one Gaussian per pixel of a 128 px crop):
    what the CPU animator pays per frame, whatever else shares the machine's cores."""
    camera = Camera.frontal(size, 14.0, yaw_deg=15)
    ys, xs = np.mgrid[0:size, 0:size]
    points = np.stack([(xs + 0.5) / size * 2 - 1, (ys + 0.5) / size * 2 - 1, np.zeros_like(xs, float)], -1)
    n = size * size
    scene = Gaussians(torch.tensor(points.reshape(-1, 3), dtype=torch.float32),
                      torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), torch.full((n, 3), 1.2 / size),
                      torch.full((n,), 0.95), torch.rand(n, 3))
    render(scene, camera)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = []
        for _ in range(5):
            start = time.thread_time()
            render(scene, camera)
            times.append(time.thread_time() - start)
    finally:
        torch.set_num_threads(threads)
    return min(times)


def bench_cpu(run: Path) -> dict:
    config = build_config("tiny", overrides={"device": "cpu", "avatar.steps": 200})
    write_procedural_dataset(run, size=64, frames=config.synth.frames)
    t0 = time.perf_counter()
    psnr = None
    for event in train(run, config):
        psnr = event.metrics.get("psnr", psnr)
    return {"cpu_train_wall_s": time.perf_counter() - t0, "cpu_lifted_render_s": lifted_portrait_render_s(),
            "steps": 200, "image_size": 64,
            "num_gaussians": config.avatar.num_gaussians, "final_train_psnr": psnr}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=3000, help="steps of the full GPU run (fast preset: 3000)")
    parser.add_argument("--frames", type=int, default=24, help="frames per clip of the GPU bench dataset")
    parser.add_argument("--out", type=Path, help="JSON path (default bench/results/avatar[_cpu].json)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = bench_gpu(Path(tmp), args.steps, args.frames) if args.device == "cuda" else bench_cpu(Path(tmp))
    results = {"device": device_name(args.device), "torch": torch.__version__, **results}
    print(f"{'metric':<22}{'value':>12}{'target':>10}  ok")
    for key, value in results.items():
        if isinstance(value, float):
            target = TARGETS.get(key)
            ok = "" if target is None else ("yes" if (value >= target if key == "render_fps" else value <= target) else "NO")
            print(f"{key:<22}{value:>12.2f}{'' if target is None else target:>10}  {ok}")
        else:
            print(f"{key:<22}{str(value):>12}")
    out = args.out or ROOT / "bench" / "results" / ("avatar.json" if args.device == "cuda" else "avatar_cpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"targets": TARGETS, "results": results}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
