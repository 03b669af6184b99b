r"""The MIMIC-CXR-LT protocol (Holste et al. 2022): single-label multi-class classification of a long-tailed set.

Images with exactly one finding (or none: "No finding") are kept; classes are grouped by their
training frequency into head, medium and tail; the classifier is scored by balanced accuracy
(mean per-class recall) overall and within each group:

.. math:: \mathrm{bAcc} = \frac{1}{|K|} \sum_{c \in K} \frac{|\{i : y_i = c, \hat y_i = c\}|}{|\{i : y_i = c\}|}

with :math:`K` the classes present in the test labels (or in one group).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from radgazegen.evaluation.stats import bootstrap

GROUPS = ("head", "medium", "tail")
HOLSTE_THRESHOLDS = (1000, 100)
"""Holste et al.'s absolute cut-offs on MIMIC-CXR-LT: head > 1000 training images, tail < 100, medium between."""


def frequency_groups(
    counts: Mapping[str, int],
    head_share: float = 1 / 3,
    tail_share: float = 1 / 3,
    *,
    thresholds: tuple[int, int] | None = None,
) -> dict[str, str]:
    """Each class's group (``head`` / ``medium`` / ``tail``) by its training-set count.

    By default by rank, which works at any data-set size (a 100-image phantom included): the
    ``round(head_share * C)`` most frequent of the ``C`` classes are head, the
    ``round(tail_share * C)`` least frequent are tail (ties broken by name). With
    ``thresholds=(many, few)``, by absolute count as Holste et al.: head if count > ``many``,
    tail if count < ``few``, else medium (``HOLSTE_THRESHOLDS`` for the real MIMIC-CXR-LT).
    """
    if any(n < 0 for n in counts.values()):
        raise ValueError(f"counts must be non-negative, got {dict(counts)}")
    if thresholds is not None:
        many, few = thresholds
        if few > many:
            raise ValueError(f"thresholds must be (many, few) with many >= few, got {thresholds}")
        return {c: "head" if n > many else "tail" if n < few else "medium" for c, n in counts.items()}
    if not (0 <= head_share <= 1 and 0 <= tail_share <= 1 and head_share + tail_share <= 1):
        raise ValueError(f"head_share and tail_share must lie in [0, 1] with sum <= 1, got {head_share}, {tail_share}")
    ranked = sorted(counts, key=lambda c: (-counts[c], c))
    n_head, n_tail = round(head_share * len(ranked)), round(tail_share * len(ranked))
    return {
        c: "head" if i < n_head else "tail" if i >= len(ranked) - n_tail else "medium" for i, c in enumerate(ranked)
    }


def class_balanced_weights(counts: Mapping[str, int] | Sequence[int], beta: float = 0.999) -> np.ndarray:
    r"""Class-balanced loss weights of Cui et al. (2019), in the order of ``counts``.

    :math:`w_c \propto (1 - \beta) / (1 - \beta^{n_c})`, the inverse effective number of the
    class's :math:`n_c` training images, normalised so that :math:`\sum_c w_c = C`. A class with no
    training image counts as one (its weight never enters a cross-entropy loss).
    """
    n = np.asarray(list(counts.values()) if isinstance(counts, Mapping) else counts, np.float64)
    if n.ndim != 1 or len(n) == 0 or (n < 0).any():
        raise ValueError(f"counts must be a non-empty list of non-negative numbers, got {n}")
    if not 0 <= beta < 1:
        raise ValueError(f"beta must lie in [0, 1), got {beta}")
    weights = (1 - beta) / (1 - beta ** np.maximum(n, 1))
    return weights / weights.sum() * len(n)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true``: ``sklearn.metrics.balanced_accuracy_score`` (NaN when empty).

    A predicted class that ``y_true`` lacks has no recall and is left out, as sklearn does (its warning silenced).
    """
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    y_true, y_pred = _check_pair(y_true, y_pred)
    if not len(y_true):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(y_true, y_pred))


def group_accuracy(y_true: np.ndarray, y_pred: np.ndarray, groups: Sequence[str]) -> dict[str, float]:
    """Mean recall of the classes of each group present in ``y_true`` (NaN for a group with none).

    ``groups[c]`` is the group of class index ``c``; the result lists groups in ``GROUPS`` order.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    if len(y_true) and y_true.max() >= len(groups):
        raise ValueError(f"class index {y_true.max()} has no group ({len(groups)} groups given)")
    result = {}
    for group in sorted(set(groups), key=lambda g: (GROUPS.index(g) if g in GROUPS else len(GROUPS), g)):
        members = np.isin(y_true, [c for c, g in enumerate(groups) if g == group])
        result[group] = balanced_accuracy(y_true[members], y_pred[members])
    return result


def single_label_cases(
    labels: np.ndarray, classes: Sequence[str], no_finding: str = "No finding"
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of 0/1 ``labels`` ``(n, C)`` with one positive, or none, and their class index.

    As the long-tail benchmark, readings with several findings are dropped; a reading with none is
    class ``no_finding``, which must be among ``classes`` (add an all-zero column, e.g. with
    ``Cohort.with_classes``).
    """
    labels, classes = np.asarray(labels), list(classes)
    if labels.ndim != 2 or labels.shape[1] != len(classes) or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0/1 of shape (n, {len(classes)}), got shape {labels.shape}")
    if no_finding not in classes:
        raise ValueError(f"classes lack {no_finding!r}, the class of readings without findings: {classes}")
    positives = labels.sum(1)
    rows = np.flatnonzero(positives <= 1)
    index = np.where(positives[rows] == 1, labels[rows].argmax(1), classes.index(no_finding))
    return rows, index.astype(np.int64)


def longtail_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: Sequence[str],
    groups: Mapping[str, str],
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Balanced accuracy overall and per frequency group, with bootstrap 95% intervals.

    ``groups`` maps each class name to its group (:func:`frequency_groups`). Index ``balanced``
    then the groups; columns ``accuracy, low, high`` and ``classes`` (classes of the row present
    in ``y_true``).
    """
    classes = list(classes)
    missing = [c for c in classes if c not in groups]
    if missing:
        raise ValueError(f"classes without a group: {missing}")
    y_true, y_pred = _check_pair(y_true, y_pred, len(classes))
    per_class = [groups[c] for c in classes]
    present = set(np.unique(y_true).tolist())
    overall = bootstrap(balanced_accuracy, y_true, y_pred, n_boot=n_boot, seed=seed)
    rows = {"balanced": (overall.value, overall.low, overall.high, len(present))}
    for group in group_accuracy(y_true, y_pred, per_class):
        estimate = bootstrap(lambda t, p, g=group: group_accuracy(t, p, per_class)[g], y_true, y_pred,
                             n_boot=n_boot, seed=seed)  # fmt: skip
        rows[group] = (estimate.value, estimate.low, estimate.high, sum(per_class[c] == group for c in present))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["accuracy", "low", "high", "classes"])


def _check_pair(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be class indices of equal length")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if len(y) and (y.dtype.kind not in "iu" or y.min() < 0 or (n_classes is not None and y.max() >= n_classes)):
            raise ValueError(f"{name} must hold class indices" + (f" 0..{n_classes - 1}" if n_classes else ""))
    return y_true, y_pred
