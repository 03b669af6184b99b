"""Targets of the shipped checkpoint: does each control act, measured against SD text only (the reference arm).

Every target is a paired estimate over the same readings (or test images) with its 95% interval, decided
against its threshold: **met** when the whole interval is on the target's side, **missed** when it is wholly
on the other side, **undecided** otherwise (the verdict rule of :mod:`radgazegen.evaluation.claims`).

* gaze placement (:mod:`radgazegen.evaluation.placement`, ``evaluation.placement_readings`` held-out readings
  with one focal finding), for both HVA-CN inputs (whole-reading ``gaze`` and ``gaze_findings``) where trained:
  finding share of each gaze arm at least 2x text only's, centroid distance at most 0.6x (ratios of paired
  means, bootstrap intervals), and ``follows`` above 0;
* Rad-CN adherence on the conditioning readings: lungs Dice and Canny F1 of RadGazeGen (``both``) above text only;
* quality: FRD and FID (CXR) of ``both`` minus text only below 0 (half-sampling intervals);
* downstream: mean AUROC of real + generated training images minus real alone above 0 (``--classification``).

    python benchmarks/adherence.py [--preset cpu] [--run-dir runs/cpu] [--pipeline-dir DIR] [--gaze NAME ...] [--classification]
                                   [--json radgazegen/benchmark_results/adherence_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import pandas as pd

from radgazegen.controls.registry import is_gaze
from radgazegen.evaluation.claims import HIGHER, LOWER, NOT_SUPPORTED, SUPPORTED, Claim, verdict
from radgazegen.evaluation.protocols import (
    QualityEvaluation,
    adherence_claims,
    adherence_tables,
    classification_claims,
    placement_protocol,
)
from radgazegen.evaluation.stats import Estimate
from radgazegen.evaluation.study import open_study

WORDS = {SUPPORTED: "met", NOT_SUPPORTED: "missed"}
PLACEMENT_RATIOS = (("finding share", HIGHER, 2.0), ("centroid distance", LOWER, 0.6))


def target(name: str, estimate: Estimate, better: str, threshold: float, reference: float = math.nan,
           arm: float = math.nan) -> dict:  # fmt: skip
    return {"target": name, "text only": reference, "arm": arm, "estimate": estimate.value, "low": estimate.low,
            "high": estimate.high, "n": estimate.n, "threshold": f"{'>' if better == HIGHER else '<'} {threshold:g}",
            "verdict": WORDS.get(verdict(estimate, better, threshold), "undecided")}  # fmt: skip


def from_claim(claim: Claim) -> dict:
    return target(f"{claim.metric}: {claim.first} − {claim.second}", claim.estimate, claim.better, 0.0)


def placement_targets(summary: pd.DataFrame) -> list[dict]:
    rows = []
    means = summary.set_index(["arm", "metric"])["mean"]
    for _, row in summary[summary["arm"] != "text"].iterrows():
        arm = row["arm"]
        if not (arm.startswith("gaze") or arm.startswith("both")):
            continue
        for metric, better, threshold in PLACEMENT_RATIOS:
            if row["metric"] == metric:
                estimate = Estimate(row["ratio"], row["ratio low"], row["ratio high"], int(row["readings"]))
                rows.append(target(f"{metric}: {arm} / text", estimate, better, threshold, means[("text", metric)],
                                   row["mean"]))  # fmt: skip
        if row["metric"] == "follows":
            estimate = Estimate(row["difference"], row["difference low"], row["difference high"], int(row["readings"]))
            rows.append(target(f"follows: {arm}", estimate, HIGHER, 0.0, 0.0, row["mean"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--run-dir", default="", help="the run directory (default runs/<preset>)")
    parser.add_argument("--pipeline-dir", default="", help="a saved pipeline (default: the preset's; 'run': the run's)")
    parser.add_argument("--gaze", nargs="+", help="the HVA-CN inputs to place with (default: every gaze control "
                        "the pipeline has; the book's is the preset's hva, whose samples it has cached)")
    parser.add_argument("--classification", action="store_true", help="also the downstream AUROC target (slow)")
    parser.add_argument("--json", help="also write the targets to this file")
    args = parser.parse_args()

    started = time.perf_counter()
    study = open_study(args.preset, run_dir=args.run_dir, pipeline_dir=args.pipeline_dir)
    gaze = args.gaze or [name for name in study.pipe.controls_of("multi") if is_gaze(name)]  # both HVA-CN inputs, if trained
    placement = placement_protocol(study, gaze=gaze)
    boot, seed = study.settings.bootstrap, study.preset.seed
    rows = placement_targets(placement.summary(n_boot=boot, seed=seed))
    tables = adherence_tables(study)
    rows += [from_claim(c) for c in adherence_claims(study, tables)
             if c.metric in ("lungs dice", "canny f1") and c.first == "both"]  # fmt: skip
    rows += [from_claim(c) for c in QualityEvaluation(study).claims()
             if c.second == "text" and c.metric in ("FRD", "FID (CXR)")]  # fmt: skip
    if args.classification:
        rows += [from_claim(c) for c in classification_claims(study)]
    table = pd.DataFrame(rows)
    print(f"preset {study.preset.name}, pipeline {study.pipe.source}; {len(placement.cohort)} placement readings, "
          f"{len(study.conditions)} conditioning readings; {time.perf_counter() - started:.0f} s")  # fmt: skip
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    print(", ".join(f"{count} {word}" for word, count in table["verdict"].value_counts().items()))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"preset": study.preset.name, "pipeline": str(study.pipe.source), "targets": rows}, handle,
                      indent=2)  # fmt: skip


if __name__ == "__main__":
    main()
