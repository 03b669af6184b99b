"""The paper's evaluation protocols on a :class:`~radgazegen.evaluation.study.Study`, one module per table.

Each protocol's ``*_claims`` function decides the paper's claims about it as paired differences
(:mod:`radgazegen.evaluation.claims`).

* :mod:`~radgazegen.evaluation.protocols.quality` — REFLACX protocol: FRD, FID / KID (in-project CXR
  features; Inception when its weights are given), MS-SSIM diversity, paired SSIM, text-image agreement
  (CLIP score when a local CLIP is given), per sampling configuration, beside a real-vs-real reference.
* :mod:`~radgazegen.evaluation.protocols.privacy` — the privacy audit: re-identification and memorization of every
  configuration's samples against the training images, in pixel and feature spaces; and
  :mod:`~radgazegen.evaluation.protocols.frontier` — the privacy–utility frontier and its target.
* :mod:`~radgazegen.evaluation.protocols.classification` — CheXpert protocol: AUROC per finding for
  classifiers trained on real, real + generated and generated-only images.
* :mod:`~radgazegen.evaluation.protocols.longtail` — MIMIC-CXR-LT protocol: balanced accuracy, head /
  medium / tail accuracy without augmentation, with a class-balanced loss and with generated tail images.
* :mod:`~radgazegen.evaluation.protocols.adherence` and :mod:`~radgazegen.evaluation.protocols.ablation`
  — every configuration at an equal budget.
* :mod:`~radgazegen.evaluation.protocols.attribution` — captum attributions of the classifier against gaze
  and finding masks.
* :mod:`~radgazegen.evaluation.protocols.placement` — the gaze-placement ("hypotheses") protocol.
* :mod:`~radgazegen.evaluation.protocols.truth` — the reference row and the phantom's ground truth.

The names below are re-exported so that ``from radgazegen.evaluation.protocols import quality_table`` works.
"""

from radgazegen.evaluation.protocols.ablation import ablation_table
from radgazegen.evaluation.protocols.adherence import (
    LOWER_IS_BETTER,
    SamplingAdherence,
    adherence_claims,
    adherence_table,
    adherence_tables,
    sampling_adherence,
)
from radgazegen.evaluation.protocols.attribution import attribution_table
from radgazegen.evaluation.protocols.classification import augmented_classifier, classification_claims, classification_table
from radgazegen.evaluation.protocols.frontier import Frontier, privacy_frontier
from radgazegen.evaluation.protocols.longtail import longtail_claims, longtail_table
from radgazegen.evaluation.protocols.placement import Placement, placement_protocol, placement_readings
from radgazegen.evaluation.protocols.privacy import PrivacyAudit
from radgazegen.evaluation.protocols.quality import SET_DISTANCES, ImageSet, QualityEvaluation, quality_table
from radgazegen.evaluation.protocols.truth import REAL, finding_segmenter, truth_masks

__all__ = [
    "Frontier",
    "LOWER_IS_BETTER",
    "REAL",
    "SET_DISTANCES",
    "ImageSet",
    "Placement",
    "PrivacyAudit",
    "QualityEvaluation",
    "SamplingAdherence",
    "ablation_table",
    "adherence_claims",
    "adherence_table",
    "adherence_tables",
    "attribution_table",
    "augmented_classifier",
    "classification_claims",
    "classification_table",
    "finding_segmenter",
    "privacy_frontier",
    "longtail_claims",
    "longtail_table",
    "placement_protocol",
    "placement_readings",
    "quality_table",
    "sampling_adherence",
    "truth_masks",
]
