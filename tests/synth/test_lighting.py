"""Lighting estimated on the portrait: the SH fit recovers a known light, and a real portrait relit from
one side is seen as lit from that side."""
import numpy as np
import pytest

from perse.synth.animate.lift import build_geometry
from perse.synth.lighting import (
    Lighting,
    estimate_lighting,
    fit_lighting,
    linear_to_srgb,
    sh_basis,
    srgb_to_linear,
    surface_normals,
)


def _front_hemisphere(count: int, seed: int = 0) -> np.ndarray:
    """Normals a face shows: facing the camera (n_z < 0), up to ~70 deg away from it."""
    rng = np.random.default_rng(seed)
    normals = rng.normal(size=(4 * count, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return normals[normals[:, 2] < -0.35][:count]


def test_fit_recovers_a_known_light_on_a_sphere():
    truth = np.zeros((9, 3))
    truth[0] = [1.6, 1.4, 1.2]  # warm ambient
    truth[1] = [-0.5, -0.45, -0.4]  # brighter towards -y: light from above
    truth[3] = [0.3, 0.3, 0.3]  # and from the image's right (+x)
    truth[2] = [-0.3, -0.3, -0.3]  # and from the camera's side (-z)
    truth[8] = [0.05, 0.04, 0.03]
    normals = _front_hemisphere(4000)
    lighting = fit_lighting(normals, sh_basis(normals) @ truth)
    expected = sh_basis(normals) @ truth
    expected = expected / np.median(expected, axis=0)
    # Exact where the samples are dense (within 50 deg of the camera); towards the outline the prior
    # that keeps unseen directions sane takes a share.
    dense = normals[:, 2] < -0.65
    np.testing.assert_allclose(lighting.shade(normals)[dense], expected[dense], rtol=0.05)
    # Seen from the front, the light's direction across the image is determined (its depth is not:
    # every skin normal faces the camera).
    across = lighting.direction[:2] / np.linalg.norm(lighting.direction[:2])
    assert np.degrees(np.arccos(across @ (np.array([0.3, -0.5]) / np.linalg.norm([0.3, -0.5])))) < 15


def test_fit_ignores_specular_outliers():
    normals = _front_hemisphere(3000, seed=1)
    truth = np.zeros((9, 3))
    truth[0], truth[3] = 1.5, 0.4
    colors = sh_basis(normals) @ truth
    colors[::25] += 2.0  # 4% specular spots
    clean = fit_lighting(normals, sh_basis(normals) @ truth)
    robust = fit_lighting(normals, colors)
    np.testing.assert_allclose(robust.shade(normals), clean.shade(normals), rtol=0.05)


def test_neutral_light_and_srgb_round_trip():
    normals = _front_hemisphere(10)
    np.testing.assert_allclose(Lighting.neutral().shade(normals), 1.0)
    assert isinstance(fit_lighting(normals[:3], np.ones((3, 3))), Lighting)  # too few samples: neutral
    rgb = np.linspace(0, 1, 33)[:, None].repeat(3, 1)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(rgb)), rgb, atol=1e-9)
    albedo = np.full((len(normals), 3), 0.4)
    np.testing.assert_allclose(Lighting.neutral().apply(albedo, normals), albedo, atol=1e-9)


@pytest.mark.parametrize("side", [-1.0, 1.0])
def test_a_portrait_relit_from_one_side_is_seen_lit_from_that_side(small_portraits, side):
    portrait = small_portraits["obama"]
    geometry = build_geometry(np.asarray(portrait.landmarks, np.float64), portrait.image, portrait.fov_deg)
    normals = surface_normals(geometry.points.reshape(portrait.size, portrait.size, 3))
    # Flatten the photo's own light, then light it from the image's left or right.
    light = np.array([side, -0.3, -0.6]) / np.linalg.norm([side, -0.3, -0.6])
    shading = 0.35 + 0.65 * np.clip(normals @ light, 0, 1)
    skin = srgb_to_linear(np.full(portrait.image.shape, [0.62, 0.42, 0.32]))
    relit = portrait.__class__(**{**portrait.__dict__,
                                  "image": np.round(linear_to_srgb(skin * shading[..., None]) * 255).astype(np.uint8)})
    lighting = estimate_lighting(relit, geometry)
    assert np.sign(lighting.direction[0]) == side
    lit, unlit = np.array([[side, 0.0, -0.5]]), np.array([[-side, 0.0, -0.5]])
    assert lighting.shade(lit)[0, 1] > 1.3 * lighting.shade(unlit)[0, 1]
