r"""Fréchet Radiomics Distance (FRD v1; Konz, Osuala et al., Medical Image Analysis 2026) with our radiomics code.

FRD v1 as the reference package ``frd-score`` (1.0.1, ``frd_version="v1"``) computes it:

1. pyradiomics features of every image, with a mask that is the whole image minus its corner voxel
   (frd-score's workaround of a pyradiomics bug), ``force2D``; the image is normalised by pyradiomics
   (``normalize``: :math:`s(x - \mu)/\sigma` over the whole image, :math:`s` = ``normalizeScale`` 100),
   grey levels are binned by width 5, ``voxelArrayShift`` 300 enters Energy, TotalEnergy and RMS; the
   classes and features of its ``configs/extraction_2d.yaml`` (:data:`V1_FEATURES`: all first-order, 22 GLCM,
   all GLRLM, GLSZM and NGTDM features) and the numeric pyradiomics diagnostics, which v1 keeps as features
   (:data:`DIAGNOSTICS`);
2. :func:`frechet_radiomics_distance`: features rounded to float32, z-scored with the reference (real) set's
   mean and standard deviation, columns that are not finite in either set dropped, Fréchet distance
   :math:`d^2` of the two Gaussians, :math:`\text{FRD} = \log d^2`.

Here the features come from :func:`radgazegen.controls.texture.segment_features` (our torch port of
pyradiomics' segment-based extraction); pyradiomics' normalisation, ``voxelArrayShift`` and diagnostics
are replicated in numpy (:func:`radiomic_features`). :func:`frd_score_reference` runs frd-score itself in
the same configuration, the cross-check. Deviations from frd-score's published v1 defaults, on both sides:

- image types: ``Original`` only. v1 adds LoG (sigma 2, 3, 4, 5 mm) and the 4 wavelet sub-bands, ~464
  features in all; our radiomics has no image filters, so FRD here uses 82 columns (80 after the two
  constant mask diagnostics are dropped);
- no resampling: v1 resamples to 2 x 2 mm pixels (B-spline), which halves PNGs of unit spacing.

Values of this port (the "FRD (torch, Original)" columns) are therefore comparable among themselves,
not with published FRD v1 numbers. The headline FRD is frd-score's own v1 with its published defaults:
:func:`frd_v1_features` (extraction by frd-score), then :func:`frechet_radiomics_distance` (its post-processing).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radgazegen.controls.texture import segment_features
from radgazegen.controls.texture_names import IMPLEMENTED
from radgazegen.errors import DataFormatError
from radgazegen.threads import torch_threads

V1_GLCM = (
    "Autocorrelation", "JointAverage", "ClusterProminence", "ClusterShade", "ClusterTendency", "Contrast",
    "Correlation", "DifferenceAverage", "DifferenceEntropy", "DifferenceVariance", "JointEnergy", "JointEntropy",
    "Imc1", "Imc2", "Idm", "Idmn", "Id", "Idn", "InverseVariance", "MaximumProbability", "SumEntropy", "SumSquares",
)  # fmt: skip
"""The GLCM features of frd-score's v1 configuration (MCC and the deprecated SumAverage left out), in its order."""
DIAGNOSTICS = (
    "diagnostics_Image-original_Mean", "diagnostics_Image-original_Minimum", "diagnostics_Image-original_Maximum",
    "diagnostics_Mask-original_VoxelNum", "diagnostics_Mask-original_VolumeNum",
)  # fmt: skip
"""The numeric pyradiomics diagnostics that frd-score v1 keeps as features (of the image before normalisation)."""
SHIFTED = ("firstorder_Energy", "firstorder_TotalEnergy", "firstorder_RootMeanSquared")
"""First-order features of the intensities plus ``voxelArrayShift``, computed here from their pyradiomics formulas
(``segment_features`` has no shift; a second call on the shifted image would redo every texture matrix)."""


def _pyradiomics_order(names: Sequence[str]) -> list[str]:
    """A whole class's features in pyradiomics' output order (alphabetical by its ``get<Name>FeatureValue`` method)."""
    return sorted(names, key=lambda name: f"get{name}FeatureValue")


V1_FEATURES = (
    *(f"firstorder_{name}" for name in _pyradiomics_order(IMPLEMENTED["firstorder"])),
    *(f"glcm_{name}" for name in V1_GLCM),
    *(f"{cls}_{name}" for cls in ("glrlm", "glszm", "ngtdm") for name in _pyradiomics_order(IMPLEMENTED[cls])),
)
"""The radiomic features of frd-score v1 (image type ``Original``), named and ordered as it names and orders them."""


@dataclass(frozen=True)
class RadiomicsSettings:
    """pyradiomics settings of the FRD extraction; the defaults are frd-score v1's. Resampling is always off."""

    bin_width: float = 5
    normalize: bool = True
    normalize_scale: float = 100
    voxel_array_shift: float = 300

    def __post_init__(self) -> None:
        for name in ("bin_width", "normalize_scale", "voxel_array_shift"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.bin_width <= 0 or self.normalize_scale <= 0:
            raise ValueError(
                f"bin_width and normalize_scale must be positive, got {self.bin_width}, {self.normalize_scale}"
            )


def radiomic_features(
    images: np.ndarray | Sequence[np.ndarray], *, pixel_scale: float | None = 65535.0, **settings: Any
) -> pd.DataFrame:
    r"""FRD v1 features of each image (one row per image, columns :data:`DIAGNOSTICS` then :data:`V1_FEATURES`).

    ``images``: ``(n, H, W)`` or a sequence of 2-D images. With ``pixel_scale`` (default 65535) they must lie in
    [0, 1] and become the grey values :math:`\operatorname{round}(x \cdot \text{pixel\_scale})` that
    :func:`~radgazegen.data.images.save_png16` writes and frd-score reads; with ``None`` their values are used
    as they are (rounded to float32, as SimpleITK reads PNGs). ``settings`` are :class:`RadiomicsSettings`.

    Per image, as pyradiomics with frd-score's v1 settings: diagnostics of the grey values; with ``normalize``
    the image becomes :math:`s(x - \mu)(1/\sigma)` in float64 (SimpleITK's ``Normalize``: mean and unbiased
    standard deviation of the whole image, then ``normalizeScale`` :math:`s`); features of the mask (the image
    minus its corner voxel) binned by ``bin_width``, with :data:`SHIFTED` computed on the image plus
    ``voxelArrayShift``. torch runs single-threaded here: the per-image tensors are small, and intra-op
    threads only add synchronisation (several times slower on a busy 2-core machine).
    """
    config = RadiomicsSettings(**settings)
    with torch_threads(1):
        rows = [_image_features(_grey_values(image, pixel_scale, i), config, i) for i, image in enumerate(images)]
    return pd.DataFrame(rows, columns=[*DIAGNOSTICS, *V1_FEATURES], dtype=np.float64)


def _grey_values(image: np.ndarray, pixel_scale: float | None, index: int) -> np.ndarray:
    array = np.asarray(image, np.float64)
    if array.ndim != 2:
        raise ValueError(f"image {index} must be 2-D (height, width), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"image {index} has non-finite values")
    if pixel_scale is None:
        return array.astype(np.float32).astype(np.float64)
    if array.min() < 0 or array.max() > 1:
        raise ValueError(f"image {index} must lie in [0, 1] with pixel_scale={pixel_scale} (pass None for grey values)")
    return np.round(array * pixel_scale).astype(np.float32).astype(np.float64)


def _image_features(grey: np.ndarray, config: RadiomicsSettings, index: int) -> dict[str, float]:
    mask = np.ones(grey.shape, bool)
    mask[0, 0] = False
    row = {
        "diagnostics_Image-original_Mean": grey.mean(),
        "diagnostics_Image-original_Minimum": grey.min(),
        "diagnostics_Image-original_Maximum": grey.max(),
        "diagnostics_Mask-original_VoxelNum": float(mask.sum()),
        "diagnostics_Mask-original_VolumeNum": 1.0,  # the mask is one connected region
    }
    image = _normalise(grey, config.normalize_scale, index) if config.normalize else grey
    plain = [name for name in V1_FEATURES if name not in SHIFTED]
    row.update(segment_features(image, plain, mask=mask, bin_count=None, bin_width=config.bin_width))
    row.update(_shifted_features(image[mask] + config.voxel_array_shift))
    return row


def _shifted_features(shifted: np.ndarray) -> dict[str, float]:
    r"""pyradiomics' Energy :math:`\sum_k (X_k + c)^2`, TotalEnergy (times the unit pixel volume) and RMS
    :math:`\sqrt{\sum_k (X_k + c)^2 / N_p}` of the mask intensities plus the shift :math:`c`."""
    energy = float(np.sum(shifted**2))
    return {SHIFTED[0]: energy, SHIFTED[1]: energy, SHIFTED[2]: float(np.sqrt(energy / shifted.size))}


def _normalise(grey: np.ndarray, scale: float, index: int) -> np.ndarray:
    """SimpleITK's ``Normalize`` (ITK: sums, then ``(x - mean) * (1 / sigma)``) times ``scale``, in float64."""
    count, total, squares = grey.size, grey.sum(), (grey * grey).sum()
    variance = (squares - total * total / count) / (count - 1)
    if not variance > 0:
        raise ValueError(f"image {index} is constant: pyradiomics' normalisation divides by its standard deviation")
    return (grey - total / count) * (1.0 / np.sqrt(variance)) * scale


def frechet_radiomics_distance(real: pd.DataFrame | np.ndarray, fake: pd.DataFrame | np.ndarray) -> float:
    r"""FRD v1 of two feature tables (rows = images): :math:`\log d^2`, ``-inf`` when :math:`d^2 = 0`.

    Step for step as frd-score v1 (which reproduces the paper's pipeline): rows holding a NaN are dropped;
    features are rounded to float32, as the paper's pipeline did, and z-scored in float32 with the real set's
    mean and population standard deviation, :math:`z = (x - \mu_\text{real})/\sigma_\text{real}` (this
    rounding moves z-scores by up to ~1e-4: after pyradiomics' normalisation Energy and RMS vary by only
    ~3e-4 of their value); columns with a non-finite :math:`z` in either set (e.g. constant in the real set)
    are dropped; each set's mean (float32) and unbiased covariance (float64) give :math:`d^2` by frd-score's
    ``calculate_frechet_distance``. Data frames must have the same columns
    (the fake one's are put in the real one's order). Applied to two :func:`frd_v1_features` tables it gives
    frd-score's ``compute_frd`` (v1) of the same images; here, not inside ``compute_frd``, so that the tables
    are extracted once.
    """
    real_z, fake_z = _v1_zscores(*_tables(real, fake))
    keep = np.isfinite(real_z).all(0) & np.isfinite(fake_z).all(0)
    if not keep.any():
        raise ValueError("no feature is finite after z-scoring with the real set (every feature is constant there)")
    real_z, fake_z = real_z[:, keep], fake_z[:, keep]
    return _log_frechet(real_z, fake_z)


def _log_frechet(real_z: np.ndarray, fake_z: np.ndarray) -> float:
    """:math:`\\log d^2` of the Gaussians of two z-scored tables by frd-score's own Fréchet distance (scipy ``sqrtm``)."""
    from frd_score.frd import calculate_frechet_distance

    with np.errstate(all="ignore"):
        squared = float(calculate_frechet_distance(real_z.mean(0), np.atleast_2d(np.cov(real_z, rowvar=False)),
                                                   fake_z.mean(0), np.atleast_2d(np.cov(fake_z, rowvar=False))))  # fmt: skip
    return float(np.log(squared)) if squared > 0 else float("-inf")


def _tables(real: pd.DataFrame | np.ndarray, fake: pd.DataFrame | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both tables as float32 arrays with one column order, rows with a NaN dropped, at least 2 rows each.

    Row-major like frd-score's (``np.asarray`` of per-image lists): float32 sums, hence the z-scores, depend on the layout.
    """
    if isinstance(real, pd.DataFrame) and isinstance(fake, pd.DataFrame):
        if set(real.columns) != set(fake.columns):
            raise ValueError(f"feature columns differ: {sorted(set(real.columns) ^ set(fake.columns))}")
        fake = fake[list(real.columns)]
    arrays = []
    for name, table in (("real", real), ("fake", fake)):
        array = np.asarray(table, np.float64)
        if array.ndim != 2:
            raise ValueError(f"{name} features must be 2-D (images, features), got shape {array.shape}")
        array = np.ascontiguousarray(array[~np.isnan(array).any(1)], dtype=np.float32)
        if len(array) < 2:
            raise ValueError(f"FRD needs at least 2 images without NaN features per set, {name} has {len(array)}")
        arrays.append(array)
    if arrays[0].shape[1] != arrays[1].shape[1]:
        raise ValueError(f"feature counts differ: real {arrays[0].shape[1]}, fake {arrays[1].shape[1]}")
    return arrays[0], arrays[1]


def _v1_zscores(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 z-scores w.r.t. ``real``, with frd-score's numpy calls (``nanmean``, ``nanstd``) so the rounding is its own."""
    mean, std = np.nanmean(real, axis=0), np.nanstd(real, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (real - mean) / std, (fake - mean) / std


def frd_v1_features(images: np.ndarray | Sequence[np.ndarray], *, num_workers: int | None = None) -> np.ndarray:
    """frd-score's own FRD v1 features of each image ``(H, W)`` in [0, 1], one row per image, in order.

    Its published defaults: ``Original``, LoG (sigma 2-5 mm) and wavelet images, resampled to 2 x 2 mm,
    the v1 YAML's feature classes. Images are written as 16-bit PNGs (as :func:`~radgazegen.data.images.save_png16`
    writes the sample bank) to a temporary folder and read by frd-score (``compute_features``) in
    ``num_workers`` processes (default: every core). An image frd-score cannot extract is an error.
    """
    import logging
    import os
    import tempfile

    from frd_score.frd import compute_features, get_feature_extractor
    from radiomics import setVerbosity

    from radgazegen.data.images import save_png16

    with tempfile.TemporaryDirectory(prefix="frd-v1-") as folder:
        files = []
        for k, image in enumerate(images):
            _grey_values(image, 65535.0, k)  # in [0, 1], finite, 2-D
            files.append(Path(folder) / f"{k:06d}.png")
            save_png16(files[-1], np.asarray(image, np.float64))
        if len(files) < 2:
            raise ValueError(f"FRD needs at least 2 images per set, got {len(files)}")
        setVerbosity(logging.CRITICAL + 10)  # as compute_frd: pyradiomics' warnings (e.g. LoG on small images) off
        extractor = get_feature_extractor(frd_version="v1", image_dim=2)
        results = compute_features(files, extractor, num_workers=num_workers or os.cpu_count() or 1,
                                   frd_version="v1")[1]  # fmt: skip
    if len(results) != len(files):  # frd-score skips an image it cannot extract (with a logged warning)
        raise ValueError(f"frd-score extracted features of only {len(results)} of {len(files)} images; "
                         "the rows would no longer match the readings")  # fmt: skip
    return np.array([list(row.values()) for row in results], np.float64)


def frd_zscores(real: np.ndarray, fakes: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """frd-score's v1 z-scores of a real feature table and of each generated one, the columns kept for all of them.

    For either feature set (:func:`frd_v1_features` or :func:`radiomic_features`). As
    :func:`frechet_radiomics_distance` (float32, z-scored by the real set's rows without NaN, columns with a NaN or
    infinity in any set dropped) but rows keep their place: a row with a NaN feature stays a NaN row, so
    the rows of several generated tables stay aligned with their readings (the half-sampling intervals of
    paired differences). :func:`~radgazegen.evaluation.quality.frechet_from_rows` drops such rows.
    """
    reference = np.asarray(real, np.float64)
    reference = reference[~np.isnan(reference).any(1)].astype(np.float32)
    if len(reference) < 2:
        raise ValueError(f"FRD needs at least 2 real images without NaN features, got {len(reference)}")
    tables = [np.asarray(t, np.float64).astype(np.float32) for t in fakes]
    z = [_v1_zscores(reference, t)[1] for t in (reference, *tables)]
    valid = [np.ones(len(reference), bool), *(~np.isnan(t).any(1) for t in tables)]  # rows frd-score would keep
    keep = np.logical_and.reduce([np.isfinite(t[rows]).all(0) for t, rows in zip(z, valid, strict=True)])
    if not keep.any():
        raise ValueError("no feature is finite after z-scoring with the real set (every feature is constant there)")
    shown = [np.where(rows[:, None], t[:, keep], np.nan).astype(np.float64) for t, rows in zip(z, valid, strict=True)]
    return shown[0], shown[1:]


def frd(
    real_images: np.ndarray | Sequence[np.ndarray],
    fake_images: np.ndarray | Sequence[np.ndarray],
    *,
    pixel_scale: float | None = 65535.0,
    **settings: Any,
) -> float:
    """FRD v1 of two image sets: :func:`frechet_radiomics_distance` of their :func:`radiomic_features`."""
    return frechet_radiomics_distance(
        radiomic_features(real_images, pixel_scale=pixel_scale, **settings),
        radiomic_features(fake_images, pixel_scale=pixel_scale, **settings),
    )


def frd_score_reference(real_dir: str | Path, fake_dir: str | Path, **settings: Any) -> float:
    """FRD v1 by the frd-score package itself on two folders of images, in the configuration of :func:`frd`.

    ``frd_score.compute_frd`` with ``frd_version="v1"``, ``image_types=["Original"]``, the v1 YAML's feature
    classes, the :class:`RadiomicsSettings` and ``resampledPixelSpacing=None``, one worker process.
    """
    from frd_score import compute_frd

    config = RadiomicsSettings(**settings)
    folders = [Path(real_dir), Path(fake_dir)]
    for folder in folders:
        if not folder.is_dir():
            raise DataFormatError(folder, "image folder not found")
    with contextlib.redirect_stdout(io.StringIO()):  # compute_frd prints its result
        value = compute_frd(
            [str(folder) for folder in folders],
            frd_version="v1",
            image_types=["Original"],
            bin_width=config.bin_width,
            normalize_scale=config.normalize_scale,
            voxel_array_shift=config.voxel_array_shift,
            settings_dict={"resampledPixelSpacing": None, "normalize": config.normalize},
            num_workers=1,
        )
    return float(value)
