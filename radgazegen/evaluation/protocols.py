"""The paper's evaluation protocols on a :class:`~radgazegen.evaluation.study.Study`, one function per table.

Each protocol's ``*_claims`` function decides the paper's claims about it as paired differences
(:mod:`radgazegen.evaluation.claims`).

* :func:`quality_table` — REFLACX protocol: FRD, FID / KID (in-project CXR features; Inception when
  its weights are given), MS-SSIM diversity, paired SSIM, text-image agreement (CLIP score when a
  local CLIP is given), per sampling configuration, beside a real-vs-real reference.
* :func:`classification_table` — CheXpert protocol: AUROC per finding for classifiers trained on
  real, real + generated and generated-only images.
* :func:`longtail_table` — MIMIC-CXR-LT protocol: balanced accuracy, head / medium / tail accuracy
  without augmentation, with a class-balanced loss and with generated images for the tail classes.
* :func:`adherence_table` (from :func:`adherence_tables`) and :func:`ablation_table` — every configuration at
  an equal budget.
* :func:`attribution_table` — captum attributions of the classifier against gaze and finding masks.
* :func:`placement_protocol` — the gaze-placement ("hypotheses") protocol: counterfactual gaze, the
  finding located by the segmenter (:mod:`radgazegen.evaluation.placement`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from radgazegen.evaluation import bank
from radgazegen.evaluation.claims import HIGHER, LOWER, Claim
from radgazegen.evaluation.stats import Estimate, bootstrap, half_sample
from radgazegen.evaluation.study import Study, training_digest
from radgazegen.io import write_json_atomic

REAL = "real"  # the reference row: real images against real images


def _estimate_columns(prefix: str, estimate: Estimate) -> dict[str, float]:
    return {prefix: estimate.value, f"{prefix} low": estimate.low, f"{prefix} high": estimate.high}


SET_DISTANCES = ("FRD", "FRD (torch, Original)", "FID (CXR)", "FID (Inception)")
"""The set distances of the quality table: frd-score's FRD v1 (headline), our torch port on Original features,
FID on the CXR feature network's features (and on Inception's when its weights are given)."""


@dataclass
class ImageSet:
    """One set of images with everything the quality table needs of it, rows aligned with the readings."""

    name: str
    label: str
    images: np.ndarray
    prompted: np.ndarray  # (n, C) findings the prompts (or, for real images, the labels) name
    prompts: list[str]
    rows: dict[str, object] = field(default_factory=dict)  # per set distance: the feature rows of its images
    paired_ssim: np.ndarray | None = None  # each image against the real image of its reading
    diversity: np.ndarray | None = None  # MS-SSIM of each pair of samples of one reading
    predicted: np.ndarray | None = None


class QualityEvaluation:
    """Chapter 5's measurements: every configuration's samples and the held-out real images against the real
    images of the conditioning readings; :meth:`table` (one row per set) and :meth:`claims` (paired differences).

    Set distances: frd-score's FRD v1, our torch FRD on Original features, FID / KID on the features of the
    CXR network trained on :attr:`Study.feature_cohort` (readings that are neither a reference image nor a
    conditioning reading), FID on Inception with ``inception_weights``. Their intervals are half-sampling ones
    (:func:`~radgazegen.evaluation.stats.half_sample`) over the readings, the reference set held fixed; KID
    reports torchmetrics' mean and standard deviation over subsets of half of each set. Per-image metrics
    (SSIM to real, MS-SSIM, agreement, CLIP) have percentile-bootstrap intervals over readings.
    """

    def __init__(self, study: Study, *, inception_weights: str | Path | None = None,
                 clip_dir: str | Path | None = None, configurations: Sequence[str] | None = None) -> None:  # fmt: skip
        from radgazegen.evaluation import frd, quality

        self.study, self.clip_dir = study, clip_dir
        settings = study.settings
        self.replicates = min(settings.bootstrap, 100)  # half-sampling replicates of each set distance
        reference = study.condition_cohort
        held = study.test.subset(np.arange(min(len(reference), len(study.test))))
        self.reference = reference
        extractors = {"FID (CXR)": study.feature_classifier.features}
        if inception_weights:
            extractors["FID (Inception)"] = quality.TorchScriptFeatures(inception_weights, device=study.device)
        self.sets: dict[str, ImageSet] = {
            REAL: ImageSet(REAL, "real images (held-out reference)", held.images, held.labels.astype(bool), held.prompts)
        }
        for configuration in study.configurations:
            if configurations is not None and configuration.name not in configurations:
                continue
            samples = study.samples(configuration.name)
            _, images = samples.first()
            found = ImageSet(configuration.name, configuration.label, images, reference.labels.astype(bool),
                             reference.prompts, paired_ssim=quality.ssim(images, reference.images))  # fmt: skip
            pairs = samples.pairs()
            found.diversity = quality.ms_ssim(*pairs) if len(pairs[0]) else None
            self.sets[configuration.name] = found
        self.sets[REAL].diversity = quality.ms_ssim(*_real_pairs(held.images, settings.diversity_pairs, study.preset.seed))
        bar = tqdm(total=len(self.sets) + 1, desc="quality features", unit="set", disable=not study.progress)
        v1_reference = frd.frd_v1_features(reference.images)
        self.reference_rows = {"FRD (torch, Original)": frd.radiomic_features(reference.images),
                               **{column: extract(reference.images) for column, extract in extractors.items()}}  # fmt: skip
        bar.update()
        v1 = []
        for found in self.sets.values():
            v1.append(frd.frd_v1_features(found.images))
            found.rows["FRD (torch, Original)"] = frd.radiomic_features(found.images)
            for column, extract in extractors.items():
                found.rows[column] = extract(found.images)
            found.predicted = study.reference_classifier.predict(found.images)
            bar.update()
        bar.close()
        self.frd = {name: {"FRD": frd.frechet_radiomics_distance(v1_reference, table),
                           "FRD (torch, Original)": frd.frechet_radiomics_distance(
                               self.reference_rows["FRD (torch, Original)"], found.rows["FRD (torch, Original)"])}
                    for (name, found), table in zip(self.sets.items(), v1, strict=True)}  # fmt: skip
        # the z-scored rows the half-sampling replicates take subsets of (see distance)
        self.zscores: dict[str, dict[str, np.ndarray]] = {name: {} for name in self.sets}
        self.reference_zscores: dict[str, np.ndarray] = {}
        for column, reference_table, tables in (
            ("FRD", v1_reference, v1),
            ("FRD (torch, Original)", self.reference_rows["FRD (torch, Original)"].to_numpy(),
             [found.rows["FRD (torch, Original)"].to_numpy() for found in self.sets.values()]),
        ):  # fmt: skip
            self.reference_zscores[column], zscores = frd.frd_zscores(reference_table, tables)
            for name, z in zip(self.sets, zscores, strict=True):
                self.zscores[name][column] = z

    # -- set distances ------------------------------------------------------------------------------
    def distance(self, column: str, name: str, rows: np.ndarray | None = None) -> float:
        """Set distance ``column`` of set ``name`` (its ``rows`` only, when given) to the reference set."""
        from radgazegen.evaluation import quality

        if column in self.reference_zscores:  # FRD: frd-score's value on the full set, log d² of the z-scored rows of a subset
            if rows is None:
                return self.frd[name][column]
            return float(np.log(quality.frechet_from_rows(self.reference_zscores[column], self.zscores[name][column][rows])))
        found, reference = self.sets[name].rows[column], self.reference_rows[column]
        if rows is None:
            return quality.frechet_distance(reference, found)  # torchmetrics' FID
        return quality.frechet_from_rows(reference, found[rows])

    def _distance_estimate(self, column: str, name: str, other: str | None = None) -> Estimate:
        """Half-sampling estimate of a set distance, or of the paired difference ``name - other``."""
        n = len(self.sets[name].images)

        def statistic(rows: np.ndarray) -> float:
            subset = None if len(rows) == n else rows
            value = self.distance(column, name, subset)
            return value - self.distance(column, other, subset) if other else value

        return half_sample(statistic, n, n_rep=self.replicates, seed=self.study.preset.seed)

    # -- outputs --------------------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """One row per set (``real`` first): each metric with its 95% interval columns ``<metric> low / high``."""
        from radgazegen.evaluation import quality

        settings, seed = self.study.settings, self.study.preset.seed
        rows = {}
        for name, found in self.sets.items():
            row: dict[str, object] = {"label": found.label, "images": len(found.images)}
            for column in SET_DISTANCES:
                if column in found.rows or column in self.reference_zscores:
                    row |= _estimate_columns(column, self._distance_estimate(column, name))
            features = found.rows["FID (CXR)"]
            size = len(features) // 2
            if size >= 2:
                row["KID (CXR)"], row["KID (CXR) std"] = quality.kernel_inception_distance(
                    self.reference_rows["FID (CXR)"], features, subset_size=size, subsets=50, seed=seed)  # fmt: skip
            if found.diversity is not None:
                row |= _estimate_columns("MS-SSIM", bootstrap(np.mean, found.diversity, n_boot=settings.bootstrap))
            if found.paired_ssim is not None:
                row |= _estimate_columns("SSIM to real", bootstrap(np.mean, found.paired_ssim, n_boot=settings.bootstrap))
            row |= _estimate_columns("agreement AUROC", bootstrap(quality.finding_agreement, found.prompted,
                                                                  found.predicted, n_boot=settings.bootstrap))  # fmt: skip
            if self.clip_dir:
                scores = quality.clip_score(found.images, found.prompts, self.clip_dir)
                row |= _estimate_columns("CLIP score", bootstrap(np.mean, scores, n_boot=settings.bootstrap))
            rows[name] = row
        return pd.DataFrame.from_dict(rows, orient="index")

    def claims(self) -> list[Claim]:
        """The paper's quality and ablation claims as paired differences over the conditioning readings."""
        comparisons = [("both", "text", "RadGazeGen (Rad-CN + HVA-CN) is closer to real images than SD text only"),
                       ("both", "rad", "both ControlNets beat Rad-CN alone"),
                       ("both", "gaze", "both ControlNets beat HVA-CN alone")]  # fmt: skip
        found = []
        n = len(self.reference)
        boot = self.study.settings.bootstrap
        for first, second, claim in comparisons:
            if first not in self.sets or second not in self.sets:
                continue
            protocol = "quality" if second == "text" else "ablation"
            for column in ("FRD", "FID (CXR)"):
                found.append(Claim(protocol, claim, column, first, second, LOWER,
                                   self._distance_estimate(column, first, second),
                                   f"half-sampling over {n} readings ({self.replicates})"))  # fmt: skip
            a, b = self.sets[first], self.sets[second]
            found.append(Claim(protocol, claim, "SSIM to real", first, second, HIGHER,
                               bootstrap(np.mean, a.paired_ssim - b.paired_ssim, n_boot=boot, seed=self.study.preset.seed),
                               f"paired bootstrap over {n} readings ({boot})"))  # fmt: skip
            if second == "text" and a.diversity is not None and b.diversity is not None:
                found.append(Claim(protocol, "RadGazeGen keeps the diversity of SD text only (MS-SSIM not higher)",
                                   "MS-SSIM", first, second, LOWER,
                                   bootstrap(np.mean, a.diversity - b.diversity, n_boot=boot, seed=self.study.preset.seed),
                                   f"paired bootstrap over {len(a.diversity)} readings ({boot})"))  # fmt: skip
        return found


def quality_table(
    study: Study,
    *,
    inception_weights: str | Path | None = None,
    clip_dir: str | Path | None = None,
    configurations: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Quality and diversity of every configuration's samples (rows), reference row ``real`` first
    (:class:`QualityEvaluation`; its :meth:`~QualityEvaluation.claims` decide the paper's claims)."""
    return QualityEvaluation(study, inception_weights=inception_weights, clip_dir=clip_dir,
                             configurations=configurations).table()  # fmt: skip


def _real_pairs(images: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs of distinct real images (the diversity of the real data)."""
    rng = np.random.default_rng(seed)
    first = rng.permutation(len(images))[:n]
    second = (first + 1 + rng.integers(0, len(images) - 1, size=len(first))) % len(images)
    return images[first], images[second]


def _classification_arms(study: Study, configuration: str) -> dict:
    """The three training arms of the CheXpert protocol, trained once and cached."""
    generated, labels = study.generated_training_set(configuration)
    return {
        "real": study.reference_classifier,
        "real + generated": study.classifier(
            f"real+{configuration}",
            np.concatenate([study.train.images, generated]),
            np.concatenate([study.train.labels, labels]),
        ),  # fmt: skip
        "generated only": study.classifier(f"{configuration}-only", generated, labels),
    }


def classification_table(study: Study, configuration: str = "both") -> pd.DataFrame:
    """AUROC per finding (and the mean) on the held-out real test set for three training arms.

    Arms: ``real`` (the real training readings), ``real + generated`` (plus every sample of
    ``configuration``, labelled with its prompt's findings), ``generated only``.
    """
    from radgazegen.evaluation.classify import auroc_table

    tables = []
    for arm, classifier in _classification_arms(study, configuration).items():
        scores = classifier.predict(study.test.images)
        table = auroc_table(study.test.labels, scores, study.train.classes, n_boot=study.settings.bootstrap,
                            seed=study.preset.seed)  # fmt: skip
        tables.append(table.assign(arm=arm))
    return pd.concat(tables).rename_axis("finding").reset_index().set_index(["arm", "finding"])


def classification_claims(study: Study, configuration: str = "both") -> list[Claim]:
    """The CheXpert claim: mean AUROC of real + generated minus real, paired over the same test images."""
    from radgazegen.evaluation.classify import mean_auroc

    arms = _classification_arms(study, configuration)
    augmented, real = (arms[arm].predict(study.test.images) for arm in ("real + generated", "real"))
    estimate = bootstrap(lambda y, a, b: mean_auroc(y, a) - mean_auroc(y, b), study.test.labels, augmented, real,
                         n_boot=study.settings.bootstrap, seed=study.preset.seed)  # fmt: skip
    return [Claim("classification", "training with generated images raises the classifier's AUROC", "mean AUROC",
                  "real + generated", "real", HIGHER, estimate,
                  f"paired bootstrap over {len(study.test)} test images ({study.settings.bootstrap})")]  # fmt: skip


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
    from radgazegen.evaluation import longtail

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
    from radgazegen.evaluation import longtail

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
    from radgazegen.evaluation import longtail

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


def _single_label(cohort, classes: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows of ``cohort`` with at most one finding and their class index in ``classes`` (default: the classes seen)."""
    from radgazegen.evaluation.cohort import NO_FINDING
    from radgazegen.evaluation.longtail import single_label_cases

    names = [NO_FINDING, *cohort.classes]
    rows, index = single_label_cases(cohort.with_classes(names).labels, names, NO_FINDING)
    if classes is None:
        classes = [names[k] for k in sorted(set(index.tolist()))]
    keep = np.array([names[k] in classes for k in index], bool)
    return rows[keep], np.array([list(classes).index(names[k]) for k in index[keep]], int), list(classes)


def _tail_samples(study: Study, configuration: str, tail: Sequence[str], classes: Sequence[str]):
    """``tail_samples`` generated images per tail class, spread over the training readings whose only finding it is
    (else any training reading that has it), each with its own report and controls and new seeds."""
    from radgazegen.evaluation.cohort import reading_findings

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
        samples = bank.generate(study.pipe, study.configuration(configuration), [c for c, _ in chosen], study.run_dir,
                                study.preset, copies=[n for _, n in chosen], folder=folder,
                                progress=study.progress)  # fmt: skip
        images.append(samples.images)
        labels.append(np.full(len(samples.images), list(classes).index(name)))
    return np.concatenate(images), np.concatenate(labels)


def adherence_tables(study: Study) -> dict[str, pd.DataFrame]:
    """Per-image adherence of the real images and of every configuration's samples to all of the generator's controls.

    Each table has one row per (image, control, metric) (:func:`~radgazegen.evaluation.adherence.adherence`),
    images numbered by conditioning reading, so configurations pair up reading by reading. Findings in
    generated images are located by a segmenter trained on the phantom's ground-truth masks (real data has
    none: then by the intensity-outlier rule of :func:`~radgazegen.evaluation.adherence.anomaly_mask`).
    """
    from radgazegen.controls.extract import load_controls
    from radgazegen.evaluation.adherence import adherence

    names = list(study.preset.controls)
    registry = study.pipe.registry
    given_per_case = [load_controls(study.run_dir, case.id, names, registry) for case in study.conditions]
    given = {name: np.stack([g[name] for g in given_per_case]) for name in names}
    has_finding = study.condition_cohort.labels.any(axis=1)
    segmenter = finding_segmenter(study)
    tables = {
        REAL: adherence(study.condition_cohort.images, given, registry, has_finding=has_finding, segmenter=segmenter)
    }
    for configuration in study.configurations:
        _, images = study.samples(configuration.name).first()
        tables[configuration.name] = adherence(images, given, registry, has_finding=has_finding, segmenter=segmenter)
    return tables


def adherence_table(study: Study, tables: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Mean adherence per control and metric (rows) and configuration (columns), ``real`` first."""
    from radgazegen.evaluation.adherence import summarise

    return summarise(tables if tables is not None else adherence_tables(study))


LOWER_IS_BETTER = ("mae", "centroid distance")
"""Adherence metrics where smaller values mean closer adherence (the others: correlation, F1, SSIM, Dice, share)."""


def adherence_claims(study: Study, tables: dict[str, pd.DataFrame]) -> list[Claim]:
    """Each control's adherence under RadGazeGen minus under SD text only, paired over the conditioning readings.

    The paper's controls are judged in its configuration ``both``, our texture maps in ``both+texture``.
    """
    found = []
    boot, seed = study.settings.bootstrap, study.preset.seed
    for (control, metric), _ in tables["text"].groupby(["control", "metric"]):
        configuration = "both+texture" if control.startswith("texture:") else "both"
        if configuration not in tables:
            continue
        pick = [t[(t["control"] == control) & (t["metric"] == metric)].set_index("image")["value"]
                for t in (tables[configuration], tables["text"])]  # fmt: skip
        paired = pd.concat(pick, axis=1, keys=["first", "second"]).dropna()
        if paired.empty:
            continue
        differences = (paired["first"] - paired["second"]).to_numpy()
        found.append(Claim("adherence", f"RadGazeGen follows its {control} control", f"{control} {metric}",
                           configuration, "text", LOWER if metric in LOWER_IS_BETTER else HIGHER,
                           bootstrap(np.mean, differences, n_boot=boot, seed=seed),
                           f"paired bootstrap over {len(differences)} readings ({boot})"))  # fmt: skip
    return found


def finding_segmenter(study: Study):
    """The finding segmenter trained on the phantom's training readings and ground-truth masks (``None`` for real data)."""
    from radgazegen.data.phantom.truth import finding_masks
    from radgazegen.errors import DataFormatError
    from radgazegen.evaluation.segmenter import FindingSegmenter, train_segmenter

    folder = study.run_dir / "segmenter"
    try:
        masks = finding_masks(study.dataset.root, study.train.ids, study.preset.control_size)
    except DataFormatError:
        return None
    digest = training_digest(study.train.images, masks, study.settings.segmenter_epochs, study.preset.seed)
    stamp = folder / "training.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("digest") == digest:
        return FindingSegmenter.load(folder)
    segmenter = train_segmenter(study.train.images, masks, epochs=study.settings.segmenter_epochs, seed=study.preset.seed,
                                progress=study.progress)  # fmt: skip
    segmenter.save(folder)
    write_json_atomic(stamp, {"digest": digest, "images": len(masks)})
    return segmenter


def ablation_table(study: Study, quality: pd.DataFrame, adherence: pd.DataFrame) -> pd.DataFrame:
    """Every configuration at an equal sampling budget: quality, diversity, adherence and downstream mean AUROC."""
    from radgazegen.evaluation.classify import auroc_table

    rows = {}
    for configuration in study.configurations:
        name = configuration.name
        generated, labels = study.generated_training_set(name)
        classifier = study.classifier(f"real+{name}", np.concatenate([study.train.images, generated]),
                                      np.concatenate([study.train.labels, labels]))  # fmt: skip
        scores = classifier.predict(study.test.images)
        mean = auroc_table(study.test.labels, scores, study.train.classes, n_boot=study.settings.bootstrap,
                           seed=study.preset.seed).loc["mean"]  # fmt: skip
        row = {"configuration": configuration.label, "controls": ", ".join(configuration.controls) or "-"}
        for column in ("FRD", "FID (CXR)", "MS-SSIM", "agreement AUROC"):
            if column in quality.columns:
                row[column] = quality.loc[name, column]
        for (control, metric), value in adherence[name].items():
            row[f"{control} {metric}"] = value
        row["AUROC real + generated"] = mean["auroc"]
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("name")


def attribution_table(study: Study, configuration: str = "both", method: str = "integrated gradients"):
    """Attributions of the real-trained classifier on held-out real images and on generated ones.

    Each image is explained for its most probable finding; the map is scored against the reading's
    gaze heatmap and its ground-truth finding mask (phantom) with NSS, CC and AUC-Judd. Returns the
    per-image table and the maps ``{"real": (images, attributions, gaze), "generated": (...)}``.
    """
    from radgazegen.controls.extract import extract_controls, load_controls
    from radgazegen.evaluation.attribution import attribution_agreement, grad_cam, integrated_gradients
    from radgazegen.evaluation.classify import resize

    # the reference is the whole reading's gaze, whichever gaze map the generator's HVA-CN takes
    extract_controls(study.dataset, ["gaze"], study.run_dir, study.pipe.registry.settings, progress=False)
    classifier = study.reference_classifier
    classifier.model.eval()
    sets = {"real": (study.held_out.ids, study.held_out.images)}
    ids, images = study.samples(configuration).first()
    sets["generated"] = (ids, images)
    tables, maps = [], {}
    for name, (case_ids, batch) in sets.items():
        gaze = np.stack([load_controls(study.run_dir, i, ["gaze"], study.pipe.registry)["gaze"] for i in case_ids])
        masks = _truth_masks(study, case_ids)
        tensor = classifier.inputs(batch)
        target = classifier.predict(batch).argmax(1).tolist()
        if method == "grad-cam":
            attributions = grad_cam(classifier.model, classifier.cam_layer, tensor, target)
        else:
            attributions = integrated_gradients(classifier.model, tensor, target)
        size = attributions.shape[-1]
        table = attribution_agreement(attributions, resize(gaze, size)[:, 0].numpy(),
                                      None if masks is None else resize(masks, size)[:, 0].numpy() >= 0.5)  # fmt: skip
        tables.append(table.assign(images=name, method=method))
        peak = attributions.reshape(len(attributions), -1).max(1).clip(min=1e-12)[:, None, None]
        maps[name] = (batch, attributions / peak, gaze)  # scaled to [0, 1] per image for display
    return pd.concat(tables, ignore_index=True), maps


def _truth_masks(study: Study, case_ids: Sequence[str]) -> np.ndarray | None:
    from radgazegen.data.phantom.truth import finding_masks
    from radgazegen.errors import DataFormatError

    try:
        return finding_masks(study.dataset.root, list(case_ids), study.preset.control_size)
    except DataFormatError:
        return None


@dataclass
class Placement:
    """The gaze-placement protocol's inputs, images (``images[arm][move]``) and per-image table."""

    cohort: object  # placement.PlacementCohort
    arms: list
    images: dict[str, dict[str, np.ndarray]]
    table: pd.DataFrame
    segmenter: object  # the FindingSegmenter that located the findings

    def panels(self, k: int = 0):
        """Reading ``k`` for a figure (:func:`radgazegen.evaluation.placement.reading_panels`)."""
        from radgazegen.evaluation.placement import reading_panels

        return reading_panels(self.cohort, self.images, k, self.segmenter)

    def summary(self, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
        """Per arm and metric: mean, paired difference and ratio against text only with 95% intervals."""
        from radgazegen.evaluation.placement import placement_summary

        return placement_summary(self.table, n_boot=n_boot, seed=seed)

    def claims(self, *, n_boot: int = 1000, seed: int = 0) -> list[Claim]:
        """Each gaze arm against text only, paired over the readings (:func:`~radgazegen.evaluation.placement.placement_claims`)."""
        from radgazegen.evaluation.placement import placement_claims

        return placement_claims(self.table, n_boot=n_boot, seed=seed)


def placement_readings(study: Study, *, selection: bool = False):
    """The protocol's readings (one focal finding each) and anatomy donors (no finding).

    Phantom runs get their own held-out phantoms under ``placement/`` (seeds ``seed + 2`` and ``seed + 3``):
    ``evaluation.placement_readings`` readings with one focal finding and ``evaluation.placement_donors``
    without any. Real data: the data set's test readings that qualify. ``selection=True`` gives a disjoint
    set for choices made before the evaluation (the training curves): ``placement-selection/`` (seeds
    ``seed + 4`` and ``seed + 5``), or the validation readings.
    """
    from radgazegen.data.phantom import ensure_phantom, phantom_manifest
    from radgazegen.data.reflacx import ReflacxDataset
    from radgazegen.evaluation.placement import FOCAL_FINDINGS, is_placement_reading

    settings, preset = study.settings, study.preset
    if phantom_manifest(study.dataset.root) is None:
        held = [case for case in study.dataset if case.split == ("validate" if selection else "test")]
        readings = [case for case in held if is_placement_reading(case)][: settings.placement_readings]
        donors = [case for case in held if not case.positive_labels()][: settings.placement_donors]
        return readings, donors, study.dataset.root, study.dataset.root
    root, offset = (study.run_dir / "placement-selection", 4) if selection else (study.run_dir / "placement", 2)
    folders = {}
    for name, n, seed, findings in (("readings", settings.placement_readings, preset.seed + offset, FOCAL_FINDINGS),
                                    ("donors", settings.placement_donors, preset.seed + offset + 1, [])):  # fmt: skip
        folders[name] = ensure_phantom(root / name, n, seed, preset.phantom_size, findings=findings,
                                       progress=study.progress)  # fmt: skip
    return (list(ReflacxDataset(folders["readings"])), list(ReflacxDataset(folders["donors"])),
            folders["readings"], folders["donors"])  # fmt: skip


def placement_protocol(study: Study, *, steps: int | None = None, gaze: Sequence[str] | None = None) -> Placement:
    """Sample every placement arm under every gaze move and score where the findings land.

    ``gaze``: the gaze controls whose HVA-CN arms to sample (default: the preset's HVA-CN control, ``hva``, when
    the pipeline has it; else every gaze control it has).

    Images are cached under ``samples/placement/<arm>/<move>/`` with the bank's settings file (weights digest,
    scheduler, steps, guidance, seed and a digest of the cohort's prompts and maps): a change re-samples.
    """
    from radgazegen.evaluation.placement import (
        MOVES,
        TARGET,
        gaze_of,
        placement_arms,
        placement_cohort,
        placement_table,
        sample_arm,
    )

    readings, donors, reading_root, donor_root = placement_readings(study)
    pipe = study.pipe
    if gaze is None and study.preset.hva in pipe.controls_of("multi"):
        gaze = (study.preset.hva,)
    arms = placement_arms(pipe, gaze=gaze)
    rad = sorted({name for arm in arms for name in arm.controls if gaze_of(arm) != name})
    gaze = sorted({gaze_of(arm) for arm in arms if gaze_of(arm)})
    cohort = placement_cohort(readings, donors, pipe.registry, gaze_controls=gaze or (TARGET,), rad_controls=rad,
                              data_root=reading_root, donor_root=donor_root, progress=study.progress)  # fmt: skip
    steps = steps or study.settings.sampling_steps
    digest = training_digest(cohort.prompts, cohort.targets, *cohort.gaze.values(), *cohort.anatomy.values(),
                             cohort.shifts)  # fmt: skip
    images: dict[str, dict[str, np.ndarray]] = {}
    for arm in arms:
        images[arm.name] = {}
        for how in MOVES if gaze_of(arm) else MOVES[:1]:
            folder = study.run_dir / "samples" / "placement" / arm.name / how
            bank.start_folder(folder, bank.sampling_key(pipe, arm, steps, study.preset) | {"cohort": digest})
            images[arm.name][how] = sample_arm(pipe, arm, cohort, how, folder, steps=steps,
                                               **study.preset.sampling.guidance(),
                                               seed=study.preset.seed, progress=study.progress)  # fmt: skip
    segmenter = finding_segmenter(study)
    if segmenter is None:
        raise ValueError("the placement protocol locates findings with the phantom-trained segmenter; "
                         "this run's data set has no ground-truth finding masks")  # fmt: skip
    return Placement(cohort, arms, images, placement_table(images, cohort, segmenter), segmenter)
