"""Run directories (``runs/<preset>/...``) and their JSON manifest of what produced each artefact."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from radgazegen.data.phantom import ensure_phantom
from radgazegen.data.phantom.truth import has_ground_truth
from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.io import read_json, write_json_atomic
from radgazegen.presets import Preset, get_preset

_TRACKED_PACKAGES = ("radgazegen", "torch", "numpy", "pandas", "scipy", "diffusers", "papermill", "jupyter-book")


def run_dir_for(preset: Preset, run_dir: str | Path | None = None) -> Path:
    """``run_dir`` if given, else ``runs/<preset>`` in the current directory."""
    return Path(run_dir) if run_dir else Path("runs") / preset.name


def versions() -> dict[str, str]:
    """Python, platform and the versions of the packages that shape results."""
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _TRACKED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def hardware() -> dict[str, object]:
    """The machine a result was produced on: CPU architecture and count, and the GPU if torch sees one."""
    import torch

    found: dict[str, object] = {"machine": platform.machine(), "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name(0)
    return found


def resolve_device(device: str) -> str:
    """A preset's device as torch sees it: ``"auto"`` is CUDA when a GPU is present, else CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but torch sees no CUDA GPU")
    return device


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "manifest.json"
    return read_json(path) if path.is_file() else {}


def record(run_dir: str | Path, section: str, key: str, entry: dict[str, Any]) -> None:
    """Set ``manifest[section][key] = entry`` in ``<run_dir>/manifest.json`` (atomic rewrite)."""
    manifest = read_manifest(run_dir)
    manifest.setdefault(section, {})[key] = entry
    write_json_atomic(Path(run_dir) / "manifest.json", manifest)


def prepare_dataset(
    preset: Preset,
    data_dir: str | Path | None = None,
    run_dir: str | Path | None = None,
    images_dir: str | Path | None = None,
) -> ReflacxDataset:
    """The data set a notebook works on: real REFLACX at ``data_dir``, else the preset's phantom.

    The phantom lives in ``<run_dir>/dataset`` and is generated only when missing or made with
    other settings (:func:`~radgazegen.data.phantom.ensure_phantom`).
    """
    if data_dir:
        return ReflacxDataset(data_dir, images_dir or None)
    folder = run_dir_for(preset, run_dir) / "dataset"
    return ReflacxDataset(ensure_phantom(folder, preset.phantom_cases, preset.seed, preset.phantom_size))


@dataclass(frozen=True)
class Run:
    """What a chapter works on: the preset, its run folder, the data set and the torch device."""

    preset: Preset
    run_dir: Path
    dataset: ReflacxDataset
    device: str

    @property
    def is_phantom(self) -> bool:
        """Whether the data set is the phantom (it has ground-truth finding and lung masks)."""
        return has_ground_truth(self.dataset.root)

    def __str__(self) -> str:
        source = "the phantom" if self.is_phantom else str(self.dataset.root)
        size = self.preset.control_size
        return f"preset {self.preset.name}: {len(self.dataset)} readings from {source}; control maps {size}x{size}; device {self.device}"


def open_run(preset: str, data_dir: str = "", images_dir: str = "", run_dir: str = "") -> Run:
    """The run a chapter's ``parameters`` cell describes (empty strings mean "the default"): the preset by name
    (``"auto"`` too), ``runs/<preset>`` unless ``run_dir``, real REFLACX at ``data_dir`` else the preset's phantom
    (:func:`prepare_dataset`), and the preset's device."""
    settings = get_preset(preset)
    folder = run_dir_for(settings, run_dir or None)
    dataset = prepare_dataset(settings, data_dir or None, folder, images_dir or None)
    return Run(settings, folder, dataset, resolve_device(settings.device))
