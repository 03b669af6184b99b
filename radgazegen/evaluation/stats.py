"""Statistics shared by the evaluation protocols: bootstrap confidence intervals and a fast AUROC."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


@dataclass(frozen=True)
class Estimate:
    """A statistic on the full sample and its percentile-bootstrap confidence interval."""

    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


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


def auroc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    r"""AUROC of each column of ``scores`` ``(n, C)`` against 0/1 ``labels``; NaN where a column lacks a class.

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
