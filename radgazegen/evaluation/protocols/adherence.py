"""The adherence table: how closely the real images and every configuration's samples follow each control,
and the claims that RadGazeGen follows its controls better than SD text only; chapter 4's quick look at each
sampling mode (:func:`sampling_adherence`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from radgazegen.controls.extract import stacked_controls
from radgazegen.data.image_cache import cached_image
from radgazegen.data.phantom.truth import has_ground_truth, read_findings
from radgazegen.data.reflacx import ReflacxCase
from radgazegen.evaluation.adherence import adherence, summarise
from radgazegen.evaluation.claims import HIGHER, LOWER, Claim
from radgazegen.evaluation.protocols.truth import REAL, finding_segmenter
from radgazegen.evaluation.stats import bootstrap
from radgazegen.evaluation.study import Study
from radgazegen.models.sampling import TEXT_ONLY, sample_batch
from radgazegen.runs import record


def adherence_tables(study: Study) -> dict[str, pd.DataFrame]:
    """Per-image adherence of the real images and of every configuration's samples to all of the generator's controls.

    Each table has one row per (image, control, metric) (:func:`~radgazegen.evaluation.adherence.adherence`),
    images numbered by conditioning reading, so configurations pair up reading by reading. Findings in
    generated images are located by a segmenter trained on the phantom's ground-truth masks (real data has
    none: then by the intensity-outlier rule of :func:`~radgazegen.evaluation.adherence.anomaly_mask`).
    """
    names = list(study.preset.controls)
    registry = study.pipe.registry
    given = stacked_controls(study.run_dir, [case.id for case in study.conditions], names, registry)
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


@dataclass
class SamplingAdherence:
    """Per sampling condition (``real image``, ``text only``, then each mode of the pipeline): the per-image
    adherence table, and the sampling speed in images per second."""

    tables: dict[str, pd.DataFrame]
    images_per_second: dict[str, float]

    def summary(self) -> pd.DataFrame:
        """Mean of each control's metric (rows) per condition (columns)."""
        return summarise(self.tables)

    def long(self) -> pd.DataFrame:
        """All rows of all conditions, with a ``condition`` column."""
        return pd.concat([table.assign(condition=name) for name, table in self.tables.items()], ignore_index=True)


def sampling_adherence(study: Study, cases: Sequence[ReflacxCase], controls: Sequence[str], *,
                       batch_size: int = 8) -> SamplingAdherence:  # fmt: skip
    """How the real images and the samples of each sampling mode follow ``controls`` on ``cases``.

    Every mode samples the cases' own reports and extracted controls (multi: ``controls``; fused: its own), seeded
    per reading, in batches of ``batch_size``; gaze is scored on readings with a ground-truth finding (phantom),
    lungs against the given lung map. The summary and speeds are recorded in the run's manifest
    (``metrics/control_adherence``).
    """
    pipe, run_dir, preset = study.pipe, study.run_dir, study.preset
    given = stacked_controls(run_dir, [case.id for case in cases], controls, pipe.registry)
    truth = read_findings(study.dataset.root) if has_ground_truth(study.dataset.root) else None
    has_finding = None if truth is None else [bool((truth["id"] == case.id).any()) for case in cases]
    conditions = {"real image": np.stack([cached_image(case, run_dir, preset.control_size) for case in cases])}
    speed = {}
    for condition, mode in [("text only", TEXT_ONLY)] + [(m, m) for m in pipe.modes]:
        started = time.perf_counter()
        conditions[condition] = np.concatenate([
            sample_batch(pipe, cases[k : k + batch_size], run_dir, preset, mode=mode, seed_offset=k,
                         controls=controls if mode == "multi" else None)
            for k in range(0, len(cases), batch_size)])  # fmt: skip
        speed[condition] = len(cases) / (time.perf_counter() - started)
    lungs = given["lungs"] >= 0.5 if "lungs" in given else None
    result = SamplingAdherence({condition: adherence(images, given, pipe.registry, lungs=lungs, has_finding=has_finding)
                                for condition, images in conditions.items()}, speed)  # fmt: skip
    record(run_dir, "metrics", "control_adherence", {
        "preset": preset.name, "readings": len(cases), "pipeline": str(pipe.source), "images_per_second": speed,
        "summary": {f"{c}|{m}": row.to_dict() for (c, m), row in result.summary().iterrows()}})  # fmt: skip
    return result
