"""The gaze-placement ("hypotheses") protocol: counterfactual gaze, the finding located by the segmenter
(:mod:`radgazegen.evaluation.placement`), and its claims."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from radgazegen.data.phantom import ensure_phantom
from radgazegen.data.phantom.truth import has_ground_truth
from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.evaluation.claims import Claim
from radgazegen.evaluation.placement import (
    FOCAL_FINDINGS,
    MOVES,
    TARGET,
    gaze_of,
    is_placement_reading,
    placement_arms,
    placement_claims,
    placement_cohort,
    placement_summary,
    placement_table,
    reading_panels,
    sample_arm,
)
from radgazegen.evaluation.protocols.truth import finding_segmenter
from radgazegen.evaluation.study import Study


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
        return reading_panels(self.cohort, self.images, k, self.segmenter)

    def summary(self, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
        """Per arm and metric: mean, paired difference and ratio against text only with 95% intervals."""
        return placement_summary(self.table, n_boot=n_boot, seed=seed)

    def claims(self, *, n_boot: int = 1000, seed: int = 0) -> list[Claim]:
        """Each gaze arm against text only, paired over the readings (:func:`~radgazegen.evaluation.placement.placement_claims`)."""
        return placement_claims(self.table, n_boot=n_boot, seed=seed)


def placement_readings(study: Study, *, selection: bool = False):
    """The protocol's readings (one focal finding each) and anatomy donors (no finding).

    Phantom runs get their own held-out phantoms under ``placement/`` (seeds ``seed + 2`` and ``seed + 3``):
    ``evaluation.placement_readings`` readings with one focal finding and ``evaluation.placement_donors``
    without any. Real data: the data set's test readings that qualify. ``selection=True`` gives a disjoint
    set for choices made before the evaluation (the training curves): ``placement-selection/`` (seeds
    ``seed + 4`` and ``seed + 5``), or the validation readings.
    """
    settings, preset = study.settings, study.preset
    if not has_ground_truth(study.dataset.root):
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

    Images are cached under ``samples/placement/<arm>/<move>/`` by
    :func:`~radgazegen.models.sampling.sample_cached` (keyed on the weights, sampler settings, prompt, maps and seed).
    """
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
    images: dict[str, dict[str, np.ndarray]] = {}
    for arm in arms:
        images[arm.name] = {}
        for how in MOVES if gaze_of(arm) else MOVES[:1]:
            folder = study.run_dir / "samples" / "placement" / arm.name / how
            images[arm.name][how] = sample_arm(pipe, arm, cohort, how, folder, steps=steps,
                                               **study.preset.sampling.guidance(),
                                               seed=study.preset.seed, progress=study.progress)  # fmt: skip
    segmenter = finding_segmenter(study)
    if segmenter is None:
        raise ValueError("the placement protocol locates findings with the phantom-trained segmenter; "
                         "this run's data set has no ground-truth finding masks")  # fmt: skip
    return Placement(cohort, arms, images, placement_table(images, cohort, segmenter), segmenter)
