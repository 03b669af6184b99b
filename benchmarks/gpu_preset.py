"""The ``gpu`` preset end to end at a reduced budget: what each stage of ``make book PRESET=gpu`` costs.

Runs the package's own code at the preset's sizes (576x480 phantom, 256-px controls and networks,
fp16 mixed precision, EMA, DenseNet-121 classifier) but for fewer readings, steps and epochs, and
prints per-stage wall time and throughput, so the full preset's time can be planned from them:

1. phantom readings written in the REFLACX layout; 2. control maps (the preset's controls) on the
device; 3. base UNet training; 4. the fused ControlNet and one multi-mode ControlNet (gaze);
5. sampling with the trained networks at the preset's scheduler and steps (fused and multi modes);
6. the DenseNet classifier of the evaluation chapters. Full-preset estimates scale the measured
rates to the preset's step and epoch counts (``estimate`` column).

    python benchmarks/gpu_preset.py [--cases 64] [--base-steps 200] [--controlnet-steps 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from radgazegen.controls.extract import extract_controls
from radgazegen.controls.registry import ControlSettings
from radgazegen.data.phantom import generate_phantom
from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.evaluation.classify import train_classifier
from radgazegen.evaluation.cohort import reflacx_cohort
from radgazegen.io import write_json_atomic
from radgazegen.models.sampling import load_pipeline, sample_batch
from radgazegen.models.train import train
from radgazegen.presets import PRESETS, get_preset
from radgazegen.runs import hardware, versions


def synchronised_seconds(device: str, started: float) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


def run(args: argparse.Namespace, run_dir: Path) -> list[dict]:
    preset, device = get_preset(args.preset), args.device
    rows: list[dict] = []

    def add(stage: str, seconds: float, work: float, unit: str, full: float | None = None) -> None:
        rate = work / seconds if seconds > 0 else float("nan")
        rows.append({"stage": stage, "seconds": round(seconds, 2), "work": work, "rate": round(rate, 3),
                     "unit": unit, "estimate_s": None if full is None else round(full / rate, 1)})  # fmt: skip
        print(f"{stage:<34} {seconds:9.2f} s  {rate:10.3f} {unit}", flush=True)

    started = time.perf_counter()
    data = generate_phantom(run_dir / "dataset", n=args.cases, seed=preset.seed, size=preset.phantom_size,
                            progress=False)  # fmt: skip
    add("phantom readings", time.perf_counter() - started, args.cases, "readings/s", preset.phantom_cases)
    dataset = ReflacxDataset(data)

    started = time.perf_counter()
    extract_controls(dataset, list(preset.controls), run_dir, ControlSettings(size=preset.control_size),
                     device=device, progress=False)  # fmt: skip
    add(f"controls {list(preset.controls)}", synchronised_seconds(device, started), args.cases, "readings/s",
        preset.phantom_cases)  # fmt: skip

    train_settings = preset.train
    stages = [("base UNet", "base", {}, args.base_steps, train_settings.base_steps),
              ("fused ControlNet", "controlnet", {"mode": "fused"}, args.controlnet_steps, train_settings.controlnet_steps),
              ("multi ControlNet (gaze)", "controlnet", {"mode": "multi", "controls": ["gaze"]}, args.controlnet_steps,
               train_settings.controlnet_steps)]  # fmt: skip
    for label, stage, options, steps, full_steps in stages:
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        result = train(preset, run_dir, stage, dataset, steps=steps, device=device, progress=False, **options)[0]
        add(f"train {label}", result.seconds, steps, "steps/s", full_steps)
        if device.startswith("cuda"):
            rows[-1]["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)

    pipe = load_pipeline(preset, run_dir, device=device)
    cases = [case for case in dataset if case.split == "train"][: args.images]
    evaluation = preset.evaluation
    full_images = 6 * (evaluation.conditions + evaluation.diversity_pairs)  # the sample bank: six configurations
    for mode, controls in (("fused", None), ("multi", ["gaze"])):
        sample_batch(pipe, cases[:2], run_dir, preset, mode=mode, controls=controls, steps=2)  # warm-up
        started = time.perf_counter()
        for start in range(0, len(cases), args.batch):
            sample_batch(pipe, cases[start : start + args.batch], run_dir, preset, mode=mode, controls=controls)
        add(f"sample {mode} ({preset.sampling.steps} steps)", synchronised_seconds(device, started), len(cases),
            "images/s", full_images)  # fmt: skip

    cohort = reflacx_cohort(dataset, run_dir, preset.control_size, split="train", progress=False)
    settings = preset.evaluation.classifier
    quick = dataclasses.replace(settings, epochs=args.classifier_epochs)
    started = time.perf_counter()
    train_classifier(cohort.images, cohort.labels, cohort.classes, quick, device=device, progress=False)
    seen = len(cohort) * args.classifier_epochs
    add(f"classifier DenseNet {settings.block_config}", synchronised_seconds(device, started), seen, "images/s",
        len(cohort) / args.cases * preset.phantom_cases * settings.epochs)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpu", choices=sorted(set(PRESETS) - {"paper"}))
    parser.add_argument("--cases", type=int, default=64, help="phantom readings (the preset has more)")
    parser.add_argument("--base-steps", type=int, default=200)
    parser.add_argument("--controlnet-steps", type=int, default=100)
    parser.add_argument("--images", type=int, default=16, help="images sampled per mode")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classifier-epochs", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--run-dir", type=Path, help="keep the run here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows = run(args, args.run_dir or Path(scratch))
    print("estimate_s: the full preset's count of that stage's work at the measured rate")
    if args.json:
        write_json_atomic(args.json, {"preset": args.preset, "device": args.device, "hardware": hardware(),
                                      "versions": versions(), "arguments": {k: str(v) for k, v in vars(args).items()},
                                      "stages": rows})  # fmt: skip


if __name__ == "__main__":
    main()
