"""Cohorts of real readings for the evaluations: images at the generator's size with harmonised finding labels.

REFLACX phases 1-2 and phase 3 name findings differently; labels are harmonised to the phase-3
names (``PHASE12_TO_3``), which is also what the phantom's findings map to. Classifiers are tested
on a held-out cohort: for the phantom, a second phantom drawn with another seed
(``<run_dir>/test_cohort``; the main data set's own test split is too small for an AUROC); for real
data, CheXpert / MIMIC-CXR-JPG label CSVs (:func:`chexpert_cohort`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from radgazegen.data.image_cache import cached_image
from radgazegen.data.images import load_image
from radgazegen.data.phantom import ensure_phantom
from radgazegen.data.reflacx import ReflacxCase, ReflacxDataset
from radgazegen.data.resample import area_resample
from radgazegen.presets import Preset

PHASE12_TO_3 = {
    "Nodule": "Lung nodule or mass",
    "Mass": "Lung nodule or mass",
    "Pleural effusion": "Pleural abnormality",
    "Pleural thickening": "Pleural abnormality",
    "Emphysema": "High lung volume / emphysema",
    "Fibrosis": "Interstitial lung disease",
    "Fracture": "Acute fracture",
    "Wide mediastinum": "Abnormal mediastinal contour",
}
"""REFLACX phase 1-2 label -> phase 3 label (labels not listed keep their name)."""
NO_FINDING = "No finding"


@dataclass
class Cohort:
    """Readings with their images ``(n, S, S)`` in [0, 1] and 0/1 labels ``(n, C)`` over ``classes``."""

    ids: list[str]
    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    prompts: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: Sequence[int] | np.ndarray) -> Cohort:
        rows = np.asarray(rows, int)
        return Cohort([self.ids[i] for i in rows], self.images[rows], self.labels[rows], list(self.classes),
                      [self.prompts[i] for i in rows])  # fmt: skip

    def with_classes(self, classes: Sequence[str]) -> Cohort:
        """The same readings labelled over ``classes`` (a class this cohort lacks is all-negative)."""
        columns = [self.labels[:, self.classes.index(c)] if c in self.classes else np.zeros(len(self), np.uint8)
                   for c in classes]  # fmt: skip
        labels = np.stack(columns, axis=1) if columns else np.zeros((len(self), 0), np.uint8)
        return Cohort(list(self.ids), self.images, labels.astype(np.uint8), list(classes), list(self.prompts))


def reading_findings(case: ReflacxCase, min_certainty: int = 1) -> set[str]:
    """The reading's positive labels under their phase-3 names."""
    return {PHASE12_TO_3.get(label, label) for label in case.positive_labels(min_certainty)}


def label_matrix(findings: Sequence[set[str]], classes: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """0/1 matrix of the readings' findings; ``classes`` default to every finding seen, most frequent first."""
    if classes is None:
        counts: dict[str, int] = {}
        for found in findings:
            for name in found:
                counts[name] = counts.get(name, 0) + 1
        classes = sorted(counts, key=lambda c: (-counts[c], c))
    labels = np.array([[c in found for c in classes] for found in findings], np.uint8).reshape(
        len(findings), len(classes)
    )
    return labels, list(classes)


def reflacx_cohort(
    dataset: ReflacxDataset,
    run_dir: str | Path,
    size: int,
    *,
    split: str | Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    progress: bool = True,
) -> Cohort:
    """The readings of ``split`` (a name, several, or all when ``None``) at ``size`` px (images cached in ``run_dir``)."""
    splits = None if split is None else {split} if isinstance(split, str) else set(split)
    cases = [case for case in dataset if splits is None or case.split in splits]
    if not cases:
        raise ValueError(f"{dataset.root}: no readings in split {split!r}")
    images = np.stack([cached_image(case, run_dir, size) for case in tqdm(cases, desc="images", unit="img", disable=not progress)])
    labels, classes = label_matrix([reading_findings(case) for case in cases], classes)
    return Cohort([c.id for c in cases], images.astype(np.float32), labels, classes, [c.transcription() for c in cases])


def phantom_test_cohort(
    preset: Preset, run_dir: str | Path, *, classes: Sequence[str] | None = None, progress: bool = True
) -> Cohort:
    """A held-out phantom of ``preset.evaluation.test_cases`` readings (seed ``preset.seed + 1``), generated once."""
    folder = Path(run_dir) / "test_cohort"
    dataset = ensure_phantom(folder / "dataset", preset.evaluation.test_cases, preset.seed + 1, preset.phantom_size,
                             progress=progress)  # fmt: skip
    return reflacx_cohort(ReflacxDataset(dataset), folder, preset.control_size, classes=classes,
                          progress=progress)  # fmt: skip


def longtail_cohort(split_csv: str | Path, images_root: str | Path, size: int, *, progress: bool = True) -> Cohort:
    """A MIMIC-CXR-LT split CSV (one 0/1 column per class) as a cohort, images area-resampled to ``size``.

    The image column is ``path`` / ``Path`` (a file relative to ``images_root``); its classes are the CSV's.
    """
    from radgazegen.data.labels import read_longtail_split

    table, classes = read_longtail_split(split_csv)
    column = next((c for c in ("path", "Path") if c in table.columns), None)
    if column is None:
        raise ValueError(f"{split_csv}: a long-tail cohort needs a 'path' column naming each image file")
    return Cohort(list(table[column].astype(str)), _read_images(images_root, table[column], size, progress),
                  table[classes].to_numpy(np.uint8), list(classes), [""] * len(table))  # fmt: skip


def _read_images(images_root: str | Path, relative_paths, size: int, progress: bool) -> np.ndarray:
    root = Path(images_root)
    images = []
    for relative in tqdm(list(relative_paths), desc="images", unit="img", disable=not progress):
        image, _ = load_image(root / relative)
        images.append(area_resample(image, (size, size), mean=True))
    return np.stack(images).astype(np.float32)


def chexpert_cohort(
    labels_csv: str | Path,
    images_root: str | Path,
    size: int,
    *,
    classes: Sequence[str],
    policy: str = "ones",
    progress: bool = True,
) -> Cohort:
    """CheXpert (``Path`` column) or MIMIC-CXR-JPG label CSV rows as a test cohort, images area-resampled to ``size``.

    ``classes`` name CheXpert columns; uncertain labels follow ``policy`` (U-ones / U-zeros).
    """
    from radgazegen.data.labels import read_chexpert_labels

    table = read_chexpert_labels(labels_csv, policy=policy, classes=list(classes))
    if "Path" not in table.columns:
        raise ValueError(f"{labels_csv}: a test cohort needs a 'Path' column naming each image")
    labels = table[list(classes)].to_numpy(np.uint8)
    return Cohort(list(table["Path"].astype(str)), _read_images(images_root, table["Path"], size, progress), labels,
                  list(classes), [""] * len(table))  # fmt: skip
