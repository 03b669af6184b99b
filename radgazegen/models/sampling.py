"""Sample a data set's cases with a trained pipeline: each case's report as the prompt, its controls as input."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from radgazegen.controls.extract import case_controls, stacked_controls
from radgazegen.data.images import save_png16
from radgazegen.data.reflacx import ReflacxCase, ReflacxDataset
from radgazegen.models.pipeline import RadGazeGenPipeline
from radgazegen.presets import Preset
from radgazegen.runs import record

TEXT_ONLY = "text"  # sampling mode without any control: the SD-text-only baseline


def load_pipeline(
    preset: Preset, run_dir: str | Path, pipeline: str | Path | None = None, device: str = "cpu"
) -> RadGazeGenPipeline:
    """The saved pipeline :func:`~radgazegen.models.shipped.pipeline_folder` picks, else the run's own.

    A shipped folder (one with a manifest) is verified against its SHA-256 first and loaded in float32; the run's
    own is the pipeline its training exported (``<run_dir>/pipeline``; exported now if a run predates that).
    fp16 on CUDA when the preset trains in fp16.
    """
    from radgazegen.models.shipped import MANIFEST, load_shipped, pipeline_folder
    from radgazegen.models.assembly import RUN_PIPELINE, export_run

    folder = pipeline_folder(preset, pipeline)
    if folder is None:
        folder = Path(run_dir) / RUN_PIPELINE
        if not folder.is_dir():
            export_run(run_dir, preset)
    if (folder / MANIFEST).is_file():
        pipe = load_shipped(folder, scheduler=preset.sampling.scheduler)
    else:
        pipe = RadGazeGenPipeline.from_pretrained(folder, scheduler=preset.sampling.scheduler)
    half = device.startswith("cuda") and preset.train.mixed_precision == "fp16"
    return pipe.to(device, torch.float16 if half else None)


def case_generators(seed: int, indices: Sequence[int]) -> list[torch.Generator]:
    """One generator per image, seeded by its index: a sample does not depend on the batch it is in."""
    return [torch.Generator().manual_seed(seed * 1_000_003 + int(i)) for i in indices]


def sample_batch(
    pipe: RadGazeGenPipeline,
    cases: Sequence[ReflacxCase],
    run_dir: str | Path,
    preset: Preset,
    *,
    mode: str = "multi",
    scales: float | dict[str, float] = 1.0,
    controls: Sequence[str] | None = None,
    seed_offset: int = 0,
    steps: int | None = None,
    seeds: Sequence[int] | None = None,
) -> np.ndarray:
    """Images ``(len(cases), S, S)`` for the cases' reports and extracted controls (``mode="text"``: none).

    Image ``k`` is seeded by ``seeds[k]`` (default ``seed_offset + k``); ``steps`` overrides the
    preset's number of denoising steps.
    """
    names = [] if mode == TEXT_ONLY else list(controls if controls is not None else pipe.controls_of(mode))
    maps = stacked_controls(run_dir, [case.id for case in cases], names, pipe.registry) if names else {}
    generators = case_generators(
        preset.seed, seeds if seeds is not None else [seed_offset + k for k in range(len(cases))]
    )
    return pipe([case.transcription() for case in cases], maps, mode=None if mode == TEXT_ONLY else mode,
                control_scales=scales, num_inference_steps=steps or preset.sampling.steps,
                **preset.sampling.guidance(), generator=generators, progress=False).images  # fmt: skip


def sample_prompts(
    pipe: RadGazeGenPipeline,
    prompts: str | Sequence[str],
    given: dict[str, np.ndarray],
    preset: Preset,
    *,
    controls: Sequence[str] | None = None,
    mode: str = "multi",
    scales: float | dict[str, float] = 1.0,
    seeds: Sequence[int] | None = None,
) -> np.ndarray:
    """Images ``(len(prompts), S, S)`` for free prompts and control maps, with the preset's sampler settings.

    Of ``given`` ({control: (n, S, S)}) only the maps ``mode`` takes are passed (multi: those of ``controls``
    when given, e.g. one gaze map of several); ``given={}`` samples from text alone. Image ``k`` is seeded
    ``seeds[k]`` (default ``k``) with :func:`case_generators`.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    takes = set(controls if controls is not None and mode == "multi" else pipe.controls_of(mode))
    maps = {name: values for name, values in given.items() if name in takes}
    generators = case_generators(preset.seed, seeds if seeds is not None else range(len(prompts)))
    return pipe(prompts, maps, control_scales=scales, mode=mode,
                num_inference_steps=preset.sampling.steps, **preset.sampling.guidance(), generator=generators,
                progress=False).images  # fmt: skip


def sample_readings(
    pipe: RadGazeGenPipeline,
    cases: Sequence[ReflacxCase],
    *,
    controls: Sequence[str] = (),
    data_root: str | Path | None = None,
    steps: int = 25,
    guidance_scale: float = 2.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    seed: int = 0,
) -> np.ndarray:
    """Images ``(len(cases), S, S)`` of ``pipe`` with the cases' ``controls`` computed in memory at its own size.

    Unlike :func:`sample_batch` nothing is read from a run directory, so two pipelines of different runs or sizes
    sample the same readings alike (no controls: text only). Image ``k`` is seeded ``k``.
    """
    maps = [case_controls(case, controls, pipe.registry, data_root=data_root) for case in cases] if controls else []
    given = {name: np.stack([m[name] for m in maps]) for name in controls}
    return pipe([case.transcription() for case in cases], given, mode="multi" if controls else None,
                num_inference_steps=steps, guidance_scale=guidance_scale, guidance_interval=guidance_interval,
                generator=case_generators(seed, range(len(cases))), progress=False).images  # fmt: skip


def sample_cases(
    preset: Preset,
    run_dir: str | Path,
    dataset: ReflacxDataset,
    *,
    split: str = "test",
    mode: str = "multi",
    scale: float = 1.0,
    pipeline: str | Path | None = None,
    out: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 8,
) -> Path:
    """Write one 16-bit PNG per case of ``split`` to ``out`` (default ``<run_dir>/samples/<mode>``)."""
    pipe = load_pipeline(preset, run_dir, pipeline, device)
    cases = _split_cases(dataset, split)
    out = Path(out) if out else Path(run_dir) / "samples" / mode
    for start in tqdm(range(0, len(cases), batch_size), desc=f"samples ({mode})", unit="batch"):
        batch = cases[start : start + batch_size]
        images = sample_batch(pipe, batch, run_dir, preset, mode=mode, scales=scale, seed_offset=start)
        for case, image in zip(batch, images, strict=True):
            save_png16(out / f"{case.id}.png", image)
    record(run_dir, "samples", mode, {"split": split, "cases": len(cases), "scale": scale, "folder": str(out),
                                      "pipeline": str(pipe.source)})  # fmt: skip
    return out


def sample_release(
    dataset: ReflacxDataset,
    release: str | Path,
    out: str | Path,
    *,
    split: str = "test",
    scales: str = "reflacx",
    device: str = "cpu",
) -> Path:
    """Sample ``split`` with the authors' released weights as their scripts do (:mod:`radgazegen.models.authors`):
    each case's report, its five controls made at 512 px, their scales, 50 UniPC steps, seed 3407 for every image.
    One 16-bit PNG per case in ``out``; float16 on CUDA, as their scripts load the weights."""
    from radgazegen.controls.extract import case_inputs
    from radgazegen.models import authors

    cases = _split_cases(dataset, split)
    call = authors.release_call(scales)
    pipe = authors.load_release(release, dtype=torch.float16 if device.startswith("cuda") else None).to(device)
    for case in tqdm(cases, desc="samples (authors' release)", unit="image"):
        controls = authors.release_controls(case_inputs(case, authors.CONTROLS), size=pipe.image_size)
        image = pipe(case.transcription(), {name: control[None] for name, control in controls.items()},
                     generator=torch.Generator().manual_seed(authors.SEED), progress=False, **call).images[0]  # fmt: skip
        save_png16(Path(out) / f"{case.id}.png", image)
    return Path(out)


def _split_cases(dataset: ReflacxDataset, split: str) -> list[ReflacxCase]:
    """The cases of ``split``; an error lists the data set's splits when it has none."""
    cases = [case for case in dataset if case.split == split]
    if not cases:
        present = dataset.metadata["split"].value_counts().to_dict()
        raise ValueError(f"{dataset.root}: no cases in split {split!r}; the data set's splits: {present}")
    return cases
