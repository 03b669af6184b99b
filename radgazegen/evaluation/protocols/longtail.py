"""The MIMIC-CXR-LT table: balanced accuracy and head / medium / tail accuracy without augmentation, with a
class-balanced loss and with generated images for the tail classes, and the long-tail claims."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from radgazegen.evaluation import bank, longtail
from radgazegen.evaluation.claims import HIGHER, Claim
from radgazegen.evaluation.cohort import NO_FINDING, reading_findings
from radgazegen.evaluation.stats import Estimate, bootstrap
from radgazegen.evaluation.study import Study


@dataclass
class _LongTail:
    """The long-tail protocol's data and classifiers (one study, one configuration)."""

    arms: dict
    test_images: np.ndarray
    test_y: np.ndarray
    classes: list[str]
    groups: dict[str, str]
    counts: dict[str, int]
    extra_y: np.ndarray

    def predictions(self, arm: str) -> np.ndarray:
        return self.arms[arm].predict(self.test_images).argmax(1)


def _longtail(study: Study, configuration: str) -> _LongTail:
    train, test = study.longtail_cohorts or (study.train, study.test.with_classes(study.train.classes))
    train_rows, train_y, classes = _single_label(train)
    test_rows, test_y, _ = _single_label(test, classes)
    counts = {c: int((train_y == k).sum()) for k, c in enumerate(classes)}
    groups = longtail.frequency_groups(counts)
    images = train.images[train_rows]
    tail = [c for c in classes if groups[c] == "tail"]
    extra_images, extra_y = _tail_samples(study, configuration, tail, classes)
    weights = longtail.class_balanced_weights(np.array([counts[c] for c in classes]))
    arms = {
        "none": study.classifier("lt-none", images, train_y, task="multiclass", classes=classes),
        "class-balanced loss": study.classifier("lt-balanced", images, train_y, task="multiclass", classes=classes,
                                                class_weights=weights),  # fmt: skip
        "generated tail": study.classifier(f"lt-{configuration}-tail", np.concatenate([images, extra_images]),
                                           np.concatenate([train_y, extra_y]), task="multiclass", classes=classes),
    }  # fmt: skip
    return _LongTail(arms, test.images[test_rows], test_y, classes, groups, counts, extra_y)


def longtail_table(study: Study, configuration: str = "both") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Balanced accuracy and head / medium / tail accuracy for three arms; also the class groups.

    Single-label images only, as MIMIC-CXR-LT: its split CSVs when the study has them, else the
    phantom's single-label readings (test: the held-out cohort). Arms: ``none`` (plain
    cross-entropy), ``class-balanced loss`` (Cui et al. weights), ``generated tail`` (plus
    ``tail_samples`` images per tail class from ``configuration``, prompted and controlled by the
    REFLACX training readings with that finding; a class no reading names gets none).
    """
    setup = _longtail(study, configuration)
    reports = []
    for arm in setup.arms:
        report = longtail.longtail_report(setup.test_y, setup.predictions(arm), setup.classes, setup.groups,
                                          n_boot=study.settings.bootstrap, seed=study.preset.seed)  # fmt: skip
        reports.append(report.assign(arm=arm))
    classes, test_y, extra_y = setup.classes, setup.test_y, setup.extra_y
    group_table = pd.DataFrame({"group": setup.groups, "training images": setup.counts,
                                "test images": {c: int((test_y == k).sum()) for k, c in enumerate(classes)},
                                "generated": {c: int((extra_y == k).sum()) for k, c in enumerate(classes)}})  # fmt: skip
    return pd.concat(reports).rename_axis("metric").reset_index().set_index(["arm", "metric"]), group_table


def longtail_claims(study: Study, configuration: str = "both") -> list[Claim]:
    """The long-tail claims: balanced and tail accuracy of ``generated tail`` minus ``none``, paired over test images."""
    setup = _longtail(study, configuration)
    generated, plain = setup.predictions("generated tail"), setup.predictions("none")
    per_class = [setup.groups[c] for c in setup.classes]
    metrics = {"balanced accuracy": longtail.balanced_accuracy,
               "tail accuracy": lambda y, p: longtail.group_accuracy(y, p, per_class).get("tail", float("nan"))}
    found = []
    for metric, score in metrics.items():
        estimate = bootstrap(lambda y, a, b, f=score: f(y, a) - f(y, b), setup.test_y, generated, plain,
                             n_boot=study.settings.bootstrap, seed=study.preset.seed)  # fmt: skip
        found.append(Claim("long tail", "generated images of the rare classes raise long-tailed accuracy", metric,
                           "generated tail", "none", HIGHER, estimate,
                           f"paired bootstrap over {len(setup.test_y)} test images ({study.settings.bootstrap})"))  # fmt: skip
    return found


def balanced_accuracy_estimate(study: Study, configuration: str) -> Estimate:
    """Balanced accuracy of the ``generated tail`` arm with ``configuration``'s tail samples, bootstrapped over test images."""
    setup = _longtail(study, configuration)
    return bootstrap(longtail.balanced_accuracy, setup.test_y, setup.predictions("generated tail"),
                     n_boot=study.settings.bootstrap, seed=study.preset.seed)  # fmt: skip


def _single_label(cohort, classes: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows of ``cohort`` with at most one finding and their class index in ``classes`` (default: the classes seen)."""
    names = [NO_FINDING, *cohort.classes]
    rows, index = longtail.single_label_cases(cohort.with_classes(names).labels, names, NO_FINDING)
    if classes is None:
        classes = [names[k] for k in sorted(set(index.tolist()))]
    keep = np.array([names[k] in classes for k in index], bool)
    return rows[keep], np.array([list(classes).index(names[k]) for k in index[keep]], int), list(classes)


def _tail_samples(study: Study, configuration: str, tail: Sequence[str], classes: Sequence[str]):
    """``tail_samples`` generated images per tail class, spread over the training readings whose only finding it is
    (else any training reading that has it), each with its own report and controls and new seeds."""
    size = study.preset.control_size
    images, labels = [np.zeros((0, size, size), np.float32)], [np.zeros(0, int)]
    readings = [case for case in study.dataset if case.split == "train"]
    findings = {case.id: reading_findings(case) for case in readings}
    for name in tail:
        cases = [c for c in readings if findings[c.id] == {name}] or [c for c in readings if name in findings[c.id]]
        if not cases:
            continue
        per_case = np.full(len(cases), study.settings.tail_samples // len(cases))
        per_case[: study.settings.tail_samples % len(cases)] += 1
        chosen = [(case, int(n)) for case, n in zip(cases, per_case, strict=True) if n > 0]
        folder = study.run_dir / "samples" / "tail" / configuration / name.replace(" ", "_").replace("/", "_")
        chosen_cases, arm = [c for c, _ in chosen], study.configuration(configuration)
        donors = bank.donor_cases(study.dataset, chosen_cases, study.preset.seed) if arm.anatomy == bank.DONOR else None
        samples = bank.generate(study.pipe, arm, chosen_cases, study.run_dir, study.preset, copies=[n for _, n in chosen],
                                donors=donors, folder=folder, progress=study.progress)  # fmt: skip
        images.append(samples.images)
        labels.append(np.full(len(samples.images), list(classes).index(name)))
    return np.concatenate(images), np.concatenate(labels)
