"""Control adherence: re-extract each control from generated images and compare it with the control given.

* edge, gradient, LoG and texture maps: Pearson correlation of the given and re-extracted maps,
  both smoothed by a Gaussian of ``sigma`` px so that a one-pixel shift is not a total miss;
* lungs: Dice of the given mask and the lungs segmented from the generated image
  (:func:`radgazegen.controls.lungs.segment_lungs`);
* gaze: the share of the generated finding inside the gaze region. The finding is located as the
  lung pixels whose intensity departs from the lung's median by more than ``z`` robust standard
  deviations (median absolute deviation); the gaze region is the thresholded, dilated heatmap.
  Only cases whose ground truth has a finding are scored; the real image's share is the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from radgazegen.controls.lungs import dice, segment_lungs
from radgazegen.controls.registry import TEXTURE_PREFIX, ControlInputs, ControlRegistry
from radgazegen.models.hypotheses import gaze_region

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


def adherence(
    images: np.ndarray,
    given: Mapping[str, np.ndarray],
    registry: ControlRegistry,
    *,
    lungs: np.ndarray | None = None,
    has_finding: Sequence[bool] | None = None,
    sigma: float = 1.0,
) -> pd.DataFrame:
    """One row per (image, control): ``image, control, metric, value``.

    ``images`` (n, S, S) in [0, 1]; ``given`` the normalised controls each image was asked to
    follow (n, S, S). ``lungs`` (n, S, S) are the reference lung masks for the gaze measure
    (default: the given ``lungs`` control); ``has_finding`` selects the cases scored for gaze.
    """
    images = np.asarray(images, np.float64)
    rows = []
    refit = [name for name in given if name in CORRELATED or name.startswith(TEXTURE_PREFIX)]
    for k, image in enumerate(images):
        produced = registry.controls(refit, ControlInputs(image=image)) if refit else {}
        for name, maps in given.items():
            target = np.asarray(maps[k])
            if name in produced:
                rows.append((k, name, "correlation", map_correlation(target, produced[name], sigma)))
            elif name == "lungs":
                rows.append((k, name, "dice", dice(target >= 0.5, segment_lungs(image))))
            elif name == "gaze" and (has_finding is None or has_finding[k]):
                reference = lungs[k] if lungs is not None else segment_lungs(image)
                rows.append((k, name, "finding share", finding_share(image, reference, gaze_region(target))))
    return pd.DataFrame(rows, columns=["image", "control", "metric", "value"])


def summarise(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean (and count) of each control's metric per sampling condition, conditions as columns."""
    parts = []
    for condition, table in tables.items():
        grouped = table.groupby(["control", "metric"])["value"].agg(["mean", "count"])
        parts.append(grouped["mean"].rename(condition))
    return pd.concat(parts, axis=1)
