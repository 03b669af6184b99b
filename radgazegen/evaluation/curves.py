r"""Training curves: where each control is learned, read from a run's weight snapshots.

A run trained with ``TrainSettings.snapshots`` keeps ``snapshots/step-<n>/`` weights at every validation
step (:func:`radgazegen.models.train.snapshots`). For each snapshot:

* **base UNet**: the held-out denoising error
  :math:`\frac{1}{N}\sum_i \lVert \hat x_0(x_{t_i}, t_i, y_i) - x_0^{(i)} \rVert^2 / P` over the validation
  readings at ten fixed noise levels, with fixed noise (the same draws for every snapshot);
* **gaze ControlNets**: the placement protocol (:mod:`radgazegen.evaluation.placement`) on the first
  ``readings`` of its *selection* readings (disjoint from the ones the evaluation chapters score), original
  and mirrored gaze, HVA-CN only: finding share, hit rate and ``follows``;
* **Rad-CN and texture ControlNets**: adherence of single-ControlNet samples to the conditioning readings'
  own control (:func:`radgazegen.evaluation.adherence.adherence`): Canny F1, lungs Dice, texture MAE.

Each control's row at ``step = 0`` is the text-only baseline (no ControlNet), so a curve starts where a
model that ignores the control stands.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from radgazegen.controls.extract import stacked_controls
from radgazegen.controls.registry import is_gaze
from radgazegen.evaluation import placement
from radgazegen.evaluation.adherence import adherence
from radgazegen.evaluation.bank import Configuration, generate
from radgazegen.evaluation.cohort import reflacx_cohort
from radgazegen.evaluation.protocols.placement import placement_readings
from radgazegen.evaluation.protocols.truth import finding_segmenter
from radgazegen.models.controlnet import folder_name, load_controlnet, load_unet
from radgazegen.models.pipeline import RadGazeGenPipeline
from radgazegen.models.assembly import noise_scheduler_for
from radgazegen.models.sampling import TEXT_ONLY
from radgazegen.models.text import encode_prompts
from radgazegen.models.train import snapshots

NOISE_LEVELS = 10
CURVE_METRICS = {"canny": ("f1",), "lungs": ("dice",), "texture": ("mae",),
                 "gaze": ("finding share", "hit", "follows")}  # fmt: skip


def _metrics_of(control: str) -> tuple[str, ...]:
    if is_gaze(control):
        return CURVE_METRICS["gaze"]
    return CURVE_METRICS["texture" if control.startswith("texture:") else control]


def with_controlnet(pipe: RadGazeGenPipeline, control: str, folder: str | Path) -> RadGazeGenPipeline:
    """``pipe`` (its networks shared) with the ControlNet for ``control`` saved in ``folder``."""
    net, names = load_controlnet(folder)
    if names != [control]:
        raise ValueError(f"{folder}: a ControlNet for {names}, not for {control!r}")
    return pipe.with_controlnets({**pipe.controlnets, control: net.to(pipe.device, pipe.dtype)})


@torch.no_grad()
def denoising_error(pipe: RadGazeGenPipeline, images: np.ndarray, prompts: list[str], *, seed: int = 0) -> float:
    """Mean squared error of the x0 prediction over ``images`` (n, S, S) in [0, 1] at :data:`NOISE_LEVELS` noise levels."""
    scheduler = noise_scheduler_for(None)
    generator = torch.Generator().manual_seed(seed)
    clean = torch.as_tensor(images, dtype=torch.float32)[:, None] * 2 - 1
    states = encode_prompts(pipe.tokenizer, pipe.text_encoder, prompts, pipe.max_prompt_tokens).to(pipe.device)
    levels = np.linspace(0, scheduler.config.num_train_timesteps - 1, NOISE_LEVELS + 2)[1:-1].round().astype(int)
    errors = []
    for level in levels:
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.full((len(clean),), int(level), dtype=torch.long)
        noisy = scheduler.add_noise(clean, noise, timesteps)
        predicted = pipe.unet(noisy.to(pipe.device, pipe.dtype), timesteps.to(pipe.device), states.to(pipe.dtype)).sample
        errors.append(float(((predicted.float().cpu() - clean) ** 2).mean()))
    return float(np.mean(errors))


def base_curve(study, *, readings: int = 64) -> pd.DataFrame:
    """Rows ``network, step, metric, value`` of the base UNet's held-out denoising error per snapshot."""
    held = reflacx_cohort(study.dataset, study.run_dir, study.preset.control_size, split=("validate", "test"),
                          progress=False)  # fmt: skip
    cases = {case.id: case for case in study.dataset}
    rows = slice(0, readings)
    prompts = [cases[i].transcription() for i in held.ids[rows]]
    found = []
    for step, folder in tqdm(snapshots(study.run_dir / "checkpoints" / "base").items(), desc="base curve",
                             unit="snapshot", disable=not study.progress):  # fmt: skip
        pipe = copy.copy(study.pipe)
        pipe.unet = load_unet(folder / "unet").to(study.pipe.device, study.pipe.dtype)
        found.append(("base", step, "denoising error", denoising_error(pipe, held.images[rows], prompts)))
    return pd.DataFrame(found, columns=["network", "step", "metric", "value"])


def controlnet_curve(study, control: str, *, readings: int = 32, steps: int | None = None) -> pd.DataFrame:
    """Rows ``network, step, metric, value`` of one ControlNet's adherence per snapshot (step 0: text only)."""
    folder = study.run_dir / "checkpoints" / "controlnet" / folder_name(control)
    found = snapshots(folder)
    if not found:
        raise FileNotFoundError(f"{folder}: no snapshots (train with a preset that keeps them, e.g. 'shipped')")
    measure = _measure(study, control, readings, steps or study.settings.sampling_steps,
                       study.run_dir / "curves" / folder_name(control))  # fmt: skip
    rows = [(control, 0, metric, value) for metric, value in measure(study.pipe, f"step-{0:06d}", text_only=True).items()]
    for step, snapshot in tqdm(found.items(), desc=f"curve ({control})", unit="snapshot", disable=not study.progress):
        pipe = with_controlnet(study.pipe, control, snapshot)
        rows += [(control, step, metric, value) for metric, value in measure(pipe, f"step-{step:06d}").items()]
    return pd.DataFrame(rows, columns=["network", "step", "metric", "value"])


def adherence_beside(
    study, models: Mapping[str, RadGazeGenPipeline], controls: Sequence[str], *, readings: int = 16,
    steps: int | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Several generators' adherence to the same controls on the same readings, each control's ControlNet alone.

    Rows ``model, control, metric, value``; model ``"text only"`` is the first model without ControlNets (the
    curves' step 0). Gaze controls use the placement protocol on the selection readings, the others the
    conditioning readings (module docstring). Images are cached under ``curves/beside/<control>/<model>/``.
    """
    rows = []
    for control in controls:
        measure = _measure(study, control, readings, steps or study.settings.sampling_steps,
                           study.run_dir / "curves" / "beside" / folder_name(control))  # fmt: skip
        first = next(iter(models.values()))
        rows += [("text only", control, metric, value) for metric, value in measure(first, "text-only", text_only=True).items()]
        for label, pipe in models.items():
            rows += [(label, control, metric, value) for metric, value in measure(pipe, label.replace(" ", "-")).items()]
    return pd.DataFrame(rows, columns=["model", "control", "metric", "value"])


def _measure(study, control: str, readings: int, steps: int, root: Path):
    """``measure(pipe, label, text_only=False)``: ``control``'s adherence metrics of ``pipe``'s samples (cached in ``root/label``)."""
    return (_gaze_measure if is_gaze(control) else _map_measure)(study, control, readings, steps, root)


def _gaze_measure(study, control: str, readings: int, steps: int, root: Path):
    cases, donors, data_root, donor_root = placement_readings(study, selection=True)
    cohort = placement.placement_cohort(cases[:readings], donors, study.pipe.registry, gaze_controls=(control,),
                                        data_root=data_root, donor_root=donor_root, progress=False)  # fmt: skip
    segmenter = finding_segmenter(study)
    moves = placement.MOVES[:2]

    def measure(pipe, label: str, *, text_only: bool = False) -> dict[str, float]:
        arm = Configuration("text", "text", TEXT_ONLY, ()) if text_only else Configuration(control, control, "multi", (control,))
        images = {}
        for how in moves[:1] if text_only else moves:
            images[how] = placement.sample_arm(pipe, arm, cohort, how, root / label / how, steps=steps,
                                               **study.preset.sampling.guidance(),
                                               seed=study.preset.seed, progress=False)  # fmt: skip
        table = placement.placement_table({arm.name: images}, cohort, segmenter)
        table = table[table["move"].isin(moves)]
        return {metric: float(placement.per_reading(table, arm.name, metric).mean()) for metric in _metrics_of(control)}

    return measure


def _map_measure(study, control: str, readings: int, steps: int, root: Path):
    cases = study.conditions[:readings]
    registry = study.pipe.registry
    given = stacked_controls(study.run_dir, [c.id for c in cases], [control], registry)
    segmenter = finding_segmenter(study)

    def measure(pipe, label: str, *, text_only: bool = False) -> dict[str, float]:
        arm = Configuration("text", "text", TEXT_ONLY, ()) if text_only else Configuration(control, control, "multi", (control,))
        images = generate(pipe, arm, cases, study.run_dir, study.preset, steps=steps, batch_size=16, folder=root / label,
                          progress=False).images  # fmt: skip
        table = adherence(images, given, registry, segmenter=segmenter)
        means = table.groupby("metric")["value"].mean()
        return {metric: float(means[metric]) for metric in _metrics_of(control) if metric in means}

    return measure


def training_curves(study, *, readings: int = 32, steps: int | None = None) -> pd.DataFrame:
    """The base curve and one curve per ControlNet of the run that has snapshots, in one long table."""
    parts = [base_curve(study)]
    root = study.run_dir / "checkpoints" / "controlnet"
    for control in study.pipe.controls_of("multi") if "multi" in study.pipe.modes else []:
        if snapshots(root / folder_name(control)):
            parts.append(controlnet_curve(study, control, readings=readings, steps=steps))
    return pd.concat(parts, ignore_index=True)
