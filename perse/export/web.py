"""The web bundle: a trained avatar that a static page renders and edits in the browser (docs/web.md).

    DIR/index.html, viewer.js      the viewer (perse/export/web/), copied as is
    DIR/manifest.json              names, camera, constants, codes, and where each array lies in bundle.bin
    DIR/bundle.bin                 little-endian arrays, each 8-byte aligned:
      gaussians  float16 (N, 4, 4)  per Gaussian 4 texels: mean xyz + opacity logit, log scale xyz + 0,
                                    quaternion wxyz, colour logits + 0
      features   uint8 (N, F4, 4)   the decoder features (F of them, zero-padded to a multiple of 4: the
                                    categories' then the expressions' own), 8 bits each over the
                                    column's range in the manifest's feature_range
      layer<i>.weight / .bias       float16: each category's MLP, (C, in, out) and (C, out)
      expression                    float16 (Fe * outputs, E): the linear expression basis, which acts on
                                    the last Fe features

The decoder's per-Gaussian input (AvatarModel.decoder_features: features + position_features(
positional_encoding(means)), the expression features weighted by face area) depends only on canonical
positions, which never change after training; it is summed here once, so the browser only
runs the per-category MLPs (0.4M multiply-adds at the default size) and one (F x outputs) product per
Gaussian.
"""
from __future__ import annotations

import functools
import http.server
import inspect
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from perse.avatar.avatar import EXPRESSION_RANGE, Avatar
from perse.avatar.model import (
    OFFSET_UNIT,
    OUTPUTS,
)
from perse.core import render
from perse.core.camera import camera_distance, head_pose_viewmat
from perse.core.io import atomic_write_bytes, atomic_write_json

FORMAT = "perse-web/1"
ASSETS = Path(__file__).with_name("web")
VIEWER_FILES = ("index.html", "viewer.js")
ALIGN = 8


def _features(avatar: Avatar) -> np.ndarray:
    with torch.no_grad():
        features = avatar.model.decoder_features().float().cpu().numpy()
    pad = -features.shape[1] % 4
    return np.pad(features, ((0, 0), (0, pad)))


def gaussian_texels(avatar: Avatar) -> np.ndarray:
    """(N, 4, 4) float16: the canonical Gaussians, as the viewer's state texture holds them."""
    model = avatar.model
    n = model.num_gaussians
    column = lambda t: t.detach().float().cpu().numpy().reshape(n, -1)  # noqa: E731
    zeros = np.zeros((n, 1), np.float32)
    canonical = np.concatenate([
        column(model.means), column(model.opacity_logits),
        column(model.log_scales), zeros,
        column(model.quats),
        column(model.color_logits), zeros,
    ], axis=1)
    return canonical.reshape(n, -1, 4).astype(np.float16)


def feature_texels(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, F) features -> (N, F / 4, 4) uint8 texels, and each column's low end and span: a feature is
    low + span * byte / 255. Eight bits a feature keep the bundle under 8 MB at 32 features a Gaussian
    (16 bits would not); the rounding moves a decoded colour by about 1e-3 (tests/export)."""
    low = features.min(axis=0)
    span = np.maximum(features.max(axis=0) - low, 1e-8)
    quantized = np.round((features - low) / span * 255).astype(np.uint8)
    return quantized.reshape(len(features), -1, 4), low.astype(np.float32), span.astype(np.float32)


def _arrays(avatar: Avatar) -> tuple[dict[str, np.ndarray], dict[str, list[float]]]:
    """The bundle's arrays, and the features' dequantization (each column's low end and span)."""
    decoder = avatar.model.decoder
    features, low, span = feature_texels(_features(avatar))
    arrays = {"gaussians": gaussian_texels(avatar), "features": features}
    for i, (weight, bias) in enumerate(zip(decoder.weights, decoder.biases)):
        arrays[f"layer{i}.weight"] = weight.detach().cpu().numpy().astype(np.float16)
        arrays[f"layer{i}.bias"] = bias.detach().cpu().numpy()[:, 0].astype(np.float16)
    arrays["expression"] = decoder.expression_basis().detach().cpu().numpy().astype(np.float16)
    return arrays, {"low": low.tolist(), "span": span.tolist()}


def _pack(arrays: dict[str, np.ndarray]) -> tuple[bytes, dict[str, dict]]:
    chunks, index, offset = [], {}, 0
    for name, array in arrays.items():
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        index[name] = {"dtype": array.dtype.name, "shape": list(array.shape), "offset": offset, "bytes": len(data)}
        padding = -len(data) % ALIGN
        chunks += [data, bytes(padding)]
        offset += len(data) + padding
    return b"".join(chunks), index


def manifest(avatar: Avatar, index: dict[str, dict], feature_range: dict[str, list[float]]) -> dict:
    model = avatar.model
    fov = avatar.fov_deg
    return {
        "format": FORMAT,
        "count": model.num_gaussians,
        # Columns of each Gaussian's features: the categories' bases act on the first ones and the
        # expression basis on the last ones (on all of them when the decoder shares them).
        "feature_dim": model.features.shape[1],
        "feature_range": feature_range,
        "outputs": [[name, size] for name, size in OUTPUTS],
        "latent_dim": model.latent_dim,
        "code_scale": model.code_scale,
        "offset_unit": OFFSET_UNIT,
        "expression_gain": model.decoder.expression_gain,
        "categories": [{"name": name, "values": list(values), "accessory": Avatar.is_accessory(name),
                        "codes": avatar.learned_codes(name).float().cpu().tolist()}
                       for name, values in avatar.categories.items()],
        "expressions": avatar.expression_names,
        "expression_range": list(EXPRESSION_RANGE),
        # The camera of `Avatar.camera`: the frontal camera `distance` in front of the z = 0 plane,
        # orbiting the head about `pivot` (perse.core.camera.head_pose_viewmat's default).
        "camera": {"image_size": avatar.image_size, "intrinsics": avatar.intrinsics.tolist(), "fov_deg": fov,
                   "distance": camera_distance(fov),
                   "pivot": list(inspect.signature(head_pose_viewmat).parameters["pivot"].default)},
        # The torch compositor's conventions, which the viewer's shaders follow so both draw the same image.
        "render": {"eps2d": render.EPS2D, "near_plane": render.NEAR_PLANE, "alpha_min": render.ALPHA_MIN,
                   "alpha_max": render.ALPHA_MAX, "max_extent": render.MAX_EXTENT},
        "arrays": index,
    }


def write_web_bundle(folder: Path | str, avatar: Avatar) -> dict[str, int]:
    """Write the viewer and the avatar's bundle into `folder` (created if needed); returns each file's size
    in bytes. Any static HTTP server can then serve the folder (browsers refuse fetch() from file://)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays, feature_range = _arrays(avatar)
    data, index = _pack(arrays)
    atomic_write_bytes(folder / "bundle.bin", data)
    atomic_write_json(folder / "manifest.json", manifest(avatar, index, feature_range))
    for name in VIEWER_FILES:
        shutil.copyfile(ASSETS / name, folder / name)
    return {name: (folder / name).stat().st_size for name in ("bundle.bin", "manifest.json", *VIEWER_FILES)}


def read_web_bundle(folder: Path | str) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest and arrays of a bundle, as the viewer reads them (for tests and tools)."""
    folder = Path(folder)
    meta = json.loads((folder / "manifest.json").read_text())
    data = (folder / "bundle.bin").read_bytes()
    arrays = {name: np.frombuffer(data, dtype=np.dtype(entry["dtype"]).newbyteorder("<"), offset=entry["offset"],
                                  count=int(np.prod(entry["shape"]))).reshape(entry["shape"])
              for name, entry in meta["arrays"].items()}
    return meta, arrays


@contextmanager
def serve(folder: Path | str) -> Iterator[str]:
    """Serve `folder` on a free 127.0.0.1 port for the duration of the block; yields its base URL
    (for previewing a bundle, the browser test and the bench)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        """Requests are not worth a line each on the console."""
