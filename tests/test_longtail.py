"""The MIMIC-CXR-LT protocol: frequency groups, class-balanced weights, balanced accuracy and its report."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from radgazegen.evaluation.longtail import (
    HOLSTE_THRESHOLDS,
    balanced_accuracy,
    class_balanced_weights,
    frequency_groups,
    group_accuracy,
    longtail_report,
    single_label_cases,
)

COUNTS = {"No finding": 40, "Opacity": 25, "Effusion": 12, "Edema": 8, "Nodule": 3, "Pneumothorax": 1}


def test_frequency_groups_by_rank_and_by_holste_thresholds() -> None:
    assert frequency_groups(COUNTS) == {"No finding": "head", "Opacity": "head", "Effusion": "medium",
                                        "Edema": "medium", "Nodule": "tail", "Pneumothorax": "tail"}  # fmt: skip
    assert list(frequency_groups(COUNTS, 0.5, 0.0).values()).count("head") == 3
    real = {"Lung Opacity": 15000, "Edema": 1000, "Fracture": 100, "Pneumomediastinum": 99}
    assert frequency_groups(real, thresholds=HOLSTE_THRESHOLDS) == {
        "Lung Opacity": "head", "Edema": "medium", "Fracture": "medium", "Pneumomediastinum": "tail"}  # fmt: skip
    with pytest.raises(ValueError, match="sum"):
        frequency_groups(COUNTS, 0.6, 0.6)
    with pytest.raises(ValueError, match="many >= few"):
        frequency_groups(COUNTS, thresholds=(10, 100))


def test_class_balanced_weights_follow_the_effective_number() -> None:
    weights = class_balanced_weights(COUNTS, beta=0.9)
    n = np.array(list(COUNTS.values()), float)
    expected = (1 - 0.9) / (1 - 0.9**n)
    np.testing.assert_allclose(weights, expected / expected.sum() * len(n))
    assert weights.sum() == pytest.approx(len(COUNTS)) and np.all(np.diff(weights) >= 0)  # rarer, heavier
    np.testing.assert_allclose(class_balanced_weights([5, 500], beta=0.0), [1, 1])  # beta 0: no re-weighting
    np.testing.assert_allclose(class_balanced_weights([0, 1, 10]), class_balanced_weights([1, 1, 10]))
    with pytest.raises(ValueError, match="beta"):
        class_balanced_weights(COUNTS, beta=1.0)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_balanced_accuracy_equals_sklearn() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        y_true = rng.integers(0, 6, 50)
        y_pred = np.where(rng.random(50) < 0.5, y_true, rng.integers(0, 7, 50))  # also a class never true
        assert balanced_accuracy(y_true, y_pred) == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-12)
    with pytest.raises(ValueError, match="equal length"):
        balanced_accuracy([0, 1], [0])


def test_group_accuracy_is_the_mean_recall_within_each_group() -> None:
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2, 3])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2, 0, 0])
    groups = ["head", "head", "tail", "tail", "medium"]  # class 4 (medium) never occurs
    result = group_accuracy(y_true, y_pred, groups)
    assert list(result) == ["head", "medium", "tail"]
    assert result["head"] == pytest.approx((3 / 4 + 1 / 2) / 2) and result["tail"] == pytest.approx((1 / 2 + 0) / 2)
    assert np.isnan(result["medium"])


def test_single_label_cases_keep_one_finding_or_none() -> None:
    classes = ["Edema", "Nodule", "No finding"]
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 0], [0, 0, 1]])
    rows, index = single_label_cases(labels, classes)
    np.testing.assert_array_equal(rows, [0, 2, 3, 4])
    np.testing.assert_array_equal(index, [0, 2, 1, 2])
    with pytest.raises(ValueError, match="lack 'No finding'"):
        single_label_cases(labels[:, :2], classes[:2])


def test_longtail_report_has_intervals_around_each_accuracy() -> None:
    rng = np.random.default_rng(1)
    classes = list(COUNTS)
    y_true = rng.choice(len(classes), 300, p=np.array(list(COUNTS.values())) / sum(COUNTS.values()))
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, len(classes), 300))
    report = longtail_report(y_true, y_pred, classes, frequency_groups(COUNTS), n_boot=200, seed=0)
    assert list(report.index) == ["balanced", "head", "medium", "tail"]
    assert report.loc["balanced", "accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert (report["low"] <= report["accuracy"]).all() and (report["accuracy"] <= report["high"]).all()
    assert report["classes"].tolist() == [len(set(y_true)), 2, 2, len(set(y_true) & {4, 5})]
    with pytest.raises(ValueError, match="without a group"):
        longtail_report(y_true, y_pred, classes, {"Opacity": "head"}, n_boot=10)
    with pytest.raises(ValueError, match="class indices 0..5"):
        longtail_report(y_true, y_pred + 1, classes, frequency_groups(COUNTS), n_boot=10)
