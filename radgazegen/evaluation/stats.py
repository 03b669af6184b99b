"""Statistics shared by the evaluation protocols: bootstrap and half-sampling intervals, and a fast AUROC.

* :func:`bootstrap`: percentile bootstrap over paired rows, for statistics that are means or ranks of
  per-row values (SSIM, accuracy, AUROC); a paired difference is a statistic of both arms' rows;
* :func:`half_sample`: intervals for set distances (FID, KID, FRD), which resampling with replacement
  inflates (a resample repeats images, so its covariance shrinks and its distance grows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


@dataclass(frozen=True)
class Estimate:
    """A statistic on the full sample and its confidence interval (bootstrap or half-sampling)."""

    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def columns(self, prefix: str) -> dict[str, float]:
        """The table columns ``<prefix>``, ``<prefix> low`` and ``<prefix> high`` (as the results page reads them)."""
        return {prefix: self.value, f"{prefix} low": self.low, f"{prefix} high": self.high}


def bootstrap(
    statistic: Callable[..., float],
    *samples: np.ndarray,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    r"""``statistic(*samples)`` with a percentile bootstrap interval.

    The rows of all ``samples`` are resampled together (paired), ``n_boot`` times. Resamples on
    which the statistic is undefined (NaN, e.g. an AUROC with one class only) are skipped; the
    interval is :math:`[q_{\alpha/2}, q_{1-\alpha/2}]` of the remaining replicates, :math:`\alpha = 1 - \text{confidence}`.
    """
    if not samples:
        raise ValueError("bootstrap needs at least one sample array")
    arrays = [np.asarray(s) for s in samples]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"paired samples must have equal length, got {[len(a) for a in arrays]}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    value = float(statistic(*arrays))
    if n < 2:
        return Estimate(value, float("nan"), float("nan"), n)
    rng = np.random.default_rng(seed)
    replicates = np.array(
        [statistic(*(a[rows] for a in arrays)) for rows in rng.integers(0, n, size=(n_boot, n))], float
    )
    replicates = replicates[np.isfinite(replicates)]
    if len(replicates) == 0:
        return Estimate(value, float("nan"), float("nan"), n)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(replicates, [alpha, 1 - alpha])
    return Estimate(value, float(low), float(high), n)


def half_sample(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    n_rep: int = 100,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    r"""``statistic(rows)`` on all ``n`` rows with a half-sampling (delete-d jackknife) interval.

    Each replicate evaluates the statistic on :math:`m = \lfloor n/2 \rfloor` rows drawn *without*
    replacement, so no image is repeated. The deviations of the replicates from their mean,
    scaled by :math:`\sqrt{m/(n-m)}` (the finite-population factor; 1 for even :math:`n`), estimate the
    sampling distribution of the full-set value :math:`\hat\theta_n` (Shao & Wu 1989, delete-d jackknife
    with :math:`d = n - m`); centring on the replicates' mean removes the upward small-sample bias of a
    set distance at size :math:`m`. The interval is the basic one,
    :math:`[\hat\theta_n - q_{1-\alpha/2}, \hat\theta_n - q_{\alpha/2}]` of those deviations
    (:math:`\alpha = 1 - \text{confidence}`). ``statistic`` takes an index array; for a paired difference it
    evaluates both arms on the same rows. Replicates that are not finite are skipped; fewer than 4 rows
    give no interval (NaN).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n < 2 or n_rep < 1:
        raise ValueError(f"half-sampling needs n >= 2 rows and n_rep >= 1 replicates, got n={n}, n_rep={n_rep}")
    value = float(statistic(np.arange(n)))
    m = n // 2
    if n < 4:
        return Estimate(value, float("nan"), float("nan"), n)
    rng = np.random.default_rng(seed)
    replicates = np.array([statistic(np.sort(rng.permutation(n)[:m])) for _ in range(n_rep)], float)
    replicates = replicates[np.isfinite(replicates)]
    if len(replicates) < 2:
        return Estimate(value, float("nan"), float("nan"), n)
    deviations = (replicates - replicates.mean()) * np.sqrt(m / (n - m))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(deviations, [alpha, 1 - alpha])
    return Estimate(value, float(value - high), float(value - low), n)


def auroc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    r"""AUROC of each column of ``scores`` ``(n, C)`` against 0/1 ``labels``; NaN where a column lacks a class.

    Our own rather than ``sklearn.metrics.roc_auc_score`` (which the tests check it against) because
    the bootstraps call it for every column of a thousand resamples: one vectorised rank pass per call
    instead of a Python-level call per column, and NaN instead of an exception when a resample has one class.

    The Mann-Whitney form of the area under the ROC curve, ties counting one half (as
    ``sklearn.metrics.roc_auc_score``):
    :math:`\mathrm{AUROC} = \frac{R_+ - n_+(n_+ + 1)/2}{n_+ n_-}`, with :math:`R_+` the sum of the
    positives' mid-ranks among all scores and :math:`n_\pm` the numbers of positives and negatives.
    """
    labels, scores = np.asarray(labels, bool), np.asarray(scores, np.float64)
    ranks = rankdata(scores, axis=0)
    positives = labels.sum(0)
    negatives = len(labels) - positives
    with np.errstate(invalid="ignore", divide="ignore"):
        area = ((ranks * labels).sum(0) - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), area, np.nan)
