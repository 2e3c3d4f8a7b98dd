"""Where a stage's time goes: run stages of a finished run again, each under cProfile, in a copy of it.

    python bench/stage_profile.py runs/me --stages train,export,metrics --device cuda
    python bench/stage_profile.py runs/me --stages synth --top 40
    python bench/stage_profile.py runs/me --stages train --kernel-steps 100 --device cuda

The run folder is copied (to --work, default a temporary folder) and the profiled stages' outputs are
removed from the copy, so each stage does its full work; the original run is untouched. Prints each
stage's wall time and its top functions by cumulative and by own time (the main thread only: the
synth stage's worker threads show up as the time the main thread waits for them), and writes
bench/results/stage_profile_<stages>.json. GPU work is asynchronous: a kernel's time is charged to the
first call that waits for it (a .item(), a copy to the CPU), so read CUDA rows with that in mind.
`--kernel-steps N` therefore also times N training steps of each training phase (before and after the
interpolation loss starts) under torch.profiler, which charges every kernel to its own name.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine_info import device_name  # noqa: E402  (bench/, beside this script)

STAGES = ("synth", "train", "export", "metrics")


def stage_runner(stage: str, run: Path, config):
    """The stage's generator over `run`, after removing what it writes (so it cannot skip its work)."""
    from perse.core.paths import RunPaths

    paths = RunPaths(run)
    if stage == "synth":
        from perse.synth import run_synth

        shutil.rmtree(paths.dataset, ignore_errors=True)
        return run_synth(run, config)
    if stage == "train":
        from perse.avatar.train import train

        shutil.rmtree(paths.avatar, ignore_errors=True)
        return train(run, config)
    if stage == "export":
        from perse.export.run import export_run

        shutil.rmtree(paths.renders, ignore_errors=True)
        return export_run(run, config)
    from perse.metrics.report import write_report

    return write_report(run, config)


def top_rows(stats: pstats.Stats, key: str, count: int) -> list[dict]:
    stats.sort_stats(key)
    rows = []
    for func in stats.fcn_list[:count]:
        calls, _, own, cumulative, _ = stats.stats[func]
        file, line, name = func
        rows.append({"function": f"{Path(file).name}:{line}:{name}", "calls": calls, "own_s": round(own, 3),
                     "cumulative_s": round(cumulative, 3)})
    return rows


def profile_stage(stage: str, run: Path, config, top: int) -> dict:
    import torch

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    last = None
    for last in stage_runner(stage, run, config):
        pass
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    profiler.disable()
    seconds = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    # The stage's own account of its phases (the synth stage times its worker threads, which cProfile
    # of the main thread cannot see).
    phases = (last.metrics or {}).get("phases") if last is not None else None
    return {"stage": stage, "seconds": round(seconds, 2), "phases": phases,
            "by_cumulative": top_rows(stats, "cumulative", top), "by_own": top_rows(stats, "tottime", top)}


def kernel_profile(run: Path, config, steps: int, top: int) -> list[dict]:
    """Milliseconds a training step takes in each phase, and the operators and kernels that take them."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from perse.avatar.train import Trainer

    trainer = Trainer(run, config, config.resolved_device())
    cuda = trainer.device == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    own_us = (lambda e: e.self_device_time_total) if cuda else (lambda e: e.self_cpu_time_total)  # noqa: E731
    phases = []
    for phase, first in (("reconstruction", 0), ("interpolation", int(config.avatar.interp_start * config.avatar.steps))):
        trainer.step_index = first
        for _ in range(10):  # warm-up: allocator, kernels' first launches
            trainer.step()
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        with profile(activities=activities) as prof:
            for _ in range(steps):
                trainer.step()
            if cuda:
                torch.cuda.synchronize()
        ms = 1000 * (time.perf_counter() - start) / steps
        rows = [{"name": e.key[:90], "calls": e.count, "self_ms_per_step": round(own_us(e) / 1000 / steps, 3)}
                for e in sorted(prof.key_averages(), key=own_us, reverse=True)[:top]]
        phases.append({"phase": phase, "ms_per_step": round(ms, 2), "steps": steps, "sorted_by": sort, "top": rows})
    return phases


def main() -> int:
    from perse.config import config_from_dict
    from perse.core.paths import RunPaths

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder whose stages have all finished")
    parser.add_argument("--stages", default="train,export,metrics", help=f"comma-separated, from {', '.join(STAGES)}")
    parser.add_argument("--device", default=None, help="override the run's device (cpu or cuda)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--kernel-steps", type=int, default=0,
                        help="also profile this many training steps of each phase with torch.profiler")
    parser.add_argument("--work", type=Path, default=None, help="where to copy the run (default: a temp folder)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    config_path = RunPaths(args.run).config
    if not config_path.exists():
        parser.error(f"{config_path} is missing: profile a run folder that `perse run` has finished")
    config = config_from_dict(json.loads(config_path.read_text()))
    if args.device:
        config.device = args.device
    work = args.work or Path(tempfile.mkdtemp(prefix="perse-profile-"))
    copy = work / args.run.name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(args.run, copy)
    results = []
    for stage in stages:
        result = profile_stage(stage, copy, config, args.top)
        results.append(result)
        print(f"\n== {stage}: {result['seconds']:.2f} s" + (f"  phases {result['phases']}" if result["phases"] else ""))
        print(f"{'cumulative s':>12} {'own s':>8} {'calls':>8}  function")
        for row in result["by_cumulative"]:
            print(f"{row['cumulative_s']:>12.3f} {row['own_s']:>8.3f} {row['calls']:>8}  {row['function']}")
        print("-- by own time")
        for row in result["by_own"][:10]:
            print(f"{row['cumulative_s']:>12.3f} {row['own_s']:>8.3f} {row['calls']:>8}  {row['function']}")
    kernels = kernel_profile(copy, config, args.kernel_steps, args.top) if args.kernel_steps > 0 else None
    for phase in kernels or []:
        print(f"\n== training steps, {phase['phase']}: {phase['ms_per_step']:.2f} ms a step "
              f"(under the profiler, {phase['steps']} steps)")
        for row in phase["top"]:
            print(f"{row['self_ms_per_step']:>10.3f} ms {row['calls']:>7}  {row['name']}")
    out = args.out or ROOT / "bench" / "results" / f"stage_profile_{'_'.join(stages)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"bench": "profile", "run": args.run.name, "device": device_name(config.resolved_device()),
                               "preset": config.preset, "stages": results, "kernel_profile": kernels},
                              indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
