r"""Perturbed controls: a reading's anatomical maps deformed and degraded, so that they no longer trace its image.

Maps taken from a patient's own radiograph (edges, lungs, texture) make the generator redraw that patient
(the privacy chapter measures it). :func:`perturb_maps` gives a configuration that keeps the reading's anatomy
in outline but not pixel for pixel: every anatomical map of one reading is moved by the same seeded
deformation, then degraded.

* **Deformation** (one per reading, :func:`deformation`): a random affine map about the centre (rotation
  :math:`\theta \sim U(-r, r)`, scale :math:`s \sim U(1-a, 1+a)`, shift :math:`t \sim U(-b, b)^2` of the side
  :math:`S`) plus an elastic field :math:`d = A\,S\,g_\sigma * \varepsilon / \max|g_\sigma * \varepsilon|`,
  :math:`\varepsilon` white noise, :math:`g_\sigma` a Gaussian of width :math:`\sigma = c\,S` (Simard et al.
  2003). A map :math:`m` becomes :math:`m'(p) = m(T(p) + d(p))` (bilinear, zero outside).
* **Degradation**: 0/1 maps are thresholded again (lungs at 0.5; edges at 0.25, thinned back to one-pixel lines,
  then whole stretches are dropped where a smooth random field exceeds its ``edge_keep`` quantile); continuous
  maps are blurred by a Gaussian of ``blur`` px. Gaze maps are never perturbed: they record where the radiologist looked, not the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from radgazegen.controls.registry import control_kind


@dataclass(frozen=True)
class Perturbation:
    """How far a reading's anatomical maps are moved and degraded (fractions of the map side unless said)."""

    rotation: float = 8.0  # degrees, at most either way
    scale: float = 0.08  # relative change of size, at most either way
    shift: float = 0.06  # translation, at most either way
    elastic: float = 0.06  # peak elastic displacement
    smoothness: float = 0.12  # width of the elastic field's Gaussian
    edge_keep: float = 0.6  # share of edge pixels kept
    blur: float = 1.0  # Gaussian blur of continuous maps, px at the map size

    def __post_init__(self) -> None:
        for name in ("rotation", "scale", "shift", "elastic", "smoothness", "blur"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and np.isfinite(value) and value >= 0):
                raise ValueError(f"perturbation {name} must be a finite number >= 0, got {value!r}")
        if not 0 < self.edge_keep <= 1 or not self.scale < 1:
            raise ValueError(f"edge_keep must lie in (0, 1] and scale below 1, got {self.edge_keep}, {self.scale}")


def deformation(size: int, seed: int, settings: Perturbation = Perturbation()) -> np.ndarray:
    """Sampling coordinates ``(2, S, S)`` (rows, columns) of the reading's affine + elastic deformation."""
    rng = np.random.default_rng(seed)
    angle = np.deg2rad(rng.uniform(-settings.rotation, settings.rotation))
    scale = rng.uniform(1 - settings.scale, 1 + settings.scale)
    shift = rng.uniform(-settings.shift, settings.shift, 2) * size
    centre = (size - 1) / 2
    grid = np.indices((size, size), dtype=np.float64) - centre
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / scale
    coords = np.einsum("ij,jhw->ihw", rotation, grid) + centre + shift[:, None, None]
    if settings.elastic > 0:
        field = ndimage.gaussian_filter(rng.standard_normal((2, size, size)), (0, *(2 * [settings.smoothness * size])))
        peak = np.abs(field).max()
        if peak > 0:
            coords += field / peak * settings.elastic * size
    return coords


def perturb_maps(maps: Mapping[str, np.ndarray], seed: int, settings: Perturbation = Perturbation()) -> dict[str, np.ndarray]:
    """One reading's maps ``{control: (S, S)}`` in [0, 1] with every non-gaze map perturbed alike (module docstring).

    ``seed`` fixes the reading's deformation and thinning: the same seed gives the same maps.
    """
    anatomical = {name: np.asarray(m, np.float64) for name, m in maps.items() if control_kind(name) != "gaze"}
    shapes = {m.shape for m in anatomical.values()}
    if len(shapes) > 1 or any(len(shape) != 2 or shape[0] != shape[1] for shape in shapes):
        raise ValueError(f"perturb_maps needs square maps of one size, got {sorted(shapes)}")
    out = {name: np.asarray(m, np.float32) for name, m in maps.items() if name not in anatomical}
    if not anatomical:
        return out
    size = next(iter(shapes))[0]
    coords = deformation(size, seed, settings)
    rng = np.random.default_rng([seed, 1])
    for name, values in anatomical.items():
        moved = np.clip(ndimage.map_coordinates(values, coords, order=1, mode="constant", cval=0.0), 0.0, 1.0)
        kind = control_kind(name)
        if kind == "mask":
            moved = moved >= 0.5
        elif kind == "edges":
            moved = skeletonize(moved >= 0.25) & _kept_stretches(size, rng, settings)
        elif settings.blur > 0:
            moved = ndimage.gaussian_filter(moved, settings.blur)
        out[name] = np.asarray(moved, np.float32)
    return {name: out[name] for name in maps}


def _kept_stretches(size: int, rng: np.random.Generator, settings: Perturbation) -> np.ndarray:
    """A mask keeping ``edge_keep`` of the pixels in connected stretches (a smooth random field below its quantile)."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), max(1.0, size / 32))
    return field <= np.quantile(field, settings.edge_keep)
