"""The paper's evaluation protocols on a :class:`~radgazegen.evaluation.study.Study`, one function per table.

* :func:`quality_table` — REFLACX protocol: FRD, FID / KID (in-project CXR features; Inception when
  its weights are given), MS-SSIM diversity, paired SSIM, text-image agreement (CLIP score when a
  local CLIP is given), per sampling configuration, beside a real-vs-real reference.
* :func:`classification_table` — CheXpert protocol: AUROC per finding for classifiers trained on
  real, real + generated and generated-only images.
* :func:`longtail_table` — MIMIC-CXR-LT protocol: balanced accuracy, head / medium / tail accuracy
  without augmentation, with a class-balanced loss and with generated images for the tail classes.
* :func:`adherence_table` and :func:`ablation_table` — every configuration at an equal budget.
* :func:`attribution_table` — captum attributions of the classifier against gaze and finding masks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from radgazegen.evaluation import bank
from radgazegen.evaluation.stats import Estimate, bootstrap
from radgazegen.evaluation.study import Study, training_digest
from radgazegen.io import write_json_atomic

REAL = "real"  # the reference row: real images against real images


def _estimate_columns(prefix: str, estimate: Estimate) -> dict[str, float]:
    return {prefix: estimate.value, f"{prefix} low": estimate.low, f"{prefix} high": estimate.high}


def _distance_estimate(distance, real: np.ndarray, fake: np.ndarray, n_boot: int, seed: int) -> Estimate:
    """A set distance with a bootstrap interval over the generated set (the real set held fixed)."""
    return bootstrap(lambda rows: distance(real, fake[rows]), np.arange(len(fake)), n_boot=n_boot, seed=seed)


def quality_table(
    study: Study,
    *,
    inception_weights: str | Path | None = None,
    clip_dir: str | Path | None = None,
    configurations: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Quality and diversity of every configuration's samples (rows), reference row ``real`` first.

    Reference sets: generated images are compared with the real images of the readings that
    conditioned them; the ``real`` row compares those real images with as many held-out real
    images (the floor a perfect generator would reach at this sample size).
    """
    from radgazegen.evaluation import frd, quality

    settings = study.settings
    n_boot = min(settings.bootstrap, 100)  # each replicate of a set distance refits a covariance and its root
    real = study.condition_cohort
    held = study.test.subset(np.arange(min(len(real), len(study.test))))
    classifier = study.reference_classifier
    extractors = {"FID (CXR)": classifier.features}
    if inception_weights:
        extractors["FID (Inception)"] = quality.TorchScriptFeatures(inception_weights, device=study.device)
    radiomics_real = frd.radiomic_features(real.images)
    features_real = {name: extract(real.images) for name, extract in extractors.items()}

    def row(images: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], paired: np.ndarray | None, prompts, labels):
        found: dict[str, float] = {"images": len(images)}
        radiomics = frd.radiomic_features(images)
        found |= _estimate_columns("FRD", _distance_estimate(frd.frechet_radiomics_distance, radiomics_real,
                                                             radiomics.to_numpy(), n_boot, study.preset.seed))  # fmt: skip
        features = {name: extract(images) for name, extract in extractors.items()}
        for name in extractors:
            found |= _estimate_columns(name, _distance_estimate(quality.frechet_distance, features_real[name],
                                                                features[name], n_boot, study.preset.seed))  # fmt: skip
        kid = quality.kernel_inception_distance(features_real["FID (CXR)"], features["FID (CXR)"],
                                                subset_size=len(images), subsets=50, seed=study.preset.seed)  # fmt: skip
        found["KID (CXR)"], found["KID (CXR) std"] = kid
        if len(pairs[0]):
            found |= _estimate_columns(
                "MS-SSIM", bootstrap(np.mean, quality.ms_ssim(*pairs), n_boot=settings.bootstrap)
            )
        if paired is not None:
            found |= _estimate_columns("SSIM to real", bootstrap(np.mean, quality.ssim(images, paired),
                                                                 n_boot=settings.bootstrap))  # fmt: skip
        predicted = classifier.predict(images)
        found |= _estimate_columns("agreement AUROC", bootstrap(quality.finding_agreement, labels.astype(bool), predicted,
                                                                n_boot=settings.bootstrap))  # fmt: skip
        if clip_dir:
            found |= _estimate_columns("CLIP score", bootstrap(np.mean, quality.clip_score(images, prompts, clip_dir),
                                                               n_boot=settings.bootstrap))  # fmt: skip
        return found

    pairs = _real_pairs(held.images, settings.diversity_pairs, study.preset.seed)
    rows = {REAL: row(held.images, pairs, None, held.prompts, held.labels)}
    for configuration in study.configurations:
        if configurations is not None and configuration.name not in configurations:
            continue
        samples = study.samples(configuration.name)
        _, images = samples.first()
        rows[configuration.name] = row(images, samples.pairs(), real.images, real.prompts, real.labels)
        rows[configuration.name]["label"] = configuration.label
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.loc[REAL, "label"] = "real images (held-out reference)"
    return table


def _real_pairs(images: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs of distinct real images (the diversity of the real data)."""
    rng = np.random.default_rng(seed)
    first = rng.permutation(len(images))[:n]
    second = (first + 1 + rng.integers(0, len(images) - 1, size=len(first))) % len(images)
    return images[first], images[second]


def classification_table(study: Study, configuration: str = "both") -> pd.DataFrame:
    """AUROC per finding (and the mean) on the held-out real test set for three training arms.

    Arms: ``real`` (the real training readings), ``real + generated`` (plus every sample of
    ``configuration``, labelled with its prompt's findings), ``generated only``.
    """
    from radgazegen.evaluation.classify import auroc_table

    generated, labels = study.generated_training_set(configuration)
    arms = {
        "real": study.reference_classifier,
        "real + generated": study.classifier(
            f"real+{configuration}",
            np.concatenate([study.train.images, generated]),
            np.concatenate([study.train.labels, labels]),
        ),  # fmt: skip
        "generated only": study.classifier(f"{configuration}-only", generated, labels),
    }
    tables = []
    for arm, classifier in arms.items():
        scores = classifier.predict(study.test.images)
        table = auroc_table(study.test.labels, scores, study.train.classes, n_boot=study.settings.bootstrap,
                            seed=study.preset.seed)  # fmt: skip
        tables.append(table.assign(arm=arm))
    return pd.concat(tables).rename_axis("finding").reset_index().set_index(["arm", "finding"])


def longtail_table(study: Study, configuration: str = "both") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Balanced accuracy and head / medium / tail accuracy for three arms; also the class groups.

    Single-label images only, as MIMIC-CXR-LT: its split CSVs when the study has them, else the
    phantom's single-label readings (test: the held-out cohort). Arms: ``none`` (plain
    cross-entropy), ``class-balanced loss`` (Cui et al. weights), ``generated tail`` (plus
    ``tail_samples`` images per tail class from ``configuration``, prompted and controlled by the
    REFLACX training readings with that finding; a class no reading names gets none).
    """
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
    reports = []
    for arm, classifier in arms.items():
        predicted = classifier.predict(test.images[test_rows]).argmax(1)
        report = longtail.longtail_report(test_y, predicted, classes, groups, n_boot=study.settings.bootstrap,
                                          seed=study.preset.seed)  # fmt: skip
        reports.append(report.assign(arm=arm))
    group_table = pd.DataFrame({"group": groups, "training images": counts,
                                "test images": {c: int((test_y == k).sum()) for k, c in enumerate(classes)},
                                "generated": {c: int((extra_y == k).sum()) for k, c in enumerate(classes)}})  # fmt: skip
    return pd.concat(reports).rename_axis("metric").reset_index().set_index(["arm", "metric"]), group_table


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


def adherence_table(study: Study) -> pd.DataFrame:
    """Adherence of every configuration's samples to all of the generator's controls (the ones it did not get too).

    Findings in generated images are located by a segmenter trained on the phantom's ground-truth
    masks (real data has none: then by the intensity-outlier rule of :func:`~radgazegen.evaluation.adherence.anomaly_mask`).
    """
    from radgazegen.controls.extract import load_controls
    from radgazegen.evaluation.adherence import adherence, summarise

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
    return summarise(tables)


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
    from radgazegen.controls.extract import load_controls
    from radgazegen.evaluation.attribution import attribution_agreement, grad_cam, integrated_gradients
    from radgazegen.evaluation.classify import resize

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
