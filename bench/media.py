"""Media bench: how long `write_video` takes to encode an interpolation-sized clip to GIF and MP4.

The clip is render-like: assets/obama.jpg cropped square at 512 px, drifting sideways and changing tint
over 24 float frames, the way an interpolation GIF's frames arrive from the renderer. Each format is
encoded `--repeats` times; the table shows the median wall time and the file size beside the targets
(GIF <= 1 s, MP4 <= 0.5 s) and the PSNR of the decoded file against the frames. For the record, the
same frames also go through the previous paths: GIF through imageio.v3 to Pillow, which quantizes every
frame to its own palette, and MP4 with x264's default preset (medium). Needs no GPU.

    .venv/bin/python bench/media.py                 # writes bench/results/media.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine_info import device_name, machine  # noqa: E402  (bench/, beside this script)

from perse.core.io import to_uint8  # noqa: E402
from perse.export.video import write_video  # noqa: E402

TARGET_SECONDS = {"gif": 1.0, "mp4": 0.5}
FPS = 24


def clip(frames: int, size: int) -> list[np.ndarray]:
    """A portrait that slides by up to 1/16 of the frame and warms, then cools, over the clip: every
    pixel changes from frame to frame, as it does along a rendered interpolation."""
    photo = Image.open(ROOT / "assets" / "obama.jpg").convert("RGB")
    side = min(photo.size)
    left, top = (photo.width - side) // 2, (photo.height - side) // 2
    base = np.asarray(photo.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS),
                      dtype=np.float32) / 255.0
    out = []
    for i in range(frames):
        phase = 2 * np.pi * i / frames
        shifted = np.roll(base, round(size / 16 * np.sin(phase)), axis=1)
        tint = np.array([1 + 0.12 * np.sin(phase), 1.0, 1 - 0.12 * np.sin(phase)], dtype=np.float32)
        out.append(np.clip(shifted * tint, 0.0, 1.0))
    return out


def write_gif_per_frame_palettes(path: Path, frames: list[np.ndarray], fps: int = FPS) -> Path:
    """The GIF path write_video replaced: imageio.v3 hands the frames to Pillow, which picks a palette
    for every frame on its own."""
    import imageio.v3 as iio

    iio.imwrite(path, np.stack([to_uint8(f) for f in frames]), duration=round(1000 / fps), loop=0)
    return path


def write_mp4_medium_preset(path: Path, frames: list[np.ndarray], fps: int = FPS) -> Path:
    """The MP4 call write_video made before it chose a preset: x264's defaults (medium, CRF 23)."""
    import imageio.v2 as iio2

    iio2.mimwrite(path, np.stack([to_uint8(f) for f in frames]), format="FFMPEG", fps=fps, codec="libx264",
                  pixelformat="yuv420p", macro_block_size=1)
    return path


def psnr(path: Path, frames: list[np.ndarray]) -> float:
    """Decoded file against the uint8 frames it was written from, over the whole clip."""
    import imageio.v3 as iio

    decoded = iio.imread(path, index=None)[..., :3].astype(np.float64)
    mse = np.mean((decoded - np.stack([to_uint8(f) for f in frames])) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


def measure(write, path: Path, frames: list[np.ndarray], repeats: int) -> dict:
    seconds = []
    for _ in range(repeats):
        path.unlink(missing_ok=True)
        start = time.perf_counter()
        write(path, frames)
        seconds.append(time.perf_counter() - start)
    return {"seconds_median": round(statistics.median(seconds), 3), "seconds_min": round(min(seconds), 3),
            "seconds_all": [round(s, 3) for s in seconds], "file_kb": round(path.stat().st_size / 1024, 1),
            "psnr_db": round(psnr(path, frames), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "media.json")
    args = parser.parse_args()

    frames = clip(args.frames, args.size)
    cases = [("gif", "write_video (one palette)", write_video),
             ("gif", "before: imageio + Pillow, a palette per frame", write_gif_per_frame_palettes),
             ("mp4", "write_video (H.264 veryfast, imageio-ffmpeg)", write_video),
             ("mp4", "before: H.264 medium preset", write_mp4_medium_preset)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (fmt, method, write) in enumerate(cases):
            row = {"format": fmt, "method": method, "frames": args.frames, "size_px": args.size,
                   **measure(write, Path(tmp) / f"clip{i}.{fmt}", frames, args.repeats)}
            # Only the shipped path answers to the target; the old one is there to show the speed-up.
            target = TARGET_SECONDS[fmt] if write is write_video else None
            row["target_seconds"] = target
            row["meets_target"] = None if target is None else row["seconds_median"] <= target
            results.append(row)

    device = device_name("cpu")
    print(f"\nMedia writing, {args.frames} frames at {args.size} px, median of {args.repeats}, {device}")
    print(f"{'format':<7}{'method':<48}{'frames':>7}{'px':>6}{'s median':>10}{'file KB':>10}{'PSNR dB':>9}"
          f"{'target s':>10}  ok")
    for r in results:
        ok = "" if r["meets_target"] is None else ("yes" if r["meets_target"] else "NO")
        print(f"{r['format']:<7}{r['method']:<48}{r['frames']:>7}{r['size_px']:>6}{r['seconds_median']:>10.3f}"
              f"{r['file_kb']:>10.1f}{r['psnr_db']:>9.2f}{r['target_seconds'] or '':>10}  {ok}")
    speedups = {}
    for fmt, new, old in (("gif", results[0], results[1]), ("mp4", results[2], results[3])):
        speedups[fmt] = round(old["seconds_median"] / new["seconds_median"], 1)
        print(f"{fmt.upper()}: {speedups[fmt]:.1f}x faster than before, {new['file_kb'] / old['file_kb']:.2f}x "
              f"the file size, {new['psnr_db'] - old['psnr_db']:+.2f} dB")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "bench": "media", "device": device, "machine": machine(), "date": time.strftime("%Y-%m-%d"),
        "clip": {"source": "assets/obama.jpg", "frames": args.frames, "size_px": args.size, "fps": FPS,
                 "repeats": args.repeats},
        "targets_seconds": TARGET_SECONDS,
        "meets_targets": all(r["meets_target"] for r in results if r["meets_target"] is not None),
        "speedup_vs_before": speedups,
        "results": results,
    }, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
