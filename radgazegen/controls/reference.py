"""pyradiomics' own voxel-based extraction, with the signature of :func:`~radgazegen.controls.texture.texture_maps`.

It is the reference the fast maps are tested and benchmarked against, and the fallback for feature
classes that ``texture_maps`` does not implement. The 2-D image goes to pyradiomics as a one-slice
volume with ``force2D`` (in-plane angles, distance 1), through ``RadiomicsFeatureExtractor.execute(...,
voxelBased=True)``; the maps it returns (cropped to the mask's bounding box plus the kernel radius)
are put back at their place in the full image, with ``nan`` everywhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from radgazegen.controls.texture import as_arrays, texture_maps
from radgazegen.controls.texture_names import expand_features


def pyradiomics_maps(
    image: np.ndarray | torch.Tensor,
    features: str | Iterable[str],
    *,
    kernel_radius: int = 2,
    bin_count: int | None = 32,
    bin_width: float | None = None,
    mask: np.ndarray | torch.Tensor | None = None,
    masked_kernel: bool = True,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> dict[str, np.ndarray]:
    """Voxel-wise feature maps computed by pyradiomics (CPU only; ``device`` and ``dtype`` are ignored).

    ``bin_width``, when given, discretises by bin width and ``bin_count`` is ignored. Voxels outside
    ``mask`` (default: the whole image) and voxels where pyradiomics fails are ``nan`` (its ``initValue``).
    """
    image_array, mask_array = as_arrays(image, mask)
    names = expand_features(features)
    settings = _settings(kernel_radius, bin_count, bin_width, masked_kernel)
    result = _execute(image_array, mask_array, names, settings, voxel_based=True)
    return _place(result, names, image_array.shape, mask_array)


SQRT_FEATURES = ("glcm_MCC", "glcm_Imc2")
"""Features that are square roots of quantities vanishing in some kernels, so rounding noise of ~1e-14 in
the quantity (pyradiomics' non-symmetric eigen-solver, a difference of entropies) becomes ~1e-7."""


def noise_floor(name: str, reference: np.ndarray) -> float:
    """The magnitude below which a value of feature ``name`` counts as rounding noise around zero.

    ``0.1`` for :data:`SQRT_FEATURES`, else ``1e-3 * max(1, max |map|)`` (e.g. ClusterShade of a
    symmetric kernel, exactly 0 in theory, is +-1e-18 in float64).
    """
    if name in SQRT_FEATURES:
        return 0.1
    finite = np.abs(reference[np.isfinite(reference)])
    return 1e-3 * max(1.0, float(finite.max()) if finite.size else 1.0)


def relative_difference(name: str, ours: np.ndarray, reference: np.ndarray) -> float:
    """Max over voxels of :math:`|o - r| / \\max(|r|, f)` with :math:`f` the :func:`noise_floor`.

    Voxels that are ``nan`` in both maps are skipped; a ``nan`` in only one of them gives ``inf``.
    """
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    if (np.isnan(ours) != np.isnan(reference)).any():
        return float("inf")
    finite = np.isfinite(reference)
    if not finite.any():
        return 0.0
    scale = np.maximum(np.abs(reference[finite]), noise_floor(name, reference))
    return float((np.abs(ours[finite] - reference[finite]) / scale).max())


def pyradiomics_features(
    image: np.ndarray | torch.Tensor,
    features: str | Iterable[str],
    *,
    mask: np.ndarray | torch.Tensor | None = None,
    bin_count: int | None = 32,
    bin_width: float | None = None,
) -> dict[str, float]:
    """Features of the whole mask from pyradiomics' segment-based extraction (``force2D``)."""
    image_array, mask_array = as_arrays(image, mask)
    names = expand_features(features)
    result = _execute(image_array, mask_array, names, _settings(1, bin_count, bin_width, True), voxel_based=False)
    return {name: float(result[f"original_{name}"]) for name in names}


def _settings(kernel_radius: int, bin_count: int | None, bin_width: float | None, masked_kernel: bool) -> dict:
    settings: dict[str, object] = {
        "kernelRadius": int(kernel_radius),
        "force2D": True,
        "force2Ddimension": 0,
        "maskedKernel": bool(masked_kernel),
        "initValue": float("nan"),
        "label": 1,
    }
    if bin_width is not None:
        settings["binWidth"] = float(bin_width)
    else:
        settings["binCount"] = int(bin_count)
    return settings


def _execute(image: np.ndarray, mask: np.ndarray, names: list[str], settings: dict, *, voxel_based: bool) -> dict:
    import SimpleITK as sitk
    from radiomics import featureextractor

    by_class: dict[str, list[str]] = {}
    for name in names:
        cls, feature = name.split("_", 1)
        by_class.setdefault(cls, []).append(feature)
    volume = sitk.GetImageFromArray(image[None])
    labels = sitk.GetImageFromArray(mask[None].astype(np.uint8))
    logger = logging.getLogger("radiomics")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        extractor = featureextractor.RadiomicsFeatureExtractor(**settings)
        extractor.disableAllFeatures()
        extractor.enableFeaturesByName(**by_class)
        return extractor.execute(volume, labels, voxelBased=voxel_based)
    finally:
        logger.setLevel(level)


def _place(result: dict, names: list[str], shape: tuple[int, int], mask: np.ndarray) -> dict[str, np.ndarray]:
    import SimpleITK as sitk

    maps: dict[str, np.ndarray] = {}
    for name in names:
        cropped = result[f"original_{name}"]
        x0, y0, _ = (int(round(c)) for c in cropped.GetOrigin())
        values = sitk.GetArrayFromImage(cropped)[0]
        full = np.full(shape, np.nan)
        full[y0 : y0 + values.shape[0], x0 : x0 + values.shape[1]] = values
        full[~mask] = np.nan
        maps[name] = full
    return maps


@dataclass(frozen=True)
class Agreement:
    """``texture_maps`` against pyradiomics on one image: the largest relative difference per feature
    (:func:`relative_difference`) and each side's wall time."""

    differences: pd.Series
    pyradiomics_seconds: float
    ours_seconds: float

    @property
    def speedup(self) -> float:
        return self.pyradiomics_seconds / self.ours_seconds


def compare_with_pyradiomics(image: np.ndarray, features: str | Iterable[str], **settings) -> Agreement:
    """Compute ``features`` on ``image`` with pyradiomics and with :func:`~radgazegen.controls.texture.texture_maps`
    (same ``settings``), timing each, and compare them voxel by voxel."""
    started = time.perf_counter()
    reference = pyradiomics_maps(image, features, **settings)
    reference_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ours = texture_maps(image, features, **settings)
    ours_seconds = time.perf_counter() - started
    differences = pd.Series({name: relative_difference(name, ours[name], reference[name]) for name in reference},
                            name="max relative difference")  # fmt: skip
    return Agreement(differences, reference_seconds, ours_seconds)
