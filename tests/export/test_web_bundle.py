"""The web bundle carries everything the browser's decoder needs: decoding it in numpy, the way
perse/export/web/viewer.js does, gives the avatar's own Gaussians for any look and expression."""
from __future__ import annotations

import numpy as np
import torch

from perse.avatar.avatar import Avatar
from perse.cli import main
from perse.export.splat import read_splat
from perse.export.web import FORMAT, read_web_bundle, write_web_bundle


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _decode_like_the_viewer(meta: dict, arrays: dict, positions: list[float], expression: list[float]) -> dict:
    """viewer.js's Decoder.basis and vertex shader, in numpy, from the bundle alone."""
    outputs = sum(size for _, size in meta["outputs"])
    f = meta["feature_dim"]
    total = np.zeros(f * outputs)
    layers = sum(1 for name in arrays if name.endswith(".weight"))
    for c, (category, p) in enumerate(zip(meta["categories"], positions)):
        codes = np.asarray(category["codes"])
        low = int(np.floor(p))
        high = min(low + 1, len(codes) - 1)
        h = ((1 - (p - low)) * codes[low] + (p - low) * codes[high]) * meta["code_scale"]
        for i in range(layers):
            h = h @ arrays[f"layer{i}.weight"][c].astype(np.float64) + arrays[f"layer{i}.bias"][c]
            h = np.maximum(h, 0) if i < layers - 1 else h
        total[:len(h)] += h
    expression_basis = arrays["expression"].astype(np.float64) @ (np.asarray(expression) * meta["expression_gain"])
    total[len(total) - len(expression_basis):] += expression_basis
    texels = arrays["gaussians"].astype(np.float64)
    span = meta["feature_range"]
    features = np.asarray(span["low"]) + np.asarray(span["span"]) * arrays["features"].reshape(len(texels), -1) / 255
    deltas = features[:, :f] @ total.reshape(f, outputs)
    quats = texels[:, 2] + deltas[:, 7:11]
    return {"means": texels[:, 0, :3] + meta["offset_unit"] * deltas[:, 11:14],
            "quats": quats / np.linalg.norm(quats, axis=1, keepdims=True),
            "scales": np.exp(texels[:, 1, :3] + deltas[:, 4:7]),
            "opacities": _sigmoid(texels[:, 0, 3] + deltas[:, 3]),
            "colors": _sigmoid(texels[:, 3, :3] + deltas[:, :3])}


def test_the_bundle_decodes_to_the_avatars_gaussians(trained_run, tmp_path):
    avatar = Avatar.load(trained_run, "cpu")
    sizes = write_web_bundle(tmp_path / "web", avatar)
    assert set(sizes) == {"bundle.bin", "manifest.json", "index.html", "viewer.js"}
    meta, arrays = read_web_bundle(tmp_path / "web")
    assert meta["format"] == FORMAT and meta["count"] == avatar.model.num_gaussians
    assert [c["name"] for c in meta["categories"]] == list(avatar.categories)
    assert [c["values"] for c in meta["categories"]] == list(avatar.categories.values())
    assert meta["expressions"] == avatar.expression_names
    # Half-precision Gaussians and weights, 8-bit features: 56 bytes a Gaussian at the default 24 features.
    assert arrays["gaussians"].dtype == np.float16 and arrays["features"].dtype == np.uint8
    assert meta["feature_dim"] == avatar.model.features.shape[1]
    per_gaussian = ("gaussians", "features")
    assert sizes["bundle.bin"] < (32 + 4 * arrays["features"].shape[1]) * meta["count"] + 4 * sum(
        a.size for n, a in arrays.items() if n not in per_gaussian)

    look = {"hair": 1.5, "glasses": 1.0}
    positions = [look.get(name, 0.0) for name in avatar.categories]
    expression = [0.5 if i == 0 else 0.0 for i in range(len(avatar.expression_names))]
    latent = torch.cat([avatar.slider_code(name, p) for name, p in zip(avatar.categories, positions)])
    want = avatar.gaussians(latent, expression).detach()
    got = _decode_like_the_viewer(meta, arrays, positions, expression)
    # The source look differs from this one, so the comparison sees the decoder at work.
    assert not np.allclose(avatar.gaussians().colors.detach().numpy(), want.colors.numpy(), atol=0.02)
    np.testing.assert_allclose(got["means"], want.means.numpy(), atol=2e-3)
    np.testing.assert_allclose(got["colors"], want.colors.numpy(), atol=1e-2)
    np.testing.assert_allclose(got["opacities"], want.opacities.numpy(), atol=1e-2)
    np.testing.assert_allclose(got["scales"], want.scales.numpy(), rtol=2e-2, atol=1e-5)
    sign = np.sign((got["quats"] * want.quats.numpy()).sum(1, keepdims=True))
    unit = want.quats.numpy() / np.linalg.norm(want.quats.numpy(), axis=1, keepdims=True)
    # 8-bit features turn a few Gaussians by up to ~3 degrees (quaternion components off by up to 0.05);
    # a typical one by a tenth of that.
    error = np.abs(got["quats"] * sign - unit).max(1)
    assert error.max() < 5e-2 and np.median(error) < 5e-3


def test_perse_export_writes_splat_and_web_and_shows_sizes(trained_run, tmp_path, capsys):
    out = tmp_path / "look.splat"
    assert main(["export", str(trained_run), "--splat", str(out), "--set", "glasses=1",
                 "--web", str(tmp_path / "web")]) == 0
    printed = capsys.readouterr().out
    assert f"{out}  {out.stat().st_size / 1e6:.2f} MB" in printed
    assert "index.html" in printed and "Gaussians" in printed
    avatar = Avatar.load(trained_run, "cpu")
    assert len(read_splat(out)) == avatar.model.num_gaussians
    assert (tmp_path / "web" / "index.html").is_file() and (tmp_path / "web" / "viewer.js").is_file()
    assert main(["export", str(trained_run), "--splat", str(tmp_path / "x.ply")]) == 2
    assert "must end in .splat" in capsys.readouterr().err
    assert main(["export", str(trained_run)]) == 2
    assert "--splat FILE.splat" in capsys.readouterr().err

