"""What the protocols measure against: the real images' reference row and the phantom's ground truth.

Real data sets have no ground-truth finding masks; :func:`~radgazegen.data.phantom.truth.has_ground_truth`
tells the two apart, and the protocols that need masks fall back (adherence) or say so (placement).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from radgazegen.data.phantom.truth import finding_masks, has_ground_truth
from radgazegen.evaluation.segmenter import FindingSegmenter, train_segmenter
from radgazegen.evaluation.study import Study, training_digest
from radgazegen.io import write_json_atomic

REAL = "real"
"""The reference row of the quality and adherence tables: real images against real images."""


def finding_segmenter(study: Study) -> FindingSegmenter | None:
    """The finding segmenter trained on the phantom's training readings and ground-truth masks (``None`` for real data).

    Trained once per run and cached under ``segmenter/`` with a digest of its training images, masks and settings.
    """
    if not has_ground_truth(study.dataset.root):
        return None
    folder = study.run_dir / "segmenter"
    masks = finding_masks(study.dataset.root, study.train.ids, study.preset.control_size)
    digest = training_digest(study.train.images, masks, study.settings.segmenter_epochs, study.preset.seed)
    stamp = folder / "training.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("digest") == digest:
        return FindingSegmenter.load(folder)
    segmenter = train_segmenter(study.train.images, masks, epochs=study.settings.segmenter_epochs, seed=study.preset.seed,
                                progress=study.progress)  # fmt: skip
    segmenter.save(folder)
    write_json_atomic(stamp, {"digest": digest, "images": len(masks)})
    return segmenter


def truth_masks(study: Study, case_ids: Sequence[str]) -> np.ndarray | None:
    """(n, size, size) bool ground-truth finding masks of ``case_ids`` at the run's size (``None`` for real data)."""
    if not has_ground_truth(study.dataset.root):
        return None
    return finding_masks(study.dataset.root, list(case_ids), study.preset.control_size)
