"""Training checkpoints without pickle: tensors in safetensors, the rest in JSON, verified before a resume.

accelerate's ``save_state`` keeps the optimizer, LR schedule and RNG states as ``torch.save`` pickles and
custom objects (the EMA) as pickles loaded with ``weights_only=False``; a checkpoint folder is a user path,
so this module writes its own format instead, which loads no pickle at all. ``checkpoint-<step>/`` holds::

    model.safetensors       the trained network (unwrapped from DDP)
    optimizer.safetensors   every optimizer state tensor; param groups and scalars as JSON metadata
    schedule.json           the LR schedule's state
    ema.safetensors         the EMA's shadow weights and settings (when EMA is on)
    scaler.json             the fp16 loss scaler's state (when mixed precision uses one)
    rng-<process>.safetensors  each process's torch / CUDA generator; Python's and numpy's as JSON metadata
    checkpoint.json         written last: step, processes, and the size and SHA-256 of every file above

It is written into ``.checkpoint-<step>.staging`` by every process (each its own RNG file, the first process
the rest), flushed, and renamed into place by the first process, so a process killed at any moment leaves
the previous checkpoints whole. A resume takes the newest checkpoint whose every file matches
``checkpoint.json`` (:func:`find_checkpoint`) and warns about each one it skips; a missing or damaged RNG file
only warns that the resume is no longer bit-exact.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, load_model, save_file, save_model

from radgazegen.errors import ChecksumError, DataFormatError, loading
from radgazegen.io import read_json, replace_dir, sha256, write_json_atomic

CHECKPOINT_FILE = "checkpoint.json"
FORMAT = 1
NAME = re.compile(r"checkpoint-(\d+)")
RNG_FILE = re.compile(r"rng-\d+\.safetensors")


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped as incomplete or damaged, or a resume is no longer bit-exact."""


@dataclass
class TrainingState:
    """What a checkpoint saves and restores: the network (unwrapped), optimizer, LR schedule, EMA, loss scaler."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    ema: object | None = None  # diffusers.training_utils.EMAModel
    scaler: torch.amp.GradScaler | None = None


def checkpoint_step(path: str | Path) -> int | None:
    """The step of a ``checkpoint-<step>`` folder name, else ``None``."""
    match = NAME.fullmatch(Path(path).name)
    return int(match.group(1)) if match else None


def checkpoints(folder: str | Path) -> list[Path]:
    """The ``checkpoint-<step>`` folders of a training folder, oldest first (other names are not checkpoints)."""
    found = [path for path in Path(folder).glob("checkpoint-*") if path.is_dir() and checkpoint_step(path) is not None]
    return sorted(found, key=checkpoint_step)


def save_checkpoint(accelerator, state: TrainingState, folder: str | Path, step: int, limit: int) -> Path:
    """Write ``checkpoint-<step>`` (module docstring) from every process; keep the newest ``limit`` checkpoints."""
    folder = Path(folder)
    staging, target = folder / f".checkpoint-{step}.staging", folder / f"checkpoint-{step}"
    if accelerator.is_main_process:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    _save_rng(staging / f"rng-{accelerator.process_index}.safetensors")
    if accelerator.is_main_process:
        save_model(state.model, str(staging / "model.safetensors"))
        _save_optimizer(staging / "optimizer.safetensors", state.optimizer.state_dict())
        (staging / "schedule.json").write_text(json.dumps(state.schedule.state_dict()))
        if state.ema is not None:
            _save_ema(staging / "ema.safetensors", state.ema.state_dict())
        if state.scaler is not None:
            (staging / "scaler.json").write_text(json.dumps(state.scaler.state_dict()))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        files = {path.name: {"size": path.stat().st_size, "sha256": sha256(path)} for path in sorted(staging.iterdir())}
        write_json_atomic(staging / CHECKPOINT_FILE, {"format": FORMAT, "step": step,
                                                      "processes": accelerator.num_processes, "files": files})  # fmt: skip
        replace_dir(staging, target)
        for old in checkpoints(folder)[:-limit]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return target


def verify_checkpoint(path: str | Path) -> dict:
    """``checkpoint.json`` of a checkpoint whose every file but the RNG states has its recorded size and SHA-256;
    else a :class:`~radgazegen.errors.DataFormatError` or :class:`~radgazegen.errors.ChecksumError` naming the file."""
    path = Path(path)
    manifest = read_json(path / CHECKPOINT_FILE, required=("format", "step", "files"))
    if manifest["step"] != checkpoint_step(path):
        raise DataFormatError(path / CHECKPOINT_FILE, f"records step {manifest['step']}, not the folder's")
    for name in ("model.safetensors", "optimizer.safetensors", "schedule.json"):
        if name not in manifest["files"]:
            raise DataFormatError(path / CHECKPOINT_FILE, f"does not list {name}")
    for name, recorded in manifest["files"].items():
        if not RNG_FILE.fullmatch(name):
            _check_file(path / name, recorded, path / CHECKPOINT_FILE)
    return manifest


def find_checkpoint(folder: str | Path) -> Path | None:
    """The newest checkpoint of a training folder that verifies (:func:`verify_checkpoint`), if any; each newer
    one that does not is skipped with a :class:`CheckpointWarning` saying why."""
    for path in reversed(checkpoints(folder)):
        try:
            verify_checkpoint(path)
            return path
        except (DataFormatError, ChecksumError) as err:
            warnings.warn(f"skipping checkpoint {path}: {err}", CheckpointWarning, stacklevel=2)
    return None


def load_checkpoint(path: str | Path, state: TrainingState, *, process_index: int, seed: int) -> int:
    """Restore ``state`` and this process's RNG from a checkpoint :func:`find_checkpoint` returned (so verified:
    its files are not hashed again); returns its step.

    A missing or damaged RNG file warns (:class:`CheckpointWarning`) and seeds the generators from ``seed``,
    the step and the process instead: training goes on, no longer bit-exact with an uninterrupted run.
    """
    path = Path(path)
    manifest = read_json(path / CHECKPOINT_FILE, required=("step", "files"))
    step = int(manifest["step"])
    for name, part in (("ema.safetensors", state.ema), ("scaler.json", state.scaler)):
        if part is not None and name not in manifest["files"]:
            raise DataFormatError(path / CHECKPOINT_FILE, f"lists no {name}, which this run needs to resume")
    with loading(path):  # e.g. a checkpoint of another network: the error names the folder
        load_model(state.model, str(path / "model.safetensors"))
        state.optimizer.load_state_dict(_load_optimizer(path / "optimizer.safetensors"))
        state.schedule.load_state_dict(read_json(path / "schedule.json"))
        if state.ema is not None:
            state.ema.load_state_dict(_load_ema(path / "ema.safetensors"))
        if state.scaler is not None:
            state.scaler.load_state_dict(read_json(path / "scaler.json"))
    rng = path / f"rng-{process_index}.safetensors"
    try:
        _check_file(rng, manifest["files"].get(rng.name), path / CHECKPOINT_FILE)
        _load_rng(rng)
    except (DataFormatError, ChecksumError) as err:
        warnings.warn(f"{err}; random generators seeded from seed {seed}, step {step} and process {process_index} "
                      "instead: the resumed run is no longer bit-exact", CheckpointWarning, stacklevel=2)  # fmt: skip
        from accelerate.utils import set_seed

        set_seed(seed + 1_000_003 * step + process_index)
    return step


def _check_file(path: Path, recorded: dict | None, manifest: Path) -> None:
    if recorded is None:
        raise ChecksumError(f"{path}: not listed in {manifest}")
    if not path.is_file():
        raise ChecksumError(f"{path}: missing (listed in {manifest})")
    if path.stat().st_size != recorded["size"]:
        raise ChecksumError(f"{path}: {path.stat().st_size} bytes, {manifest} records {recorded['size']} (truncated?)")
    if sha256(path) != recorded["sha256"]:
        raise ChecksumError(f"{path}: SHA-256 differs from {manifest} (a changed or corrupt file)")


def _metadata(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as handle:
        return json.loads((handle.metadata() or {}).get("json", "{}"))


def _save_optimizer(path: Path, state: dict) -> None:
    """Optimizer state tensors as ``state/<param>/<name>``; param groups and non-tensor state as JSON metadata."""
    tensors, scalars = {}, {}
    for param, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"state/{param}/{name}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(param), {})[name] = value
    save_file(tensors, str(path), metadata={"json": json.dumps({"param_groups": state["param_groups"],
                                                                 "scalars": scalars})})  # fmt: skip


def _load_optimizer(path: Path) -> dict:
    about = _metadata(path)
    state: dict[int, dict] = {int(param): dict(values) for param, values in about["scalars"].items()}
    for key, tensor in load_file(str(path)).items():
        _, param, name = key.split("/", 2)
        state.setdefault(int(param), {})[name] = tensor
    return {"state": state, "param_groups": about["param_groups"]}


def _save_ema(path: Path, state: dict) -> None:
    shadow = {f"shadow/{i}": tensor.detach().contiguous().cpu() for i, tensor in enumerate(state["shadow_params"])}
    settings = {key: value for key, value in state.items() if key != "shadow_params"}
    save_file(shadow, str(path), metadata={"json": json.dumps(settings)})


def _load_ema(path: Path) -> dict:
    tensors = load_file(str(path))
    return {**_metadata(path), "shadow_params": [tensors[f"shadow/{i}"] for i in range(len(tensors))]}


def _save_rng(path: Path) -> None:
    """Torch's CPU (and every CUDA device's) generator state as tensors; Python's and numpy's as JSON."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors |= {f"cuda/{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())}
    kind, keys, position, has_gauss, cached = np.random.get_state()
    about = {"python": random.getstate(), "numpy": [kind, keys.tolist(), position, has_gauss, cached]}
    save_file(tensors, str(path), metadata={"json": json.dumps(about)})


def _load_rng(path: Path) -> None:
    about, tensors = _metadata(path), load_file(str(path))
    version, internal, gauss = about["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = about["numpy"]
    np.random.set_state((kind, np.asarray(keys, np.uint32), position, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda/{i}"] for i in range(sum(key.startswith("cuda/") for key in tensors))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
