"""The portrait's lighting, estimated once and shared by everything the embedded editor adds in 3D.

Skin is close to Lambertian and of one albedo over the face, so its colour at each pixel is that albedo
times the irradiance arriving from the direction of the surface normal. Irradiance from any distant
environment is smooth in the normal: order-2 real spherical harmonics (9 coefficients per RGB channel)
hold about 99% of it (Ramamoorthi & Hanrahan 2001). Fitting those 9 x 3 coefficients to the face skin's
linear-RGB colours against the normals of the lifted surface gives a lighting model that an accessory,
hair or a beard can be shaded with, so they look lit by the same light as the face.

Stable API (imported by the accessory and hair/beard shaders):
- `estimate_lighting(portrait, geometry) -> Lighting`: fit on `portrait.masks["face_skin"]`, with the
  normals of the lift animator's surface (`perse.synth.animate.lift.HeadGeometry`). A portrait with too
  little visible skin gets neutral light (every gain 1).
- `Lighting.shade(normals) -> gains`: unit world normals (N, 3) (perse.core.camera axes: x right, y
  down, z away from the camera; a surface facing the camera has n_z < 0) -> (N, 3) multiplicative gains
  on LINEAR RGB. A gain of 1 is the light the face's median skin pixel receives, so a material's
  catalog colour is what it looks like where it faces the light as the face does.
- `Lighting.apply(albedo, normals) -> rgb`: sRGB albedo (N, 3) in [0, 1] shaded -> sRGB in [0, 1].
- `Lighting.direction`: (3,) unit vector towards the brightest light (specular highlights, cast shadows).
- `fit_lighting(normals, colors, weights=None) -> Lighting` and `sh_basis(normals) -> (N, 9)`: the fit on
  any samples (linear RGB colours), for callers with their own surface.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from perse.ingest.portrait import Portrait
    from perse.synth.animate.lift import HeadGeometry

# Gains outside this range would come from extrapolating the fit to normals the face never shows
# (facing down or away): clamp to a dim ambient floor and a modest over-exposure.
MIN_GAIN, MAX_GAIN = 0.25, 1.6
# The skin shows only normals facing the camera, where the constant, z and z^2 harmonics are nearly
# collinear: alone, the fit can put a bright light behind the head. Virtual samples over the whole
# sphere, worth PRIOR_WEIGHT of the data, hold unseen directions to a generic daylight prior (light
# from above, a darker ground: PRIOR_SKY) at the skin's mean colour; where the skin shows, data wins.
PRIOR_WEIGHT = 0.1
PRIOR_SKY = 0.35
PRIOR_SAMPLES = 256
# Iteratively reweighted fits downweight residuals beyond this many robust spreads (specular spots,
# stubble, shadowed pores), which are not diffuse shading.
ROBUST_SPREADS = 2.5
ROBUST_ITERATIONS = 3
MIN_SAMPLES = 64
# Skin pixels must be this sure of being skin and person.
SKIN_CONFIDENCE = 0.9


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    rgb = np.clip(np.asarray(rgb, np.float64), 0.0, 1.0)
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.clip(np.asarray(rgb, np.float64), 0.0, 1.0)
    return np.where(rgb <= 0.0031308, rgb * 12.92, 1.055 * rgb ** (1 / 2.4) - 0.055)


def sh_basis(normals: np.ndarray) -> np.ndarray:
    """Real spherical harmonics up to order 2 at unit normals (N, 3) -> (N, 9)."""
    x, y, z = (np.asarray(normals, np.float64)[:, k] for k in range(3))
    return np.stack([
        np.full_like(x, 0.282095),
        0.488603 * y, 0.488603 * z, 0.488603 * x,
        1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1), 1.092548 * x * z,
        0.546274 * (x * x - y * y),
    ], axis=1)


@dataclass(frozen=True)
class Lighting:
    coeffs: np.ndarray  # (9, 3) SH coefficients of skin-albedo x irradiance, linear RGB
    reference: np.ndarray  # (3,) that product at the face's median skin pixel: where gains are 1

    @classmethod
    def neutral(cls) -> "Lighting":
        coeffs = np.zeros((9, 3))
        coeffs[0] = 1.0 / 0.282095
        return cls(coeffs, np.ones(3))

    def shade(self, normals: np.ndarray) -> np.ndarray:
        normals = np.asarray(normals, np.float64)
        normals = normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
        return np.clip(sh_basis(normals) @ self.coeffs / self.reference, MIN_GAIN, MAX_GAIN)

    def apply(self, albedo: np.ndarray, normals: np.ndarray) -> np.ndarray:
        return linear_to_srgb(srgb_to_linear(albedo) * self.shade(normals))

    @property
    def direction(self) -> np.ndarray:
        # Band 1 is the irradiance's linear (dipole) part; its luminance points at the light.
        y, z, x = self.coeffs[1:4] @ np.array([0.2126, 0.7152, 0.0722])
        vector = np.array([x, y, z])
        norm = np.linalg.norm(vector)
        return vector / norm if norm > 1e-9 else np.array([0.0, 0.0, -1.0])


def fit_lighting(normals: np.ndarray, colors: np.ndarray, weights: np.ndarray | None = None) -> Lighting:
    """Least-squares SH fit of linear-RGB `colors` (N, 3) seen at unit `normals` (N, 3), robust to outliers."""
    basis = sh_basis(normals)
    colors = np.asarray(colors, np.float64)
    base = np.ones(len(basis)) if weights is None else np.asarray(weights, np.float64)
    if len(basis) < MIN_SAMPLES or base.sum() <= 0:
        return Lighting.neutral()
    sphere = _fibonacci_sphere(PRIOR_SAMPLES)
    prior_basis = sh_basis(sphere)
    prior = np.average(colors, axis=0, weights=base)[None] * (1 - PRIOR_SKY * sphere[:, 1:2])
    prior_weight = np.full(PRIOR_SAMPLES, PRIOR_WEIGHT * base.sum() / PRIOR_SAMPLES)
    robust = np.ones_like(base)
    for _ in range(ROBUST_ITERATIONS):
        w = np.concatenate([base * robust, prior_weight])
        stacked = np.concatenate([basis, prior_basis])
        coeffs = np.linalg.lstsq(stacked * np.sqrt(w)[:, None], np.concatenate([colors, prior]) * np.sqrt(w)[:, None],
                                 rcond=None)[0]
        residual = np.linalg.norm(basis @ coeffs - colors, axis=1)
        spread = 1.4826 * np.median(residual[base > 0]) + 1e-6
        robust = 1.0 / np.maximum(1.0, residual / (ROBUST_SPREADS * spread))
    fitted = basis @ coeffs
    reference = np.maximum(np.median(fitted[base > 0], axis=0), 1e-4)
    return Lighting(coeffs, reference)


def _fibonacci_sphere(count: int) -> np.ndarray:
    """`count` nearly uniform unit vectors."""
    k = np.arange(count) + 0.5
    y = 1 - 2 * k / count
    radius = np.sqrt(1 - y * y)
    phi = np.pi * (3 - np.sqrt(5)) * k
    return np.stack([radius * np.cos(phi), y, radius * np.sin(phi)], axis=1)


def surface_normals(points: np.ndarray) -> np.ndarray:
    """Unit normals (G, G, 3) of a grid of world points (G, G, 3), facing the camera (n_z < 0)."""
    du = np.gradient(points, axis=1)
    dv = np.gradient(points, axis=0)
    normals = np.cross(du, dv)
    normals = normals * np.where(normals[..., 2:] > 0, -1.0, 1.0)
    return normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)


def estimate_lighting(portrait: "Portrait", geometry: "HeadGeometry") -> Lighting:
    g, s = geometry.grid, geometry.stride
    block = lambda a: np.asarray(a, np.float64).reshape(g, s, g, s, *a.shape[2:]).mean(axis=(1, 3))  # noqa: E731
    image = np.asarray(portrait.image)
    image = image / 255.0 if image.dtype == np.uint8 else image
    skin = block(portrait.masks["face_skin"]) * block(portrait.matte)
    sure = (skin >= SKIN_CONFIDENCE).reshape(-1)
    normals = surface_normals(geometry.points.reshape(g, g, 3)).reshape(-1, 3)
    colors = srgb_to_linear(block(image)).reshape(-1, 3)
    return fit_lighting(normals[sure], colors[sure])
