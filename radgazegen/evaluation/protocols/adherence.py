"""The adherence table: how closely the real images and every configuration's samples follow each control,
and the claims that RadGazeGen follows its controls better than SD text only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from radgazegen.controls.extract import load_controls
from radgazegen.evaluation.adherence import adherence, summarise
from radgazegen.evaluation.claims import HIGHER, LOWER, Claim
from radgazegen.evaluation.protocols.truth import REAL, finding_segmenter
from radgazegen.evaluation.stats import bootstrap
from radgazegen.evaluation.study import Study


def adherence_tables(study: Study) -> dict[str, pd.DataFrame]:
    """Per-image adherence of the real images and of every configuration's samples to all of the generator's controls.

    Each table has one row per (image, control, metric) (:func:`~radgazegen.evaluation.adherence.adherence`),
    images numbered by conditioning reading, so configurations pair up reading by reading. Findings in
    generated images are located by a segmenter trained on the phantom's ground-truth masks (real data has
    none: then by the intensity-outlier rule of :func:`~radgazegen.evaluation.adherence.anomaly_mask`).
    """
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
