r"""Control adherence: re-extract each control from generated images and compare it with the control given.

* edge, gradient, LoG and texture maps: Pearson correlation of the given and re-extracted maps,
  both smoothed by a Gaussian of ``sigma`` px so that a one-pixel shift is not a total miss;
* lungs: Dice of the given mask and the lungs segmented from the generated image
  (:func:`radgazegen.controls.lungs.segment_lungs`);
* gaze: the share of the generated finding inside the gaze region. The finding is located as the
  lung pixels whose intensity departs from the lung's median by more than ``z`` robust standard
  deviations (median absolute deviation); the gaze region is the thresholded, dilated heatmap.
  Only cases whose ground truth has a finding are scored; the real image's share is the reference.

Given a :class:`~radgazegen.evaluation.segmenter.FindingSegmenter`, :func:`adherence` reports the full
metric set: the finding is the segmenter's mask :math:`M` and gaze is scored by :func:`gaze_adherence`
(finding share :math:`|M \cap G| / |M|` and centroid distance); texture maps add the mean absolute
error :math:`\frac{1}{N}\sum_i |g_i - p_i|` (:func:`texture_error`); Canny edges add the tolerant edge
F1 (:func:`edge_f1`) and SSIM (:func:`map_ssim`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.metrics import structural_similarity

from radgazegen.controls.lungs import dice, segment_lungs
from radgazegen.controls.registry import TEXTURE_PREFIX, ControlInputs, ControlRegistry, is_gaze
from radgazegen.evaluation.segmenter import FindingSegmenter
from radgazegen.controls.hypotheses import gaze_region

CORRELATED = ("canny", "sobel", "log")


def map_correlation(given: np.ndarray, produced: np.ndarray, sigma: float = 1.0) -> float:
    """Pearson correlation of two maps after Gaussian smoothing (0 when either is constant)."""
    a = ndimage.gaussian_filter(np.asarray(given, np.float64), sigma).ravel()
    b = ndimage.gaussian_filter(np.asarray(produced, np.float64), sigma).ravel()
    a, b = a - a.mean(), b - b.mean()
    scale = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / scale) if scale > 0 else 0.0


def anomaly_mask(image: np.ndarray, lungs: np.ndarray, z: float = 2.5, sigma: float = 1.0) -> np.ndarray:
    """Lung pixels of the image smoothed by ``sigma`` px more than ``z`` robust standard deviations from the lungs' median."""
    image, lungs = ndimage.gaussian_filter(np.asarray(image, np.float64), sigma), np.asarray(lungs, bool)
    if not lungs.any():
        return np.zeros_like(lungs)
    values = image[lungs]
    centre = np.median(values)
    spread = 1.4826 * np.median(np.abs(values - centre)) or 1e-6
    return lungs & (np.abs(image - centre) > z * spread)


def finding_share(image: np.ndarray, lungs: np.ndarray, region: np.ndarray, z: float = 2.5) -> float:
    """Share of the image's anomalous lung pixels that lie inside ``region`` (NaN when there are none)."""
    anomaly = anomaly_mask(image, lungs, z)
    total = anomaly.sum()
    return float((anomaly & np.asarray(region, bool)).sum() / total) if total else float("nan")


def gaze_adherence(
    finding_mask: np.ndarray, gaze_heatmap: np.ndarray, *, threshold: float = 0.5, dilation: int = 2
) -> dict[str, float]:
    r"""Where a located finding :math:`M` lies relative to the gaze heatmap :math:`h`.

    ``finding_share`` :math:`= |M \cap G| / |M|` with :math:`G` the gaze region
    (:func:`~radgazegen.controls.hypotheses.gaze_region` with ``threshold`` and ``dilation``);
    ``centroid_distance`` :math:`= \lVert \frac{1}{|M|}\sum_{p \in M} p - \sum_p h_p p / \sum_p h_p \rVert_2`
    in pixels (the mask's centroid to the heatmap's intensity-weighted centroid). Both are NaN when
    the mask is empty.
    """
    mask, heatmap = _pair(finding_mask, gaze_heatmap, "finding mask", "gaze heatmap")
    if heatmap.min() < 0:
        raise ValueError("gaze heatmap has negative values")
    region = gaze_region(heatmap, threshold, dilation)
    mask = mask.astype(bool)
    if not mask.any():
        return {"finding_share": float("nan"), "centroid_distance": float("nan")}
    pixels = np.indices(mask.shape).reshape(2, -1)
    located = pixels[:, mask.ravel()].mean(axis=1)
    looked = pixels @ heatmap.ravel() / heatmap.sum()
    return {
        "finding_share": float((mask & region).sum() / mask.sum()),
        "centroid_distance": float(np.linalg.norm(located - looked)),
    }


def texture_error(given: np.ndarray, produced: np.ndarray) -> float:
    r"""Mean absolute error :math:`\frac{1}{N}\sum_i |g_i - p_i|` of two normalised texture maps."""
    given, produced = _pair(given, produced, "given map", "produced map")
    return float(np.abs(given - produced).mean())


def edge_f1(given_edges: np.ndarray, produced_edges: np.ndarray, tolerance: float = 1) -> float:
    r"""F1 :math:`2PR / (P + R)` of two edge maps (pixels >= 0.5 are edges), matching within ``tolerance`` px.

    Precision :math:`P` is the share of produced edge pixels within Euclidean distance ``tolerance`` of a
    given edge pixel, recall :math:`R` the share of given edge pixels within it of a produced one.
    Both maps empty: 1; one empty: 0.
    """
    given, produced = (edges >= 0.5 for edges in _pair(given_edges, produced_edges, "given edges", "produced edges"))
    if tolerance < 0:
        raise ValueError(f"tolerance is a distance in pixels >= 0, got {tolerance}")
    if not given.any() or not produced.any():
        return float(given.any() == produced.any())
    precision = (ndimage.distance_transform_edt(~given)[produced] <= tolerance).mean()
    recall = (ndimage.distance_transform_edt(~produced)[given] <= tolerance).mean()
    return float(2 * precision * recall / (precision + recall)) if precision + recall > 0 else 0.0


def map_ssim(given: np.ndarray, produced: np.ndarray) -> float:
    r"""Structural similarity of two maps in [0, 1] (:func:`skimage.metrics.structural_similarity`, 7x7 windows).

    Mean over windows of
    :math:`\frac{(2\mu_g\mu_p + C_1)(2\sigma_{gp} + C_2)}{(\mu_g^2 + \mu_p^2 + C_1)(\sigma_g^2 + \sigma_p^2 + C_2)}`,
    :math:`C_1 = (0.01)^2`, :math:`C_2 = (0.03)^2` (data range 1).
    """
    given, produced = _pair(given, produced, "given map", "produced map")
    return float(structural_similarity(given, produced, data_range=1.0))


def adherence(
    images: np.ndarray,
    given: Mapping[str, np.ndarray],
    registry: ControlRegistry,
    *,
    lungs: np.ndarray | None = None,
    has_finding: Sequence[bool] | None = None,
    sigma: float = 1.0,
    segmenter: FindingSegmenter | None = None,
    tolerance: float = 1,
) -> pd.DataFrame:
    """One row per (image, control, metric): ``image, control, metric, value``.

    ``images`` (n, S, S) in [0, 1]; ``given`` the normalised controls each image was asked to
    follow (n, S, S). ``lungs`` (n, S, S) are the reference lung masks for the gaze measure
    (default: the given ``lungs`` control); ``has_finding`` selects the cases scored for gaze.
    With a ``segmenter`` the full metric set is reported (module docstring): gaze rows ``finding share``
    and ``centroid distance`` of the segmented finding, texture ``mae``, canny ``f1`` (edge
    ``tolerance`` in px) and ``ssim``, each next to the ``correlation``.
    """
    images = np.asarray(images, np.float64)
    located = segmenter.masks(images) if segmenter is not None and any(is_gaze(name) for name in given) else None
    rows = []
    refit = [name for name in given if name in CORRELATED or name.startswith(TEXTURE_PREFIX)]
    for k, image in enumerate(images):
        produced = registry.controls(refit, ControlInputs(image=image)) if refit else {}
        for name, maps in given.items():
            target = np.asarray(maps[k])
            if name in produced:
                rows.append((k, name, "correlation", map_correlation(target, produced[name], sigma)))
                if segmenter is not None:
                    rows += [
                        (k, name, metric, value)
                        for metric, value in _map_metrics(name, target, produced[name], tolerance)
                    ]
            elif name == "lungs":
                rows.append((k, name, "dice", dice(target >= 0.5, segment_lungs(image))))
            elif is_gaze(name) and (has_finding is None or has_finding[k]):
                if located is not None:
                    scores = gaze_adherence(located[k], target)
                    rows += [(k, name, "finding share", scores["finding_share"]),
                             (k, name, "centroid distance", scores["centroid_distance"])]  # fmt: skip
                else:
                    reference = lungs[k] if lungs is not None else segment_lungs(image)
                    rows.append((k, name, "finding share", finding_share(image, reference, gaze_region(target))))
    return pd.DataFrame(rows, columns=["image", "control", "metric", "value"])


def _map_metrics(name: str, given: np.ndarray, produced: np.ndarray, tolerance: float) -> list[tuple[str, float]]:
    """The full metric set's extra rows for a re-extracted map control."""
    if name.startswith(TEXTURE_PREFIX):
        return [("mae", texture_error(given, produced))]
    if name == "canny":
        return [("f1", edge_f1(given, produced, tolerance)), ("ssim", map_ssim(given, produced))]
    return []


def _pair(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    """Two finite 2-D maps of the same shape as float64, else a ``ValueError`` naming them."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"shape mismatch: {name_a} {a.shape} and {name_b} {b.shape} must be the same 2-D shape")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"{name_a} and {name_b} must be finite")
    return a, b


def summarise(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean (and count) of each control's metric per sampling condition, conditions as columns."""
    parts = []
    for condition, table in tables.items():
        grouped = table.groupby(["control", "metric"])["value"].agg(["mean", "count"])
        parts.append(grouped["mean"].rename(condition))
    return pd.concat(parts, axis=1)
