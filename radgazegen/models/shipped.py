"""The shipped phantom checkpoint: a trained run exported as a pipeline folder with its manifest, and its check.

``radgazegen/weights/phantom-64/`` is a :meth:`~radgazegen.models.pipeline.RadGazeGenPipeline.save_pretrained` folder
(safetensors, stored in float16 when that changes samples by less than :data:`FP16_TOLERANCE`; loaded
back in float32 on a CPU) with ``manifest.json``: the commands that trained it, the preset, steps, seed,
hardware and wall time of every network (summed over resumed runs, from its step log), their final losses, the training curves
(:mod:`radgazegen.evaluation.curves`, also as ``curves.csv``) and a SHA-256 per file, which
:func:`verify` checks (``radgazegen book`` does before it executes a chapter).
"""

from __future__ import annotations

import copy
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from radgazegen.errors import ChecksumError, MissingWeightsError
from radgazegen.io import atomic_dir, file_digests, read_json, verify_digests, write_json_atomic
from radgazegen.models.pipeline import RadGazeGenPipeline
from radgazegen.models.assembly import pipeline_from_run
from radgazegen.models.train import read_log, training_seconds
from radgazegen.presets import Preset
from radgazegen.runs import hardware, read_manifest, versions

SHIPPED = Path("radgazegen") / "weights" / "phantom-64"
"""The shipped checkpoint's folder (package data), relative to the folder that holds the package."""
REPOSITORY = Path(__file__).resolve().parents[2]
"""The folder that holds the ``radgazegen`` package: the repository root of an editable install, else site-packages."""
RUN_NETWORKS = "run"
"""``pipeline_dir`` value that asks for the run's own trained networks even where the preset names a pipeline."""
MANIFEST = "manifest.json"
CURVES = "curves.csv"
FP16_TOLERANCE = 2 / 255
"""Largest mean absolute pixel difference (images in [0, 1]) float16 weights may make to be stored as such."""


def verify(folder: str | Path) -> dict:
    """The manifest of a shipped folder whose every file matches its SHA-256; else :class:`ChecksumError` naming the file."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ChecksumError(f"{path}: missing (not a shipped checkpoint folder)")
    manifest = read_json(path)
    verify_digests(folder, manifest.get("sha256", {}), path)
    return manifest


@torch.no_grad()
def fp16_difference(pipe: RadGazeGenPipeline, prompts: Sequence[str], steps: int, seed: int = 0) -> float:
    """Mean absolute pixel difference between text-only samples of ``pipe`` and of its weights rounded to float16."""
    def sample(p):
        generators = [torch.Generator().manual_seed(seed + k) for k in range(len(prompts))]
        return p(list(prompts), num_inference_steps=steps, generator=generators, progress=False).images

    before = sample(pipe)
    rounded = copy.deepcopy(pipe).to(dtype=torch.float16).to(dtype=torch.float32)
    return float(np.abs(sample(rounded) - before).mean())


def _log_summary(folder: Path, last: int = 50) -> dict[str, float]:
    """Wall time over resumed runs, the last step's loss and the mean loss of the last ``last`` steps."""
    log = read_log(folder)
    losses = [entry["loss"] for entry in log[-last:]]
    return {"seconds": round(training_seconds(log), 1), "last_loss": losses[-1] if losses else None,
            f"mean_loss_last_{last}": float(np.mean(losses)) if losses else None}  # fmt: skip


def export(
    run_dir: str | Path,
    preset: Preset,
    out: str | Path,
    *,
    commands: Sequence[str],
    curves: pd.DataFrame | None = None,
    prompts: Sequence[str] = (),
    dataset: dict | None = None,
) -> Path:
    """Write the run's pipeline to ``out`` with its manifest (module docstring); returns ``out``.

    ``commands``: the command lines that made the run; ``dataset``: what it was trained on (e.g. the
    phantom's manifest); ``prompts`` sample the float16 check (none: the weights stay float32).
    """
    run = read_manifest(run_dir)
    trained = run.get("training", {})
    if "base" not in trained:
        raise MissingWeightsError(f"{Path(run_dir) / 'manifest.json'}: no trained base model to ship")
    pipe = pipeline_from_run(run_dir, preset)
    difference = fp16_difference(pipe, prompts, preset.sampling.steps, preset.seed) if prompts else None
    half = difference is not None and difference <= FP16_TOLERANCE
    pipe.to(dtype=torch.float16 if half else torch.float32)
    with atomic_dir(out) as staging:
        pipe.write_components(staging)
        if curves is not None:
            curves.to_csv(staging / CURVES, index=False)
        networks = {key: {k: entry.get(k) for k in ("steps", "batch_size", "processes", "device", "parameters",
                                                    "controls", "mode")} | _log_summary(Path(run_dir) / "checkpoints" / key)
                    for key, entry in trained.items()}  # fmt: skip
        write_json_atomic(staging / MANIFEST, {
            "commands": list(commands), "preset": preset.name, "seed": preset.seed,
            "dataset": dataset, "networks": networks,
            "wall_seconds": round(sum(n["seconds"] or 0 for n in networks.values()), 1),
            "hardware": next(iter(trained.values())).get("hardware", hardware()), "versions": versions(),
            "dtype": "float16" if half else "float32", "fp16_mean_abs_difference": difference,
            "curves": None if curves is None else curves.to_dict(orient="records"),
            "sha256": file_digests(staging),
        })  # fmt: skip
    return Path(out)


def convert(folder: str | Path, out: str | Path) -> Path:
    """A saved pipeline (today's format or the earlier ``pipeline.json`` one) written again in today's to ``out``.

    Weights keep the dtype a shipped manifest records (else float32); a shipped folder's manifest and curves come
    along, the manifest with the new files' SHA-256. ``out`` may be ``folder`` itself (staged, then renamed).
    """
    folder = Path(folder)
    manifest = verify(folder) if (folder / MANIFEST).is_file() else None
    dtype = torch.float16 if manifest and manifest.get("dtype") == "float16" else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*earlier pipeline.json format")
        pipe = RadGazeGenPipeline.from_pretrained(folder, dtype=dtype)
    with atomic_dir(out) as staging:
        pipe.write_components(staging)
        if (folder / CURVES).is_file():
            shutil.copy2(folder / CURVES, staging / CURVES)
        if manifest is not None:
            write_json_atomic(staging / MANIFEST, manifest | {"sha256": file_digests(staging)})
    return Path(out)


def networks_table(manifest: dict) -> pd.DataFrame:
    """One row per network of a shipped manifest: steps, seconds, mean loss of the last 50 steps, batch, device."""
    return pd.DataFrame(manifest["networks"]).T[["steps", "seconds", "mean_loss_last_50", "batch_size", "device"]]


def describe(manifest: dict) -> str:
    """One sentence on how a shipped checkpoint was trained and stored."""
    machine = manifest["hardware"]
    where = machine.get("gpu") or f"{machine['cpus']} CPU cores ({machine['machine']})"
    return (f"trained with preset {manifest['preset']!r}, seed {manifest['seed']}, on {where}; "
            f"{manifest['wall_seconds'] / 3600:.1f} h of training in all; stored as {manifest['dtype']} "
            f"(mean pixel change from float32: {manifest['fp16_mean_abs_difference']:.4f})")  # fmt: skip


def find_shipped(folder: str | Path = SHIPPED) -> Path | None:
    """``folder`` in the working directory, else in the repository root; ``None`` if in neither."""
    return next((c for c in (Path(folder), REPOSITORY / folder) if c.is_dir()), None)


def pipeline_folder(preset: Preset, pipeline_dir: str | Path | None = None) -> Path | None:
    """The saved pipeline to load: ``pipeline_dir``, else the preset's (``None``: the run's networks).

    A relative preset pipeline is looked up in the working directory, then in the repository root;
    ``pipeline_dir="run"`` (:data:`RUN_NETWORKS`) always means the run's networks.
    """
    if pipeline_dir:
        return None if str(pipeline_dir) == RUN_NETWORKS else Path(pipeline_dir)
    if not preset.pipeline:
        return None
    folder = find_shipped(preset.pipeline)
    if folder is not None:
        return folder
    folder = Path(preset.pipeline)
    raise MissingWeightsError(
        f"{folder}: the {preset.name!r} preset samples this shipped pipeline, which is not here nor in {REPOSITORY} "
        f"(it ships with the package; reinstall radgazegen, pass pipeline_dir, or {RUN_NETWORKS!r} to sample the "
        "networks chapter 03 trains)"
    )


def load_shipped(folder: str | Path = SHIPPED, *, device: str = "cpu", scheduler: str = "unipc") -> RadGazeGenPipeline:
    """The shipped pipeline, verified, in float32 (float16 on CUDA)."""
    verify(folder)
    dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
    pipe = RadGazeGenPipeline.from_pretrained(folder, scheduler=scheduler, dtype=dtype).to(device)
    pipe.source = Path(folder)
    return pipe
