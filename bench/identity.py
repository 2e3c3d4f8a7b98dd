"""Identity scoring speed: the dlib scorer (torch network) against dlib's own CPU network, per face.

    .venv/bin/python bench/identity.py [--frames 256] [--device auto|cpu|cuda]

The synthesis stage scores every generated frame (hundreds per run) against the portrait. Frames here
are a shared portrait ingested at 512 px, with its landmarks, as the animator provides them. Prints a
table and writes bench/results/identity.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine_info import device_name, machine  # noqa: E402  (bench/, beside this script)

SOURCE = ROOT / "assets" / "obama.jpg"
NATIVE_FACES = 16  # dlib's own network is slow: time it on a few faces only


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "identity.json")
    args = parser.parse_args()

    import dlib
    import numpy as np
    import torch

    from perse.config import build_config
    from perse.ingest import ingest
    from perse.synth.identity import make_scorer
    from perse.synth.identity.dlib import RECOGNITION_MODEL, model_dir

    config = build_config("fast", overrides={"device": args.device})
    portrait = ingest(SOURCE, config)
    scorer = make_scorer("dlib", config)
    frames, landmarks = [portrait.image] * args.frames, [portrait.landmarks] * args.frames
    scorer.embed_batch(frames[:2], landmarks[:2])  # warm-up: first-call allocations, CUDA context
    if scorer.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    ours = scorer.embed_batch(frames, landmarks)
    if scorer.device.startswith("cuda"):
        torch.cuda.synchronize()
    ours_s = time.perf_counter() - start

    chips = [scorer.chip(portrait.image, portrait.landmarks.astype(np.float64))] * NATIVE_FACES
    native = dlib.face_recognition_model_v1(str(model_dir() / RECOGNITION_MODEL))
    start = time.perf_counter()
    reference = np.array([np.array(v) for v in native.compute_face_descriptor(chips)])
    native_s = time.perf_counter() - start

    result = {
        "frames": args.frames,
        "frame_size": portrait.size,
        "device": device_name(scorer.device),
        "torch_threads": torch.get_num_threads(),
        "ours_total_s": round(ours_s, 3),
        "ours_ms_per_face": round(1000 * ours_s / args.frames, 2),
        "dlib_native_ms_per_face": round(1000 * native_s / NATIVE_FACES, 2),
        "speedup": round((native_s / NATIVE_FACES) / (ours_s / args.frames), 1),
        "max_abs_difference_vs_dlib": float(np.abs(ours[0] - reference[0]).max()),
        "machine": machine(),
    }
    print(f"identity scoring of {args.frames} frames ({portrait.size} px, landmarks given) on {result['device']}")
    for key in ("ours_total_s", "ours_ms_per_face", "dlib_native_ms_per_face", "speedup",
                "max_abs_difference_vs_dlib"):
        print(f"{key:<30}{result[key]:>12}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
