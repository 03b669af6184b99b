"""The privacy–utility frontier: one point per configuration, re-identification against every utility measure, and
the target for a configuration that uses anatomy without re-drawing a patient.

Utility measures, each on the same readings or test images for every configuration, with 95% intervals:

* quality: FRD and FID (CXR) from chapter 5's table (half-sampling intervals);
* anatomy adherence: how closely the samples follow the anatomical maps they were *given* (the donor's, the deformed
  ones, the reading's own; configurations given none are scored against the reading's own Rad-CN maps, the floor):
  per image the mean over those controls of the edge / texture map correlation and the lung Dice;
* gaze placement hit rate: the placement protocol's arm with the same controls and anatomy (its Rad-CN maps always
  come from a donor, so ``both`` and ``donor`` share one arm there; configurations it has no arm for are left out);
* mean AUROC of the classifier trained on real + the configuration's samples (chapter 7), and the long-tail
  protocol's balanced accuracy with the configuration's tail samples (chapter 8).

**Target** (:meth:`Frontier.targets`) for each configuration whose anatomical maps are not the prompt's own image:
(1) re-identification of every contributing patient (report and donor; top-1 and top-5) not above text only's in
any space: the paired difference's interval includes 0 or lies below it; (2) its memorized share at most twice the
held-out real images' own (interval of the excess includes 0 or lies below); (3) at least 70% of the paper
configuration's gain over text only in gaze placement hit rate and (4) in mean AUROC: the paired interval of
:math:`(c - t) - 0.7\\,(b - t)` includes 0 or lies above it. A criterion that cannot be measured (no placement arm)
is not met.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from radgazegen.controls.extract import stacked_controls
from radgazegen.controls.registry import control_kind, is_gaze
from radgazegen.evaluation.adherence import adherence
from radgazegen.evaluation.bank import DONOR, PERTURBED, Configuration, configuration_inputs
from radgazegen.evaluation.classify import mean_auroc
from radgazegen.evaluation.placement import per_reading
from radgazegen.evaluation.protocols.classification import augmented_classifier
from radgazegen.evaluation.protocols.placement import Placement
from radgazegen.evaluation.protocols.privacy import ANY, REPORT, TOP1, TOPK, PrivacyAudit
from radgazegen.evaluation.stats import Estimate, bootstrap
from radgazegen.evaluation.study import Study, read_table

RETAIN = 0.7
"""Share of the paper configuration's gain over text only a private configuration must keep."""
MEMORIZED_TIMES = 2.0
"""How many times the held-out images' own memorized share a private configuration may reach."""
PAPER = "both"


def placement_arm(configuration: Configuration, arms: Sequence[Configuration]) -> str | None:
    """The placement arm with ``configuration``'s controls and anatomy (own and donor anatomy share one arm)."""
    perturbed = configuration.anatomy == PERTURBED
    for arm in arms:
        if arm.mode == configuration.mode and set(arm.controls) == set(configuration.controls) \
                and (arm.anatomy == PERTURBED) == perturbed:  # fmt: skip
            return arm.name
    return None


@dataclass
class Frontier:
    """Per configuration, privacy and utility with intervals (:attr:`table`), and the target's criteria."""

    study: Study
    audit: PrivacyAudit
    placement: Placement
    table: pd.DataFrame
    predictions: dict[str, np.ndarray]  # configuration -> the real + generated classifier's test scores

    def targets(self) -> pd.DataFrame:
        """One row per private configuration and criterion: estimate, interval, whether it is met (module docstring)."""
        rows = []
        audit, boot, seed = self.audit, self.study.settings.bootstrap, self.study.preset.seed
        for name in self.table.index:
            configuration = self.study.configuration(name)
            if not configuration.anatomical or configuration.uses_own_image:
                continue
            for space in audit.spaces:
                for metric in (TOP1, TOPK):
                    estimate = audit.difference(metric, name, "text", space.name, first_role=ANY, second_role=REPORT)
                    rows.append(_criterion(name, f"re-identified {metric} ({space.name}) − text only", estimate,
                                           passes=estimate.low <= 0))  # fmt: skip
                estimate = audit.memorized_excess(name, space.name, MEMORIZED_TIMES)
                rows.append(_criterion(name, f"memorized share − {MEMORIZED_TIMES:g} × held-out share ({space.name})",
                                       estimate, passes=estimate.low <= 0))  # fmt: skip
            arms = {n: placement_arm(self.study.configuration(n), self.placement.arms) for n in (name, PAPER, "text")}
            label = f"hit rate: (c − text) − {RETAIN:g} (paper − text)"
            if None in arms.values():
                rows.append(_criterion(name, label, Estimate(np.nan, np.nan, np.nan, 0), passes=False))
            else:
                hits = pd.concat([per_reading(self.placement.table, arms[n], "hit") for n in (name, PAPER, "text")],
                                 axis=1, keys=["c", "b", "t"]).dropna()  # fmt: skip
                kept = (hits["c"] - hits["t"] - RETAIN * (hits["b"] - hits["t"])).to_numpy()
                estimate = bootstrap(np.mean, kept, n_boot=boot, seed=seed)
                rows.append(_criterion(name, label, estimate, passes=estimate.high >= 0))
            labels = self.study.test.labels
            estimate = bootstrap(lambda y, c, b, t: (mean_auroc(y, c) - mean_auroc(y, t))
                                 - RETAIN * (mean_auroc(y, b) - mean_auroc(y, t)),
                                 labels, self.predictions[name], self.predictions[PAPER], self.predictions["text"],
                                 n_boot=boot, seed=seed)  # fmt: skip
            rows.append(_criterion(name, f"mean AUROC: (c − text) − {RETAIN:g} (paper − text)", estimate,
                                   passes=estimate.high >= 0))  # fmt: skip
        columns = ["configuration", "criterion", "estimate", "low", "high", "n", "met"]
        return pd.DataFrame(rows, columns=columns).set_index(columns[:2])

    def verdicts(self) -> pd.Series:
        """Per private configuration: ``met`` when every criterion is, else ``missed: <criteria>``."""
        targets = self.targets()
        found = {}
        for name, rows in targets.groupby(level="configuration", sort=False):
            failed = [criterion for (_, criterion), ok in rows["met"].items() if not ok]
            found[name] = "met" if not failed else "missed: " + "; ".join(failed)
        return pd.Series(found, name="target")


def _criterion(name: str, criterion: str, estimate: Estimate, *, passes: bool) -> dict:
    return {"configuration": name, "criterion": criterion, "estimate": estimate.value, "low": estimate.low,
            "high": estimate.high, "n": estimate.n, "met": bool(passes and np.isfinite(estimate.value))}  # fmt: skip


def privacy_frontier(study: Study, audit: PrivacyAudit, placement: Placement, *, longtail: bool = True,
             configurations: Sequence[str] | None = None) -> Frontier:  # fmt: skip
    """Privacy and utility of every audited configuration (or ``configurations``; module docstring).

    Reads chapter 5's ``metrics/quality.csv``; trains (or loads) each configuration's real + generated classifier and,
    with ``longtail``, its long-tail classifier.
    """
    from radgazegen.evaluation.protocols.longtail import balanced_accuracy_estimate

    quality, privacy = read_table(study.run_dir, "quality"), audit.summary()
    boot, seed = study.settings.bootstrap, study.preset.seed
    names = [n for n in audit.samples if configurations is None or n in configurations]
    rows, predictions = {}, {}
    for name in names:
        configuration = study.configuration(name)
        row: dict[str, float | str] = {"label": configuration.label, "anatomy": _anatomy(configuration)}
        for space in audit.spaces:
            audited = privacy.loc[(name, space.name, ANY)]
            for metric in (TOP1, "memorized"):
                row |= {f"{metric} ({space.name}){end}": audited[f"{metric}{end}"] for end in ("", " low", " high")}
        for column in ("FRD", "FID (CXR)"):
            if name in quality.index and column in quality.columns:
                row |= {f"{column}{end}": quality.loc[name, f"{column}{end}"] for end in ("", " low", " high")}
        row |= bootstrap(np.mean, anatomy_adherence(study, configuration), n_boot=boot,
                         seed=seed).columns("anatomy adherence")  # fmt: skip
        arm = placement_arm(configuration, placement.arms)
        if arm is not None:
            hits = per_reading(placement.table, arm, "hit").to_numpy()
            row |= bootstrap(np.mean, hits, n_boot=boot, seed=seed).columns("hit rate")
        predictions[name] = augmented_classifier(study, name).predict(study.test.images)
        row |= bootstrap(mean_auroc, study.test.labels, predictions[name], n_boot=boot, seed=seed).columns("mean AUROC")
        if longtail:
            row |= balanced_accuracy_estimate(study, name).columns("balanced accuracy")
        rows[name] = row
    return Frontier(study, audit, placement, pd.DataFrame.from_dict(rows, orient="index").rename_axis("configuration"),
                    predictions)  # fmt: skip


def _anatomy(configuration: Configuration) -> str:
    if not configuration.anatomical:
        return "none"
    return {DONOR: "a donor's", PERTURBED: "own, deformed"}.get(configuration.anatomy, "own")


def anatomy_adherence(study: Study, configuration: Configuration, *, batch: int = 64) -> np.ndarray:
    """Per conditioning reading: the mean over the anatomical maps ``configuration`` was given (or, given none, the
    reading's own maps of the paper configuration's Rad-CN) of the sample's adherence to them: map correlation for
    edges and texture, Dice for the lung mask. ``batch`` readings' maps are in memory at a time."""
    samples = study.samples(configuration.name)
    first = np.flatnonzero(samples.copy == 0)
    cases = study.conditions
    if configuration.anatomical:
        donors = study.donors if configuration.anatomy == DONOR else None
        inputs = configuration_inputs(configuration, cases, study.run_dir, study.pipe.registry, donors=donors,
                                      seed=study.preset.seed)  # fmt: skip
    else:
        names = list(study.configuration(PAPER).anatomical)

        def inputs(rows):
            return None, stacked_controls(study.run_dir, [cases[k].id for k in rows], names, study.pipe.registry)

    means = []
    for start in range(0, len(cases), batch):
        rows = list(range(start, min(start + batch, len(cases))))
        given = {name: maps for name, maps in inputs(rows)[1].items() if not is_gaze(name)}
        table = adherence(samples.images[first[rows]], given, study.pipe.registry)
        wanted = table[[metric == ("dice" if control_kind(control) == "mask" else "correlation")
                        for control, metric in zip(table["control"], table["metric"], strict=True)]]  # fmt: skip
        means.append(wanted.groupby("image")["value"].mean().reindex(range(len(rows))).to_numpy())
    return np.concatenate(means)
