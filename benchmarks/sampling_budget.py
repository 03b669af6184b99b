"""Sampling budget of the evaluation: images/s, gaze placement and FRD against steps and the guidance window.

The placement protocol's text-only and Rad-CN + HVA-CN arms (all three gaze moves) on the first ``--readings``
*selection* readings (disjoint from the evaluated ones, so the choice does not see the evaluation), sampled by
the preset's pipeline under each setting ``steps:start-end`` (classifier-free guidance only on that window of
the steps). Per setting: images/s, the arm's mean finding share, centroid distance, hit and ``follows`` and
its paired ratio to text only, and FRD v1 of each arm's images against the training images. The first
setting is the reference of the speed-up (timed after an untimed warm-up call); every run samples afresh
into a temporary folder, so nothing cached is timed.

    python benchmarks/sampling_budget.py [--preset cpu] [--readings 24] [--settings 8:0-1 4:0-1 8:0-0.5 ...]
                                         [--json radgazegen/benchmark_results/sampling_budget_cpu.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from radgazegen.evaluation import frd
from radgazegen.evaluation.placement import (
    MOVES,
    gaze_of,
    placement_arms,
    placement_cohort,
    placement_summary,
    placement_table,
    sample_arm,
)
from radgazegen.evaluation.protocols import finding_segmenter, placement_readings
from radgazegen.evaluation.study import open_study

METRICS = ("finding share", "centroid distance", "hit", "follows")


def parse(setting: str) -> tuple[int, tuple[float, float]]:
    steps, window = setting.split(":")
    start, end = window.split("-")
    return int(steps), (float(start), float(end))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--readings", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--settings", nargs="+", default=["8:0-1", "4:0-1", "8:0-0.5", "4:0-0.5", "25:0-1"])
    parser.add_argument("--json", help="also write the table to this file")
    args = parser.parse_args()

    study = open_study(args.preset, progress=False)
    study.settings = dataclasses.replace(study.settings, placement_readings=args.readings)
    readings, donors, root, donor_root = placement_readings(study, selection=True)
    pipe = study.pipe
    arms = [arm for arm in placement_arms(pipe, gaze=(study.preset.hva,)) if arm.name == "text" or arm.name.startswith("both")]
    both = arms[-1].name  # Rad-CN + HVA-CN
    rad = sorted({name for arm in arms for name in arm.controls if gaze_of(arm) != name})
    cohort = placement_cohort(readings, donors, pipe.registry, gaze_controls=(study.preset.hva,), rad_controls=rad,
                              data_root=root, donor_root=donor_root, progress=False)  # fmt: skip
    segmenter = finding_segmenter(study)
    reference = frd.frd_v1_features(study.train.images)
    pipe(cohort.prompts[:2], {}, mode=None, num_inference_steps=2, progress=False)  # warm-up, untimed
    rows, scratch = [], tempfile.mkdtemp(prefix="sampling-budget-")
    for setting in args.settings:
        steps, window = parse(setting)
        images, count, started = {}, 0, time.perf_counter()
        for arm in arms:
            images[arm.name] = {}
            for how in MOVES if gaze_of(arm) else MOVES[:1]:
                folder = Path(scratch) / setting / arm.name / how
                images[arm.name][how] = sample_arm(pipe, arm, cohort, how, folder, steps=steps, seed=study.preset.seed,
                                                   guidance_scale=study.preset.sampling.guidance_scale,
                                                   guidance_interval=window, batch_size=args.batch_size, progress=False)  # fmt: skip
                count += len(cohort)
        seconds = time.perf_counter() - started
        summary = placement_summary(placement_table(images, cohort, segmenter), n_boot=200, seed=0).set_index(["arm", "metric"])
        row = {"setting": setting, "steps": steps, "guidance window": f"{window[0]:g}-{window[1]:g}", "images": count,
               "images/s": count / seconds}  # fmt: skip
        for arm, label in (("text", "text"), (both, "both")):
            generated = np.concatenate(list(images[arm].values()))
            row[f"{label} FRD"] = frd.frechet_radiomics_distance(reference, frd.frd_v1_features(generated))
            for metric in METRICS:
                row[f"{label} {metric}"] = summary.loc[(arm, metric), "mean"]
        rows.append(row)
        print(f"{setting}: {count} images in {seconds:.0f} s", flush=True)
    shutil.rmtree(scratch)
    table = pd.DataFrame(rows)
    table["speed-up"] = table["images/s"] / table["images/s"].iloc[0]
    print(f"preset {study.preset.name}, pipeline {pipe.source}, {len(cohort)} selection readings, HVA-CN {study.preset.hva}")
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"preset": study.preset.name, "pipeline": str(pipe.source), "readings": len(cohort),
                       "rows": rows}, handle, indent=2)  # fmt: skip


if __name__ == "__main__":
    main()
