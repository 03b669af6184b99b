"""One run's evaluation study: the sample bank, the real cohorts and the trained evaluators, built once and cached.

The evaluation chapters (05-10) share a :class:`Study`. Everything expensive is cached in the
run directory and reused by later chapters and re-runs:

    samples/bank/<configuration>/   generated images (see :mod:`radgazegen.evaluation.bank`)
    classifiers/<arm>/              downstream classifiers (one per training arm)
    segmenter/                      the finding segmenter of the adherence measures
    metrics/<table>.csv             every table the book and the results page show
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.evaluation import bank
from radgazegen.evaluation.cohort import (
    Cohort,
    chexpert_cohort,
    longtail_cohort,
    phantom_test_cohort,
    reflacx_cohort,
)
from radgazegen.io import atomic_path, write_json_atomic
from radgazegen.presets import Preset
from radgazegen.runs import open_run, record


class Study:
    """The evaluation context of a run: preset, data set, generator, sample bank, cohorts and classifiers.

    ``test_labels`` / ``test_images``: a CheXpert (or MIMIC-CXR-JPG) label CSV and its image root
    as the classifiers' held-out test set; by default a held-out phantom cohort. ``longtail_train`` /
    ``longtail_test`` / ``longtail_images``: MIMIC-CXR-LT split CSVs and their image root for the
    long-tail protocol (default: the phantom's single-label readings). ``imagenet_weights``:
    torchvision's DenseNet ImageNet weights as a local file (else classifiers start from scratch).
    """

    def __init__(
        self,
        preset: Preset,
        run_dir: str | Path,
        dataset: ReflacxDataset,
        *,
        pipeline_dir: str | Path | None = None,
        device: str = "cpu",
        test_labels: str | Path | None = None,
        test_images: str | Path | None = None,
        longtail_train: str | Path | None = None,
        longtail_test: str | Path | None = None,
        longtail_images: str | Path | None = None,
        imagenet_weights: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        if bool(test_labels) != bool(test_images):
            raise ValueError("test_labels and test_images are given together (a label CSV and its image folder)")
        if len({bool(longtail_train), bool(longtail_test), bool(longtail_images)}) > 1:
            raise ValueError("longtail_train, longtail_test and longtail_images are given together")
        self.longtail_splits = (longtail_train, longtail_test, longtail_images) if longtail_train else None
        self.preset, self.run_dir, self.dataset = preset, Path(run_dir), dataset
        self.pipeline_dir, self.device, self.progress = pipeline_dir, device, progress
        self.test_labels, self.test_images = test_labels, test_images
        self.imagenet_weights = imagenet_weights
        self.settings = preset.evaluation

    # -- the generator and its samples ---------------------------------------------------------------
    @cached_property
    def pipe(self):
        """The generator; a saved one (e.g. the shipped checkpoint) gets its controls extracted for this run's data."""
        from radgazegen.controls.extract import extract_controls
        from radgazegen.models.sampling import load_pipeline

        pipe = load_pipeline(self.preset, self.run_dir, self.pipeline_dir, self.device)
        if _saved_folder(pipe, self.run_dir) is not None:
            names = sorted({*pipe.controls_of("multi"), *pipe.controls_of("fused")})
            if names:  # cached per case: only what chapter 3 did not extract is computed
                extract_controls(self.dataset, names, self.run_dir, pipe.registry.settings, progress=self.progress)
        return pipe

    @cached_property
    def configurations(self) -> list[bank.Configuration]:
        return bank.configurations(self.pipe, self.preset.hva)

    def configuration(self, name: str) -> bank.Configuration:
        for found in self.configurations:
            if found.name == name:
                return found
        raise KeyError(f"no configuration {name!r}; this run has {[c.name for c in self.configurations]}")

    @cached_property
    def conditions(self):
        """The training readings whose reports and controls condition every configuration's samples."""
        return bank.condition_cases(self.dataset, self.settings.conditions, self.preset.seed)

    @cached_property
    def donors(self):
        """The reading lending its anatomy to each conditioning reading in the ``donor`` configuration."""
        return bank.donor_cases(self.dataset, self.conditions, self.preset.seed)

    def samples(self, name: str) -> bank.Samples:
        """A configuration's samples (generated on first use, then read from the bank)."""
        cache = self.__dict__.setdefault("_samples", {})
        if name not in cache:
            copies = [2] * self.settings.diversity_pairs + [1] * max(
                0, len(self.conditions) - self.settings.diversity_pairs
            )
            configuration = self.configuration(name)
            donors = self.donors if configuration.anatomy == bank.DONOR else None
            cache[name] = bank.generate(self.pipe, configuration, self.conditions, self.run_dir, self.preset,
                                        copies=copies[: len(self.conditions)], donors=donors,
                                        progress=self.progress)  # fmt: skip
        return cache[name]

    # -- real cohorts --------------------------------------------------------------------------------
    @cached_property
    def train(self) -> Cohort:
        """The real training readings, labelled over every finding they contain."""
        return reflacx_cohort(self.dataset, self.run_dir, self.preset.control_size, split="train",
                              progress=self.progress)  # fmt: skip

    @cached_property
    def condition_cohort(self) -> Cohort:
        """The real readings the samples were conditioned on (same order as the samples)."""
        rows = [self.train.ids.index(case.id) for case in self.conditions]
        return self.train.subset(rows)

    @cached_property
    def test(self) -> Cohort:
        """The classifiers' held-out real test set, labelled over the training cohort's classes."""
        if self.test_labels:
            return chexpert_cohort(self.test_labels, self.test_images, self.preset.control_size,
                                   classes=self.train.classes, progress=self.progress)  # fmt: skip
        return phantom_test_cohort(self.preset, self.run_dir, classes=self.train.classes, progress=self.progress)

    @cached_property
    def held_out(self) -> Cohort:
        """The main data set's validation and test readings (they have extracted controls: gaze, lungs).

        A data set too small to have any (the ``smoke`` phantom) gives its last four readings instead.
        """
        splits = {case.split for case in self.dataset}
        if splits & {"validate", "test"}:
            return reflacx_cohort(self.dataset, self.run_dir, self.preset.control_size, split=("validate", "test"),
                                  classes=self.train.classes, progress=self.progress)  # fmt: skip
        every = reflacx_cohort(self.dataset, self.run_dir, self.preset.control_size, classes=self.train.classes,
                               progress=self.progress)  # fmt: skip
        return every.subset(np.arange(max(0, len(every) - 4), len(every)))

    @cached_property
    def longtail_cohorts(self) -> tuple[Cohort, Cohort] | None:
        """MIMIC-CXR-LT training and test cohorts when their split CSVs were given, else ``None``."""
        if self.longtail_splits is None:
            return None
        train_csv, test_csv, images = self.longtail_splits
        size = self.preset.control_size
        return (longtail_cohort(train_csv, images, size, progress=self.progress),
                longtail_cohort(test_csv, images, size, progress=self.progress))  # fmt: skip

    # -- evaluators ----------------------------------------------------------------------------------
    def classifier(self, arm: str, images: np.ndarray | None = None, labels: np.ndarray | None = None, *,
                   task: str = "multilabel", classes: Sequence[str] | None = None,
                   class_weights: np.ndarray | None = None):  # fmt: skip
        """The classifier of training arm ``arm``, trained on the given data once and cached in ``classifiers/<arm>``.

        A cached classifier is reused only if it was trained on the same data and settings (a digest
        of both is stored beside it); without data, whatever is cached is loaded.
        """
        from radgazegen.evaluation.classify import Classifier, train_classifier

        folder = self.run_dir / "classifiers" / arm
        classes = list(classes or self.train.classes)
        digest = None if images is None else training_digest(images, labels, classes, task, class_weights,
                                                     self.settings.classifier, self.imagenet_weights)  # fmt: skip
        stamp = folder / "training.json"
        if (folder / "classifier.json").is_file() and (digest is None or (
                stamp.is_file() and json.loads(stamp.read_text()).get("digest") == digest)):  # fmt: skip
            return Classifier.load(folder, device=self.device)
        if images is None or labels is None:
            raise ValueError(f"classifier {arm!r} is not trained yet ({folder}) and no training data was given")
        model = train_classifier(images, labels, classes, self.settings.classifier, task=task,
                                 class_weights=class_weights, seed=self.preset.seed, weights=self.imagenet_weights,
                                 device=self.device, progress=self.progress)  # fmt: skip
        model.save(folder)
        write_json_atomic(stamp, {"digest": digest, "images": len(images), "task": task, "classes": classes})
        return model

    @cached_property
    def reference_classifier(self):
        """The classifier trained on every real training image: arm ``real`` of chapter 07 and chapter 10's subject."""
        return self.classifier("real", self.train.images, self.train.labels)

    @cached_property
    def feature_cohort(self) -> Cohort:
        """The training readings that condition no sample: the FID feature network's data, disjoint from every
        reference set of chapter 05 (the conditioning readings' real images and the held-out test images)."""
        used = {case.id for case in self.conditions}
        rows = [k for k, i in enumerate(self.train.ids) if i not in used]
        if len(rows) < 2:
            raise ValueError(f"{len(self.train)} training readings, {len(used)} of them conditioning samples: "
                             "too few left to train the FID feature network on (lower evaluation.conditions)")  # fmt: skip
        return self.train.subset(rows)

    @cached_property
    def feature_classifier(self):
        """The FID / KID (CXR) feature network: the classifier trained on :attr:`feature_cohort` only."""
        return self.classifier("features", self.feature_cohort.images, self.feature_cohort.labels)

    def generated_training_set(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Every sample of a configuration, labelled with the findings of the reading that prompted it."""
        samples = self.samples(name)
        rows = [self.train.ids.index(i) for i in samples.ids]
        return samples.images, self.train.labels[rows]

    @property
    def generator(self) -> str:
        """Which generator samples: the networks this run trained, or a saved pipeline (named)."""
        saved = _saved_folder(self.pipe, self.run_dir)
        return "the networks this run trained" if saved is None else f"the saved pipeline '{saved.name}'"

    def describe(self) -> str:
        """One line naming the run, the generator that samples, its configurations and the sizes of its cohorts."""
        names = ", ".join(c.name for c in self.configurations)
        return (
            f"run '{self.run_dir.name}' (preset {self.preset.name}): {len(self.conditions)} conditioning readings, "
            f"configurations {names}; {len(self.train)} real training readings, {len(self.test)} held-out test "
            f"readings over {len(self.train.classes)} findings; samples from {self.generator}"
        )

    # -- metrics files -------------------------------------------------------------------------------
    def save_table(self, name: str, table: pd.DataFrame, **about) -> Path:
        """Write ``metrics/<name>.csv`` atomically and record it in the run manifest."""
        path = self.run_dir / "metrics" / f"{name}.csv"
        with atomic_path(path) as tmp:
            table.to_csv(tmp)
        record(self.run_dir, "metrics", name, {"file": str(path.relative_to(self.run_dir)), "preset": self.preset.name,
                                               **about})  # fmt: skip
        return path


def _saved_folder(pipe, run_dir: Path) -> Path | None:
    """The saved pipeline folder ``pipe`` was loaded from, or ``None`` when it is the run's own networks (as they are,
    or as training exported them to ``<run_dir>/pipeline``)."""
    from radgazegen.models.assembly import RUN_PIPELINE

    own = (Path(run_dir).resolve(), (Path(run_dir) / RUN_PIPELINE).resolve())
    return None if pipe.source is None or Path(pipe.source).resolve() in own else Path(pipe.source)


def training_digest(*parts) -> str:
    """A hash of arrays and settings: what a cached evaluator was trained on."""
    sha = hashlib.sha256()
    for part in parts:
        sha.update(np.ascontiguousarray(part).tobytes() if isinstance(part, np.ndarray) else repr(part).encode())
    return sha.hexdigest()


def read_table(run_dir: str | Path, name: str) -> pd.DataFrame:
    """A metrics table written by :meth:`Study.save_table` (``KeyError`` naming the file if it is missing)."""
    path = Path(run_dir) / "metrics" / f"{name}.csv"
    if not path.is_file():
        raise KeyError(f"{path}: no such metrics table (run the chapter that writes it first)")
    return pd.read_csv(path, index_col=0)


def open_study(
    preset: str,
    data_dir: str = "",
    images_dir: str = "",
    run_dir: str = "",
    pipeline_dir: str = "",
    *,
    progress: bool = True,
    **options,
) -> Study:
    """The study a chapter's ``parameters`` cell describes (empty strings mean "the default"; :func:`~radgazegen.runs.open_run`)."""
    run = open_run(preset, data_dir, images_dir, run_dir)
    options = {key: value or None for key, value in options.items()}
    return Study(run.preset, run.run_dir, run.dataset, pipeline_dir=pipeline_dir or None, device=run.device,
                 progress=progress, **options)  # fmt: skip
