"""Web viewer bench: bundle size and browser timings for a 100k-Gaussian avatar (issue 12's targets:
bundle <= 8 MB, >= 30 FPS while orbiting, <= 50 ms from slider to updated splat on a laptop GPU).

The avatar is an AvatarModel at the default (`fast`) decoder size with `--gaussians` canonical
Gaussians on a head-sized ball and random decoder weights: the bundle's layout and the viewer's work
depend on the counts and sizes, not on what training learned. With `--run`, a trained run's bundle is
measured too and its bytes per Gaussian extrapolated to `--gaussians`.

Timings come from Chromium with whatever WebGL this machine has (SwiftShader, i.e. the CPU, where
there is no GPU: far slower than any laptop GPU; the machine is recorded with the figures):
  frame        yaw changed, depth sort + draw, waited for with gl.finish (what orbiting costs)
  slider       setLook (MLPs + offsets for the sort) + frame: slider move to updated splat
  decode/sort  the CPU parts of those, as the viewer measures them

    .venv/bin/python bench/web.py [--run runs/obama] [--gaussians 100000]   # writes bench/results/web.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine_info import device_name, machine  # noqa: E402  (bench/, beside this script)

from perse.avatar.avatar import Avatar  # noqa: E402
from perse.avatar.model import AvatarModel  # noqa: E402
from perse.config import build_config  # noqa: E402
from perse.core.camera import intrinsics  # noqa: E402
from perse.core.expressions import EXPRESSION_NAMES  # noqa: E402
from perse.export.web import serve, write_web_bundle  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
WEBGL_ARGS = ["--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
              "--ignore-gpu-blocklist"]
BUNDLE_TARGET_MB = 8.0
EXPRESSIONS = list(EXPRESSION_NAMES)


def synthetic_avatar(n: int, values: int, size: int = 512, fov_deg: float = 14.0) -> Avatar:
    config = build_config("fast")
    categories = {name: ["source"] + [f"{name}_{i}" for i in range(1, values + 1)] for name in config.synth.categories}
    generator = torch.Generator().manual_seed(0)
    directions = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=1)
    points = directions * 0.4 * torch.rand(n, 1, generator=generator) ** 0.3 + torch.tensor([0.0, 0.0, 0.35])
    model = AvatarModel(config.avatar, {k: len(v) for k, v in categories.items()}, len(EXPRESSIONS), points,
                        torch.rand(n, 3, generator=generator), torch.full((n, 1), 0.01))
    with torch.no_grad():
        for weight in [*model.decoder.weights, model.decoder.expression.weight]:
            weight.normal_(0.0, 0.02, generator=generator)
    return Avatar(model, config, categories, EXPRESSIONS, size, intrinsics(size, fov_deg))


def browser_timings(folder: Path, size: int, frames: int) -> dict:
    from playwright.sync_api import sync_playwright

    script = """async ([frames]) => {
      const gl = viewer.gl, out = {frame: [], slider: [], decode: [], sort: []};
      const finish = () => { const px = new Uint8Array(4); gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px); };
      for (let i = 0; i < frames; i++) {
        const t = performance.now();
        viewer.yaw = -30 + 60 * i / frames; viewer.draw(); finish();
        out.frame.push(performance.now() - t); out.sort.push(viewer.timings.sort);
      }
      for (let i = 0; i < frames; i++) {
        const t = performance.now();
        const look = viewer.positions.map((p, c) => c === 0 ? (i % 2) * 1.5 : p);
        viewer.setLook(look, viewer.expression); viewer.draw(); finish();
        out.slider.push(performance.now() - t); out.decode.push(viewer.timings.decode);
      }
      const info = gl.getExtension("WEBGL_debug_renderer_info");
      out.renderer = info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
      return out;
    }"""
    with serve(folder) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=WEBGL_ARGS)
        page = browser.new_page()
        page.goto(f"{url}/index.html?size={size}")
        page.wait_for_function("window.viewer instanceof SplatViewer", timeout=300_000)
        load_ms = page.evaluate("performance.now()")
        raw = page.evaluate(script, [frames])
        version = browser.version
        browser.close()
    median = {key: round(statistics.median(raw[key]), 2) for key in ("frame", "slider", "decode", "sort")}
    return {"renderer": raw["renderer"], "chromium": version, "canvas_px": size, "frames": frames,
            "page_ready_ms": round(load_ms), "median_ms": median, "fps_orbit": round(1000 / median["frame"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="also measure this trained run's bundle")
    parser.add_argument("--gaussians", type=int, default=100_000)
    parser.add_argument("--values", type=int, default=12, help="looks per category besides the source")
    parser.add_argument("--size", type=int, default=512, help="canvas pixels for the timings")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "web.json")
    args = parser.parse_args()

    result = {"machine": {**machine(), "device": device_name("cpu"),
                          "gpu": subprocess.run(["sh", "-c", "nvidia-smi -L 2>/dev/null || echo none"],
                                                capture_output=True, text=True, check=False).stdout.strip()},
              "target_bundle_mb": BUNDLE_TARGET_MB}
    with tempfile.TemporaryDirectory() as tmp:
        avatar = synthetic_avatar(args.gaussians, args.values)
        sizes = write_web_bundle(Path(tmp) / "big", avatar)
        result["synthetic"] = {"gaussians": args.gaussians, "categories": len(avatar.categories),
                               "values_per_category": args.values + 1,
                               "decoder": {k: getattr(avatar.config.avatar, k) for k in
                                           ("latent_dim", "feature_dim", "decoder_width", "decoder_layers")},
                               "files_bytes": sizes, "total_mb": round(sum(sizes.values()) / 1e6, 3)}
        print(json.dumps(result["synthetic"], indent=1))
        if args.run:
            trained = Avatar.load(args.run, "cpu")
            small = write_web_bundle(Path(tmp) / "run", trained)
            n = trained.model.num_gaussians
            per = json.loads((Path(tmp) / "run" / "manifest.json").read_text())["arrays"]["gaussians"]["bytes"] // n
            result["run"] = {"run": str(args.run), "gaussians": n, "files_bytes": small, "bytes_per_gaussian": per,
                             "extrapolated_mb_at": {str(args.gaussians): round(
                                 (sum(small.values()) + per * (args.gaussians - n)) / 1e6, 3)}}
            print(json.dumps(result["run"], indent=1))
        result["browser"] = browser_timings(Path(tmp) / "big", args.size, args.frames)
        print(json.dumps(result["browser"], indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
