"""A teaching-phantom chest radiograph: torso, lungs, mediastinum, heart, ribs, clavicles, diaphragm.

All geometry is drawn on normalised coordinates ``u`` (column / width) and ``v`` (row / height),
so the same case can be rendered at any resolution. Brightness follows radiographic convention:
dense tissue bright, air dark. Image left is the patient's right.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

SIDES = ("right", "left")  # patient sides; "right" is drawn on the image's left half


@dataclasses.dataclass(frozen=True)
class AnatomyParams:
    """Random shape parameters of one phantom chest."""

    lung_center_offset: float  # horizontal distance of each lung centre from the midline (u)
    lung_half_width: float
    lung_top: float  # apex (v)
    dome: float  # diaphragm dome height at the lung centre (v)
    heart_scale: float  # 1 = normal; > 1.2 = enlarged cardiac silhouette
    heart_center: tuple[float, float]  # (u, v)
    rib_spacing: float
    rib_phase: float
    exposure: float  # global brightness of soft tissue
    tilt: float  # small left-right asymmetry of the lungs (v)

    @classmethod
    def sample(cls, rng: np.random.Generator, heart_scale: float = 1.0) -> AnatomyParams:
        return cls(
            lung_center_offset=rng.uniform(0.18, 0.21),
            lung_half_width=rng.uniform(0.135, 0.155),
            lung_top=rng.uniform(0.10, 0.14),
            dome=rng.uniform(0.68, 0.74),
            heart_scale=heart_scale,
            heart_center=(rng.uniform(0.53, 0.56), rng.uniform(0.60, 0.64)),
            rib_spacing=rng.uniform(0.062, 0.072),
            rib_phase=rng.uniform(0.0, 1.0),
            exposure=rng.uniform(0.42, 0.5),
            tilt=rng.uniform(-0.015, 0.015),
        )


@dataclasses.dataclass
class Anatomy:
    """Rendered anatomy: the noise-free image and the structures' masks."""

    image: np.ndarray  # float64, roughly [0, 1]
    lungs: dict[str, np.ndarray]  # side -> bool mask
    heart: np.ndarray
    vessels: np.ndarray  # lung-marking texture (added inside the lungs), for findings to remove
    u: np.ndarray
    v: np.ndarray

    @property
    def lung_mask(self) -> np.ndarray:
        return self.lungs["right"] | self.lungs["left"]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation (``sigma`` in pixels)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return field / max(float(field.std()), 1e-12)


def band(distance: np.ndarray, half_thickness: float) -> np.ndarray:
    """A soft band profile: 1 on the centre line, falling to 0 at ``half_thickness``."""
    return np.clip(1.0 - (distance / half_thickness) ** 2, 0.0, 1.0)


def heart_mask(u: np.ndarray, v: np.ndarray, params: AnatomyParams) -> np.ndarray:
    cu, cv = params.heart_center
    ru, rv = 0.15 * params.heart_scale, 0.12 * (1 + 0.5 * (params.heart_scale - 1))
    return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1.0


def diaphragm(u: np.ndarray, params: AnatomyParams, side: str) -> np.ndarray:
    """Row (v) of the diaphragm under each column: a dome, lowest at the costophrenic angle."""
    sign = -1.0 if side == "right" else 1.0
    center = 0.5 + sign * params.lung_center_offset
    lift = -0.02 if side == "right" else 0.0  # the right hemidiaphragm sits higher
    return params.dome + lift + sign * params.tilt + 1.6 * (u - center) ** 2 + 0.25 * sign * (u - center) * 0.3


def render_anatomy(rng: np.random.Generator, shape: tuple[int, int], params: AnatomyParams) -> Anatomy:
    """Draw one phantom chest at ``shape`` = (height, width)."""
    height, width = shape
    v, u = np.meshgrid((np.arange(height) + 0.5) / height, (np.arange(width) + 0.5) / width, indexing="ij")

    body = ((u - 0.5) / 0.48) ** 2 + ((v - 0.58) / 0.62) ** 6 <= 1.0
    image = np.where(body, params.exposure - 0.08 * np.clip(0.25 - v, 0, None) / 0.25, 0.03)

    heart = heart_mask(u, v, params)
    lungs: dict[str, np.ndarray] = {}
    for side in SIDES:
        sign = -1.0 if side == "right" else 1.0
        center = 0.5 + sign * params.lung_center_offset
        bottom = diaphragm(u, params, side)
        mid = (params.lung_top + params.dome) / 2
        half_height = (params.dome + 0.1 - params.lung_top) / 2
        width_at = params.lung_half_width * np.sqrt(np.clip((v - params.lung_top) / 0.22, 0.0, 1.0))
        lateral_bulge = 1.0 + 0.08 * np.sin(np.pi * np.clip((v - params.lung_top) / (2 * half_height), 0, 1))
        shape_ok = np.abs(u - center) <= width_at * lateral_bulge
        apex = np.abs((v - mid) / half_height) <= 1.0
        medial = np.abs(u - 0.5) >= 0.045 + 0.02 * np.clip((v - 0.3) / 0.4, 0, 1)
        lungs[side] = shape_ok & apex & medial & (v <= bottom) & ~heart

    lung_any = lungs["right"] | lungs["left"]
    hilum_distance = np.minimum(np.hypot(u - 0.42, v - 0.45), np.hypot(u - 0.58, v - 0.45))
    ridges = np.exp(-((smooth_noise(rng, shape, 3.0 * width / 256) / 0.18) ** 2))
    vessels = ridges * np.clip(1.0 - hilum_distance / 0.35, 0.25, 1.0) * 0.14
    image = np.where(lung_any, 0.13 + vessels, image)

    abdomen = body & ~lung_any & (v > 0.55) & (np.abs(u - 0.5) < 0.46)
    for side in SIDES:
        half = (u < 0.5) if side == "right" else (u >= 0.5)
        abdomen &= ~(half & (v < diaphragm(u, params, side)))
    image = np.where(abdomen, params.exposure + 0.14, image)

    mediastinum = (np.abs(u - 0.5) < 0.05 + 0.03 * np.clip((v - 0.25) / 0.3, 0, 1)) & body
    image = np.where(mediastinum, np.maximum(image, 0.62), image)
    image = np.where(heart, np.maximum(image, 0.6), image)

    vertebra = 0.03 * (0.5 + 0.5 * np.cos(2 * np.pi * v / 0.045)) * (np.abs(u - 0.5) < 0.03)
    image = image + vertebra * mediastinum

    ribs = np.zeros(shape)
    for side in SIDES:
        sign = -1.0 if side == "right" else 1.0
        lateral = np.clip(sign * (u - 0.5), 0.0, None)
        in_half = (sign * (u - 0.5) > 0.03) & body & (v < params.dome + 0.05)
        for k in range(11):
            level = params.lung_top - 0.03 + (k + params.rib_phase * 0.3) * params.rib_spacing
            curve = level + 1.1 * (lateral - 0.03) ** 2 - 0.04 * lateral
            ribs += band(np.abs(v - curve), 0.45 * params.rib_spacing * 0.42) * in_half * (lateral < 0.44)
        clavicle = 0.16 - 0.12 * (lateral - 0.05)
        ribs += 1.4 * band(np.abs(v - clavicle), 0.016) * (lateral > 0.04) * (lateral < 0.3) * body
    image = image + 0.1 * np.clip(ribs, 0, 1.5)

    image = ndimage.gaussian_filter(image, 1.2 * width / 512)
    return Anatomy(image=image, lungs=lungs, heart=heart, vessels=vessels * lung_any, u=u, v=v)


def finish(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Detector noise, a little blur and a random tone curve, clipped to [0, 1]."""
    noisy = image + rng.normal(0.0, 0.012, image.shape) + 0.01 * smooth_noise(rng, image.shape, 8.0)
    gamma = rng.uniform(0.85, 1.15)
    return np.clip(np.clip(noisy, 0.0, 1.0) ** gamma, 0.0, 1.0)
