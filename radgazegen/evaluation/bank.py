"""The sample bank: images generated once per model configuration and shared by every evaluation chapter.

Each configuration (text only, Rad-CN only, HVA-CN only, both as in the paper, fused, both + our
texture maps) is sampled for the same ``conditions`` training readings (report as prompt, the
reading's own controls), with one seed per reading and copy; readings may get more than one copy
(e.g. a second sample for MS-SSIM diversity, or many for the long-tail protocol's rare findings).
Images are written one 16-bit PNG per sample (``<id>.png``, then ``<id>_1.png``, ...) into
``<run_dir>/samples/bank/<configuration>/`` as they are made, so an interrupted run resumes where it
stopped. ``settings.json`` records how they are made (:func:`sampling_key`: a digest of the weights and
control registry, scheduler, steps, guidance, seed, controls); if any of it changes, the folder's images
are discarded and made again. ``index.json`` (written last) lists them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from radgazegen.controls.registry import GAZE_CONTROLS, TEXTURE_PREFIX, is_gaze
from radgazegen.data.images import load_image, save_png16
from radgazegen.data.reflacx import ReflacxCase, ReflacxDataset
from radgazegen.io import write_json_atomic
from radgazegen.models.pipeline import FUSED, RadGazeGenPipeline
from radgazegen.models.sampling import TEXT_ONLY, sample_batch
from radgazegen.presets import Preset

_COPY_SEED_OFFSET = 500_000  # seed index of copy c of reading k: k + c * offset


@dataclass(frozen=True)
class Configuration:
    """One way of sampling the generator: a mode and the controls it follows."""

    name: str
    label: str
    mode: str  # "text", "multi" or "fused"
    controls: tuple[str, ...]


def configurations(pipe: RadGazeGenPipeline, hva: str = "gaze") -> list[Configuration]:
    """The paper's baselines and ablations that this pipeline's networks can make, in table order.

    Rad-CN is every radiomics-group control except our texture maps; HVA-CN is the ControlNet of gaze
    control ``hva`` (``gaze``, the whole reading's heatmap, or ``gaze_findings``); the configurations
    keep their names (``gaze``, ``both``, ...) whichever it is, and their labels say which.
    """
    if not is_gaze(hva):
        raise ValueError(f"hva must be a gaze control ({', '.join(GAZE_CONTROLS)}), got {hva!r}")
    multi = list(pipe.controls_of("multi")) if "multi" in pipe.modes else []
    rad = tuple(c for c in multi if not is_gaze(c) and not c.startswith(TEXTURE_PREFIX))
    texture = tuple(c for c in multi if c.startswith(TEXTURE_PREFIX))
    which = "" if hva == "gaze" else ", gaze while findings were named"
    found = [Configuration("text", "SD text only", TEXT_ONLY, ())]
    if rad:
        found.append(Configuration("rad", "Rad-CN only", "multi", rad))
    if hva in multi:
        found.append(Configuration("gaze", f"HVA-CN only (single ControlNet{which})", "multi", (hva,)))
    if rad and hva in multi:
        found.append(Configuration("both", f"RadGazeGen: Rad-CN + HVA-CN (paper{which})", "multi", (*rad, hva)))
        if texture:
            found.append(Configuration("both+texture", f"Rad-CN + HVA-CN + texture maps (ours{which})", "multi",
                                       (*rad, hva, *texture)))  # fmt: skip
    if FUSED in pipe.modes:
        found.append(Configuration("fused", "fused ControlNet, all controls (ours)", FUSED,
                                   tuple(pipe.controls_of(FUSED))))  # fmt: skip
    return found


def condition_cases(dataset: ReflacxDataset, n: int, seed: int, split: str = "train") -> list[ReflacxCase]:
    """``n`` readings of ``split`` in a seeded random order (all of them when there are fewer)."""
    cases = [case for case in dataset if case.split == split]
    if not cases:
        raise ValueError(f"{dataset.root}: no readings in split {split!r}")
    order = np.random.default_rng(seed).permutation(len(cases))
    return [cases[i] for i in order[:n]]


@dataclass
class Samples:
    """A configuration's samples: ``images[i]`` is copy ``copy[i]`` of reading ``ids[i]``."""

    configuration: Configuration
    ids: list[str]
    copy: np.ndarray
    images: np.ndarray

    def first(self) -> tuple[list[str], np.ndarray]:
        """The first copy of every reading: ``(ids, images)``."""
        rows = np.flatnonzero(self.copy == 0)
        return [self.ids[i] for i in rows], self.images[rows]

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies 0 and 1 of every reading that has two: two aligned image arrays."""
        second = {self.ids[i]: i for i in np.flatnonzero(self.copy == 1)}
        firsts = [i for i in np.flatnonzero(self.copy == 0) if self.ids[i] in second]
        return self.images[firsts], self.images[[second[self.ids[i]] for i in firsts]]


def _file(reading: str, copy: int) -> str:
    return f"{reading}.png" if copy == 0 else f"{reading}_{copy}.png"


def bank_folder(run_dir: str | Path, configuration: str) -> Path:
    return Path(run_dir) / "samples" / "bank" / configuration


def generate(
    pipe: RadGazeGenPipeline,
    configuration: Configuration,
    cases: Sequence[ReflacxCase],
    run_dir: str | Path,
    preset: Preset,
    *,
    copies: Sequence[int] | None = None,
    steps: int | None = None,
    batch_size: int = 8,
    folder: str | Path | None = None,
    progress: bool = True,
) -> Samples:
    """Sample ``copies[k]`` images (default 1) of ``configuration`` for each of ``cases``; files already made are kept.

    Copy ``c`` of reading ``k`` is seeded by index ``k + c * 500000``, whatever the batch it falls in.
    """
    folder = Path(folder) if folder else bank_folder(run_dir, configuration.name)
    steps = steps or preset.evaluation.sampling_steps
    copies = [1] * len(cases) if copies is None else list(copies)
    if len(copies) != len(cases) or min(copies, default=1) < 1:
        raise ValueError(f"copies must give a positive count for each of the {len(cases)} readings")
    start_folder(folder, sampling_key(pipe, configuration, steps, preset))
    jobs = [(k, case, c) for k, case in enumerate(cases) for c in range(copies[k])]
    todo = [job for job in jobs if not (folder / _file(job[1].id, job[2])).is_file()]
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=f"samples ({configuration.name})", unit="img",
               disable=not progress)  # fmt: skip
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        images = sample_batch(pipe, [case for _, case, _ in batch], run_dir, preset, mode=configuration.mode,
                              controls=configuration.controls, seeds=[k + c * _COPY_SEED_OFFSET for k, _, c in batch],
                              steps=steps)  # fmt: skip
        for (_, case, c), image in zip(batch, images, strict=True):
            save_png16(folder / _file(case.id, c), image)
        bar.update(len(batch))
    bar.close()
    write_json_atomic(folder / "index.json", {"ids": [c.id for c in cases], "copies": copies})
    return load(configuration, [c.id for c in cases], copies, folder)


def sampling_key(pipe: RadGazeGenPipeline, configuration: Configuration, steps: int, preset: Preset) -> dict:
    """What a configuration's images depend on: the weights and registry (:meth:`RadGazeGenPipeline.digest`),
    the scheduler and its configuration, steps, guidance scale and seed. Not the pipeline's folder: retraining
    into the same folder must not reuse old images."""
    scheduler = {"class": type(pipe.scheduler).__name__, **dict(pipe.scheduler.config)}
    return {"configuration": asdict(configuration), "steps": steps, "seed": preset.seed,
            **preset.sampling.guidance(), "scheduler": scheduler,
            "weights": pipe.digest(configuration.mode, configuration.controls)}  # fmt: skip


def start_folder(folder: Path, settings: dict) -> None:
    """Record how ``folder``'s samples are made; images made otherwise, or of unknown making, are discarded."""
    path = folder / "settings.json"
    settings = json.loads(json.dumps(settings, default=str))
    if not path.is_file() or json.loads(path.read_text()) != settings:
        for stale in folder.glob("*.png"):
            stale.unlink()
        (folder / "index.json").unlink(missing_ok=True)
    write_json_atomic(path, settings)


def load(configuration: Configuration, ids: Sequence[str], copies: Sequence[int], folder: str | Path) -> Samples:
    """Read samples back (an image missing from ``folder`` is an error naming it)."""
    folder = Path(folder)
    rows = [(i, c) for i, n in zip(ids, copies, strict=True) for c in range(n)]
    images = np.stack([load_image(folder / _file(i, c), require_contrast=False)[0] for i, c in rows]).astype(np.float32)
    return Samples(configuration, [i for i, _ in rows], np.array([c for _, c in rows]), images)
