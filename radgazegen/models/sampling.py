"""Sample a data set's cases with a trained pipeline: each case's report as the prompt, its controls as input.

:func:`sample_cached` is the one way images are sampled into a folder and kept there: the sample bank, the
placement protocol, the training curves and ``radgazegen sample`` all go through it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from radgazegen.controls.extract import case_controls, stacked_controls
from radgazegen.data.images import load_image, save_png16
from radgazegen.data.reflacx import ReflacxCase, ReflacxDataset
from radgazegen.io import write_json_atomic
from radgazegen.models.pipeline import RadGazeGenPipeline
from radgazegen.presets import Preset
from radgazegen.runs import record

TEXT_ONLY = "text"  # sampling mode without any control: the SD-text-only baseline
SETTINGS_FILE = "settings.json"
"""What every image of a cached folder shares (:func:`folder_settings`); any change discards the folder's images."""
INPUTS_FILE = "inputs.json"
"""Per image of a cached folder, the digest of its prompt, control maps and seed (:func:`input_digest`)."""

SampleInputs = Callable[[Sequence[int]], tuple[list[str], dict[str, np.ndarray]]]
"""``inputs(rows)``: the prompts of images ``rows`` and their control maps ``{control: (len(rows), S, S)}``."""


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
) -> np.ndarray:
    """Images ``(len(cases), S, S)`` for the cases' reports and extracted controls (``mode="text"``: none).

    Image ``k`` is seeded by index ``seed_offset + k``; ``steps`` overrides the preset's number of denoising steps.
    """
    names = [] if mode == TEXT_ONLY else list(controls if controls is not None else pipe.controls_of(mode))
    maps = stacked_controls(run_dir, [case.id for case in cases], names, pipe.registry) if names else {}
    generators = case_generators(preset.seed, [seed_offset + k for k in range(len(cases))])
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
    """Write one 16-bit PNG per case of ``split`` to ``out`` (default ``<run_dir>/samples/<mode>``); case ``k`` is
    seeded ``k``. Through :func:`sample_cached`: a re-run keeps the images already made with the same inputs."""
    pipe = load_pipeline(preset, run_dir, pipeline, device)
    cases = _split_cases(dataset, split)
    out = Path(out) if out else Path(run_dir) / "samples" / mode
    controls = [] if mode == TEXT_ONLY else pipe.controls_of(mode)

    def inputs(rows: Sequence[int]) -> tuple[list[str], dict[str, np.ndarray]]:
        chosen = [cases[k] for k in rows]
        maps = stacked_controls(run_dir, [c.id for c in chosen], controls, pipe.registry) if controls else {}
        return [case.transcription() for case in chosen], maps

    sample_cached(pipe, out, [case.id for case in cases], inputs, mode=mode, controls=controls, seeds=range(len(cases)),
                  steps=preset.sampling.steps, **preset.sampling.guidance(), seed=preset.seed, control_scales=scale,
                  batch_size=batch_size, desc=f"samples ({mode})")  # fmt: skip
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


def input_digest(prompt: str, maps: dict[str, np.ndarray], seed_index: int) -> str:
    """SHA-256 of what one image depends on besides the shared settings: its prompt, each control map (name, shape
    and float32 values) and its seed index."""
    sha = hashlib.sha256(json.dumps([prompt, int(seed_index), sorted(maps)]).encode())
    for name in sorted(maps):
        values = np.ascontiguousarray(maps[name], np.float32)
        sha.update(f"{name}{values.shape}".encode())
        sha.update(values.tobytes())
    return sha.hexdigest()


def folder_settings(pipe: RadGazeGenPipeline, mode: str, controls: Sequence[str], *, steps: int, guidance_scale: float,
                    guidance_interval: tuple[float, float], seed: int, control_scales: float | dict[str, float] = 1.0
                    ) -> dict:  # fmt: skip
    """What every image of a cached folder depends on: the weights and registry (:meth:`RadGazeGenPipeline.digest`),
    the scheduler and its configuration, mode, controls and their scales, steps, guidance and seed. Not the
    pipeline's folder: retraining into the same folder must not reuse old images."""
    scheduler = {"class": type(pipe.scheduler).__name__, **dict(pipe.scheduler.config)}
    settings = {"mode": mode, "controls": list(controls), "control_scales": control_scales, "steps": int(steps),
                "seed": int(seed),
                "guidance_scale": float(guidance_scale), "guidance_interval": [float(v) for v in guidance_interval],
                "scheduler": scheduler, "weights": pipe.digest(mode, controls)}  # fmt: skip
    return json.loads(json.dumps(settings, default=str))


def sample_cached(
    pipe: RadGazeGenPipeline,
    folder: str | Path,
    names: Sequence[str],
    inputs: SampleInputs,
    *,
    mode: str,
    controls: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    guidance_scale: float,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    seed: int = 0,
    control_scales: float | dict[str, float] = 1.0,
    batch_size: int = 8,
    progress: bool = True,
    desc: str = "samples",
) -> np.ndarray:
    """Images ``(len(names), S, S)``: image ``k`` is ``folder/<names[k]>.png``, sampled unless already there.

    Image ``k`` has the prompt and the maps of ``controls`` that ``inputs([k])`` gives (``mode=TEXT_ONLY``: no
    controls), weighted by ``control_scales``, and the generator of seed index ``seeds[k]``
    (:func:`case_generators`), so it does not depend on the batch it falls in. A kept image is one made with the
    same :func:`folder_settings` (``settings.json``) and the same :func:`input_digest` of its prompt, maps and seed
    (``inputs.json``, written after every batch, so an interrupted run resumes): other settings discard the
    folder's images, other inputs re-make that image. ``inputs`` is called ``batch_size`` rows at a time (twice for
    an image still to make: once for its digest, once to sample it), so memory holds one batch's maps.
    """
    folder, names, seeds = Path(folder), list(names), [int(s) for s in seeds]
    if len(seeds) != len(names) or len(set(names)) != len(names):
        raise ValueError(f"sample_cached needs one seed per image and distinct names, got {len(names)} names "
                         f"({len(set(names))} distinct) and {len(seeds)} seeds")  # fmt: skip
    controls = [] if mode == TEXT_ONLY else list(controls)
    settings = folder_settings(pipe, mode, controls, steps=steps, guidance_scale=guidance_scale,
                               guidance_interval=guidance_interval, seed=seed, control_scales=control_scales)  # fmt: skip
    made, unwritten = _start_folder(folder, settings)
    digests = []
    for start in range(0, len(names), batch_size):
        rows = list(range(start, min(start + batch_size, len(names))))
        prompts, maps = _checked_inputs(inputs, rows, controls)
        digests += [input_digest(prompts[i], {c: maps[c][i] for c in controls}, seeds[k]) for i, k in enumerate(rows)]
    todo = [k for k, name in enumerate(names) if made.get(name) != digests[k] or not (folder / f"{name}.png").is_file()]
    bar = tqdm(total=len(names), initial=len(names) - len(todo), desc=desc, unit="img", disable=not progress)
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        prompts, maps = _checked_inputs(inputs, rows, controls)
        images = pipe(prompts, maps, mode=None if mode == TEXT_ONLY else mode, control_scales=control_scales,
                      num_inference_steps=steps, guidance_scale=guidance_scale, guidance_interval=guidance_interval,
                      generator=case_generators(seed, [seeds[k] for k in rows]), progress=False).images  # fmt: skip
        if unwritten:  # only once the first images exist: a call that fails before them writes nothing
            write_json_atomic(folder / SETTINGS_FILE, settings)
            unwritten = False
        for k, image in zip(rows, images, strict=True):
            save_png16(folder / f"{names[k]}.png", image)
            made[names[k]] = digests[k]
        write_json_atomic(folder / INPUTS_FILE, made)
        bar.update(len(rows))
    bar.close()
    return np.stack([load_image(folder / f"{name}.png", require_contrast=False)[0] for name in names]).astype(np.float32)


def _start_folder(folder: Path, settings: dict) -> tuple[dict[str, str], bool]:
    """The digests of the images ``folder`` holds for ``settings``, and whether ``settings.json`` is still to be
    written; a folder made otherwise (or of unknown making) loses its images and digests first."""
    path, made_path = folder / SETTINGS_FILE, folder / INPUTS_FILE
    try:
        same = json.loads(path.read_text()) == settings
    except (OSError, ValueError):
        same = False
    if same and made_path.is_file():
        try:
            made = json.loads(made_path.read_text())
            if isinstance(made, dict):
                return {str(k): str(v) for k, v in made.items()}, False
        except ValueError:
            pass
    if folder.is_dir():
        for stale in folder.glob("*.png"):
            stale.unlink()
        made_path.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
    return {}, True


def _checked_inputs(inputs: SampleInputs, rows: Sequence[int], controls: Sequence[str]):
    prompts, maps = inputs(rows)
    prompts = list(prompts)
    missing = [c for c in controls if c not in maps]
    if len(prompts) != len(rows) or missing or any(len(maps[c]) != len(rows) for c in controls):
        raise ValueError(f"inputs({list(rows)[:4]}...) must give {len(rows)} prompts and maps of {list(controls)}; "
                         f"got {len(prompts)} prompts, maps of {sorted(maps)} (missing {missing})")  # fmt: skip
    return prompts, {c: np.asarray(maps[c], np.float32) for c in controls}
