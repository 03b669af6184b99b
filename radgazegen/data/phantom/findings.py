"""Phantom findings: each type has its own location prior, texture, prevalence and report wording.

Prevalences are long-tailed (effusion common, pneumothorax rare), as in REFLACX / MIMIC-CXR.
Each rendered finding returns its ground-truth mask and the brightness change it adds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from radgazegen.data.phantom.anatomy import Anatomy, band, smooth_noise

ZONES = ("upper", "middle", "lower")


@dataclasses.dataclass(frozen=True)
class FindingType:
    """A kind of finding the phantom can draw."""

    name: str
    label_phase1: str  # REFLACX label column, phase 1
    label_phase23: str  # REFLACX label column, phases 2-3
    prevalence: float
    zones: tuple[str, ...]  # where it may appear (location prior)
    keywords: tuple[str, ...]  # words that name it in a report


@dataclasses.dataclass
class Finding:
    """One drawn finding."""

    kind: FindingType
    side: str  # "right" / "left" (patient side) or "both" / "central"
    zone: str
    size: str  # report wording, e.g. "small", "2.5 cm"
    mask: np.ndarray
    delta: np.ndarray


FINDING_TYPES: tuple[FindingType, ...] = (
    FindingType("pleural effusion", "Pleural effusion", "Pleural abnormality", 0.30, ("lower",), ("effusion",)),
    FindingType("consolidation", "Consolidation", "Consolidation", 0.22, ("middle", "lower"), ("consolidation",)),
    FindingType(
        "enlarged cardiac silhouette",
        "Enlarged cardiac silhouette",
        "Enlarged cardiac silhouette",
        0.14,
        ("middle",),
        ("cardiac", "cardiomegaly"),
    ),
    FindingType("atelectasis", "Atelectasis", "Atelectasis", 0.10, ("lower", "middle"), ("atelectasis",)),
    FindingType("nodule", "Nodule", "Lung nodule or mass", 0.06, ZONES, ("nodule",)),
    FindingType("mass", "Mass", "Lung nodule or mass", 0.03, ("upper", "middle"), ("mass",)),
    FindingType("pneumothorax", "Pneumothorax", "Pneumothorax", 0.015, ("upper",), ("pneumothorax",)),
)
FINDINGS_BY_NAME = {kind.name: kind for kind in FINDING_TYPES}

def sample_finding_types(rng: np.random.Generator) -> list[FindingType]:
    """Draw which findings a case has: independent draws with each type's prevalence."""
    return [kind for kind in FINDING_TYPES if rng.random() < kind.prevalence]


def zone_region(anatomy: Anatomy, side: str, zone: str) -> np.ndarray:
    """The part of one lung in the upper / middle / lower third of its height."""
    lung = anatomy.lungs[side]
    rows = np.flatnonzero(lung.any(axis=1))
    top, bottom = rows.min(), rows.max() + 1
    index = ZONES.index(zone)
    lo, hi = top + (bottom - top) * index // 3, top + (bottom - top) * (index + 1) // 3
    region = np.zeros_like(lung)
    region[lo:hi] = lung[lo:hi]
    return region


def _pick(rng: np.random.Generator, region: np.ndarray) -> tuple[float, float]:
    """A random pixel of ``region`` as normalised (u, v) coordinates."""
    flat = np.flatnonzero(region)
    row, col = np.unravel_index(flat[rng.integers(len(flat))], region.shape)
    height, width = region.shape
    return (col + 0.5) / width, (row + 0.5) / height


def _effusion(rng: np.random.Generator, anatomy: Anatomy, side: str, zone: str) -> tuple[np.ndarray, np.ndarray, str]:
    lung = anatomy.lungs[side]
    height = lung.shape[0]
    rows = np.flatnonzero(lung.any(axis=1))
    size = str(rng.choice(["small", "moderate", "large"], p=[0.5, 0.35, 0.15]))
    depth = {"small": 0.14, "moderate": 0.26, "large": 0.4}[size] * (rows.max() - rows.min()) / height
    floor = (height - np.argmax(lung[::-1], axis=0)) / height  # lowest lung row of each column (v)
    columns = lung.any(axis=0)
    lateral = np.abs(anatomy.u[0] - 0.5)
    rise = (lateral - lateral[columns].min()) / max(float(np.ptp(lateral[columns])), 1e-6)  # meniscus: higher laterally
    meniscus = floor - depth * (0.6 + 0.8 * rise)
    mask = lung & (anatomy.v >= meniscus[None, :])
    gradient = np.clip((anatomy.v - meniscus[None, :]) / depth, 0.0, 1.0)
    delta = mask * (0.3 + 0.12 * gradient - anatomy.vessels)
    return mask, ndimage.gaussian_filter(delta, 1.5), size


def _blob(rng: np.random.Generator, anatomy: Anatomy, side: str, zone: str, radius: float, rough: float) -> np.ndarray:
    cu, cv = _pick(rng, zone_region(anatomy, side, zone))
    shape = anatomy.u.shape
    distance = np.hypot(anatomy.u - cu, (anatomy.v - cv) * shape[0] / shape[1])
    field = 1.0 - distance / radius + rough * smooth_noise(rng, shape, 6.0 * shape[1] / 512)
    return field > 0


def _consolidation(
    rng: np.random.Generator, anatomy: Anatomy, side: str, zone: str
) -> tuple[np.ndarray, np.ndarray, str]:
    mask = _blob(rng, anatomy, side, zone, rng.uniform(0.06, 0.1), 0.45) & anatomy.lungs[side]
    shape = mask.shape
    texture = 0.7 + 0.3 * smooth_noise(rng, shape, 2.0 * shape[1] / 512)
    bronchograms = np.exp(-((smooth_noise(rng, shape, 4.0 * shape[1] / 512) / 0.12) ** 2))
    delta = mask * (0.3 * texture - 0.12 * bronchograms)
    return mask, ndimage.gaussian_filter(delta, 2.0), "patchy"


def _atelectasis(
    rng: np.random.Generator, anatomy: Anatomy, side: str, zone: str
) -> tuple[np.ndarray, np.ndarray, str]:
    cu, cv = _pick(rng, zone_region(anatomy, side, zone))
    angle = rng.uniform(-0.5, 0.5)
    du, dv = anatomy.u - cu, (anatomy.v - cv) * anatomy.u.shape[0] / anatomy.u.shape[1]
    along = du * np.cos(angle) + dv * np.sin(angle)
    across = -du * np.sin(angle) + dv * np.cos(angle)
    length, thickness = rng.uniform(0.06, 0.1), rng.uniform(0.008, 0.014)
    profile = band(np.abs(across), thickness) * np.clip(1.0 - (along / length) ** 2, 0.0, 1.0)
    mask = (profile > 0.05) & anatomy.lungs[side]
    return mask, 0.35 * profile * anatomy.lungs[side], "linear"


def _cardiac(rng: np.random.Generator, anatomy: Anatomy, side: str, zone: str) -> tuple[np.ndarray, np.ndarray, str]:
    return anatomy.heart.copy(), np.zeros_like(anatomy.u), "enlarged"


def _round_lesion(
    rng: np.random.Generator, anatomy: Anatomy, side: str, zone: str, radius: float, lobes: float, texture: float
) -> tuple[np.ndarray, np.ndarray]:
    cu, cv = _pick(rng, zone_region(anatomy, side, zone))
    shape = anatomy.u.shape
    du, dv = anatomy.u - cu, (anatomy.v - cv) * shape[0] / shape[1]
    theta = np.arctan2(dv, du)
    outline = radius * (1 + lobes * np.sin(3 * theta + rng.uniform(0, 2 * np.pi)) + 0.5 * lobes * np.sin(5 * theta))
    r = np.hypot(du, dv) / outline
    mask = (r <= 1.0) & anatomy.lungs[side]
    inside = np.clip(1.0 - r**2, 0.0, 1.0) ** 0.5
    delta = inside * (0.32 + texture * smooth_noise(rng, shape, 1.5 * shape[1] / 512)) * anatomy.lungs[side]
    return mask, delta


def _nodule(rng: np.random.Generator, anatomy: Anatomy, side: str, zone: str) -> tuple[np.ndarray, np.ndarray, str]:
    radius = rng.uniform(0.014, 0.024)
    mask, delta = _round_lesion(rng, anatomy, side, zone, radius, 0.03, 0.0)
    return mask, delta, f"{round(radius * 350)} mm"


def _mass(rng: np.random.Generator, anatomy: Anatomy, side: str, zone: str) -> tuple[np.ndarray, np.ndarray, str]:
    radius = rng.uniform(0.045, 0.07)
    mask, delta = _round_lesion(rng, anatomy, side, zone, radius, 0.12, 0.08)
    return mask, delta, f"{radius * 35:.1f} cm"


def _pneumothorax(
    rng: np.random.Generator, anatomy: Anatomy, side: str, zone: str
) -> tuple[np.ndarray, np.ndarray, str]:
    lung = anatomy.lungs[side]
    inward = ndimage.distance_transform_edt(lung) / lung.shape[1]
    rows = np.flatnonzero(lung.any(axis=1))
    apex_half = anatomy.v < (rows.min() + (rows.max() - rows.min()) * 0.45) / lung.shape[0]
    width = rng.uniform(0.025, 0.05)
    lateral = np.abs(anatomy.u - 0.5) > np.abs(anatomy.u[lung].mean() - 0.5) - 0.02
    mask = lung & (inward < width) & apex_half & lateral
    pleural_line = band(np.abs(inward - width), 0.004) * apex_half * lateral * lung
    delta = -(anatomy.vessels + 0.05) * mask + 0.18 * pleural_line
    return mask, delta, "small"


RENDERERS: dict[str, Callable[[np.random.Generator, Anatomy, str, str], tuple[np.ndarray, np.ndarray, str]]] = {
    "pleural effusion": _effusion,
    "consolidation": _consolidation,
    "enlarged cardiac silhouette": _cardiac,
    "atelectasis": _atelectasis,
    "nodule": _nodule,
    "mass": _mass,
    "pneumothorax": _pneumothorax,
}


def render_finding(rng: np.random.Generator, anatomy: Anatomy, kind: FindingType) -> Finding:
    """Place and draw one finding of ``kind`` following its location prior."""
    side = "central" if kind.name == "enlarged cardiac silhouette" else str(rng.choice(["right", "left"]))
    zone = str(rng.choice(kind.zones))
    mask, delta, size = RENDERERS[kind.name](rng, anatomy, side, zone)
    return Finding(kind=kind, side=side, zone=zone, size=size, mask=mask, delta=delta)
