"""Extract named controls for every case of a data set into a run directory: cached, resumable, normalised.

Layout under ``<run_dir>/controls``::

    <control>-<settings digest>/<case id>.npy   raw float32 map, one file per case (written atomically)
    registry.json                                settings + robust scaling fitted on the training split

A case whose file exists is not recomputed, so an interrupted extraction resumes where it stopped;
changing a control's settings changes its digest and therefore its folder.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from radgazegen.controls.gaze_stats import keywords_for
from radgazegen.controls.lungs import lung_mask
from radgazegen.controls.registry import (
    ControlInputs,
    ControlRegistry,
    ControlSettings,
    check_names,
    is_gaze,
    is_scaled,
    raw_controls,
)
from radgazegen.data.reflacx import DroppedFixationsWarning, ReflacxCase, ReflacxDataset
from radgazegen.io import atomic_path, read_json, remove_leftovers, write_json_atomic

FIT_SPLIT = "train"


def extract_controls(
    dataset: ReflacxDataset,
    names: Sequence[str],
    run_dir: str | Path,
    settings: ControlSettings,
    *,
    lung_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> ControlRegistry:
    """Compute the missing raw maps, fit the scaling on the training split, save and return the registry.

    The saved registry keeps the scalings of controls extracted earlier with the same settings, so
    extracting a subset (e.g. to train one more ControlNet) never drops what other networks need. Each map is
    written atomically, so an interrupted extraction resumes where it stopped.
    """
    names = check_names(names)
    folder = Path(run_dir) / "controls"
    if folder.is_dir():
        remove_leftovers(folder)  # temporary files of an interrupted extraction
    started = time.perf_counter()
    computed = dropped = 0
    cases = list(dataset)
    for case in tqdm(cases, desc="controls", unit="case", disable=not progress):
        missing = [name for name in names if not _path(folder, settings, name, case.id).is_file()]
        if not missing:
            continue
        inputs = case_inputs(case, missing, data_root=dataset.root, lung_dir=lung_dir)
        if inputs.fixations is not None:
            dropped += inputs.fixations.attrs["dropped"].total
        for name, values in raw_controls(missing, inputs, settings, device=device).items():
            path = _path(folder, settings, name, case.id)
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, tmp.open("wb") as handle:
                np.save(handle, values)
        computed += 1
    registry, earlier = _earlier_registry(folder, settings)
    training = [case.id for case in cases if case.split == FIT_SPLIT] or [case.id for case in cases]
    for name in names:
        if is_scaled(name):
            registry.fit(name, (np.load(_path(folder, settings, name, case_id)) for case_id in training))
    if dropped:
        warnings.warn(f"gaze: dropped {dropped} fixation(s) outside the image or the shown rectangle in {computed} "
                      "case(s)", DroppedFixationsWarning, stacklevel=2)  # fmt: skip
    data = registry.to_dict() | {"fitted_on": {"split": FIT_SPLIT, "cases": len(training)}, "controls": [*earlier, *(n for n in names if n not in earlier)],
                                 "seconds": round(time.perf_counter() - started, 2), "cases_computed": computed,
                                 "dropped_fixations": dropped}  # fmt: skip
    write_json_atomic(folder / "registry.json", data)
    return registry


def case_inputs(
    case: ReflacxCase, names: Sequence[str], *, data_root: str | Path | None = None, lung_dir: str | Path | None = None
) -> ControlInputs:
    """What one case's controls ``names`` are computed from: its image, and its fixations, lungs, words and findings
    where a control needs them (dropped fixations are counted in ``fixations.attrs``, not warned about)."""
    image = case.load_image()
    fixations = words = findings = None
    if any(is_gaze(name) for name in names):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DroppedFixationsWarning)
            fixations = case.fixations()
    if "gaze_findings" in names:
        words, findings = case.words(), finding_keywords(case)
    lungs = lung_mask(case.dicom_id, image, data_root=data_root, mask_dir=lung_dir)[0] if "lungs" in names else None
    return ControlInputs(image=image, fixations=fixations, lungs=lungs, words=words, findings=findings)


def case_controls(
    case: ReflacxCase, names: Sequence[str], registry: ControlRegistry, *, data_root: str | Path | None = None
) -> dict[str, np.ndarray]:
    """One case's controls ``names`` computed in memory and normalised by ``registry`` (nothing cached)."""
    return registry.controls(list(names), case_inputs(case, names, data_root=data_root))


def finding_keywords(case: ReflacxCase) -> dict[str, tuple[str, ...]]:
    """The reading's positive labels, each with the report words that name it (the ``gaze_findings`` input)."""
    return {label: keywords_for(label) for label in case.positive_labels()}


def _earlier_registry(folder: Path, settings: ControlSettings) -> tuple[ControlRegistry, list[str]]:
    """The registry saved before with the same settings (its scalings kept, e.g. for controls trained on earlier)
    and its control names; a fresh registry when there is none or its settings differ."""
    path = folder / "registry.json"
    if path.is_file():
        saved = read_json(path)
        earlier = ControlRegistry.from_dict(saved)
        if earlier.settings == settings:
            return earlier, list(saved.get("controls", []))
    return ControlRegistry(settings), []


def load_registry(run_dir: str | Path) -> ControlRegistry:
    """The registry (settings and fitted scaling) saved by :func:`extract_controls`."""
    path = Path(run_dir) / "controls" / "registry.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no extracted controls; run `radgazegen controls --preset ...` first")
    return ControlRegistry.from_dict(read_json(path))


def load_controls(run_dir: str | Path, case_id: str, names: Sequence[str], registry: ControlRegistry | None = None
                  ) -> dict[str, np.ndarray]:  # fmt: skip
    """Normalised float32 maps in [0, 1] of one case's extracted controls."""
    registry = registry or load_registry(run_dir)
    folder = Path(run_dir) / "controls"
    found = {}
    for name in check_names(names):
        path = _path(folder, registry.settings, name, case_id)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: control {name!r} of case {case_id} was not extracted")
        found[name] = registry.normalise(name, np.load(path))
    return found


def stacked_controls(run_dir: str | Path, case_ids: Sequence[str], names: Sequence[str],
                     registry: ControlRegistry | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """``{name: (len(case_ids), S, S)}``: the cases' normalised maps of each control (:func:`load_controls`), stacked."""
    registry = registry or load_registry(run_dir)
    per_case = [load_controls(run_dir, case_id, names, registry) for case_id in case_ids]
    return {name: np.stack([maps[name] for maps in per_case]) for name in names}


def _path(folder: Path, settings: ControlSettings, name: str, case_id: str) -> Path:
    return folder / settings.key(name) / f"{case_id}.npy"
