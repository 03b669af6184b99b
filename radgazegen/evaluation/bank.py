"""The sample bank: images generated once per model configuration and shared by every evaluation chapter.

Each configuration (text only, Rad-CN only, HVA-CN only, both as in the paper, fused, both + our
texture maps, and the two whose anatomy is not the prompt's patient: a donor's, or the patient's own
deformed) is sampled for the same ``conditions`` training readings (report as prompt, the reading's own
controls unless the configuration says otherwise), with one seed per reading and copy; readings may get more
than one copy (e.g. a second sample for MS-SSIM diversity, or many for the long-tail protocol's rare findings).
Images are written one 16-bit PNG per sample (``<id>.png``, then ``<id>_1.png``, ...) into
``<run_dir>/samples/bank/<configuration>/`` by :func:`~radgazegen.models.sampling.sample_cached`, which keeps
an image only while the weights, sampler settings, prompt, control maps and seed it was made from are unchanged
and resumes an interrupted run. ``index.json`` (written last) lists them.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radgazegen.controls.extract import stacked_controls
from radgazegen.controls.perturb import perturb_maps
from radgazegen.controls.registry import GAZE_CONTROLS, ControlRegistry, is_gaze, is_texture
from radgazegen.data.reflacx import ReflacxCase, ReflacxDataset
from radgazegen.io import write_json_atomic
from radgazegen.models.pipeline import FUSED, RadGazeGenPipeline
from radgazegen.models.sampling import TEXT_ONLY, SampleInputs, sample_cached
from radgazegen.presets import Preset

_COPY_SEED_OFFSET = 500_000  # seed index of copy c of reading k: k + c * offset
OWN, DONOR, PERTURBED = "own", "donor", "perturbed"
ANATOMY = (OWN, DONOR, PERTURBED)
"""Where a configuration's anatomical (non-gaze) maps come from: the prompt's reading, a donor reading, or the
prompt's reading deformed and degraded (:func:`~radgazegen.controls.perturb.perturb_maps`)."""


@dataclass(frozen=True)
class Configuration:
    """One way of sampling the generator: a mode, the controls it follows and where its anatomical maps come from."""

    name: str
    label: str
    mode: str  # "text", "multi" or "fused"
    controls: tuple[str, ...]
    anatomy: str = OWN

    def __post_init__(self) -> None:
        if self.anatomy not in ANATOMY:
            raise ValueError(f"anatomy must be one of {ANATOMY}, got {self.anatomy!r}")

    @property
    def anatomical(self) -> tuple[str, ...]:
        """The controls drawn from an image (every control but gaze)."""
        return tuple(c for c in self.controls if not is_gaze(c))

    @property
    def uses_own_image(self) -> bool:
        """Whether maps taken from the prompt's own image steer the samples as they are."""
        return self.anatomy == OWN and bool(self.anatomical)


def configurations(pipe: RadGazeGenPipeline, hva: str = "gaze") -> list[Configuration]:
    """The paper's baselines and ablations that this pipeline's networks can make, in table order, then ours.

    Rad-CN is every radiomics-group control except our texture maps; HVA-CN is the ControlNet of gaze
    control ``hva`` (``gaze``, the whole reading's heatmap, or ``gaze_findings``); the configurations
    keep their names (``gaze``, ``both``, ...) whichever it is, and their labels say which. ``donor`` and
    ``perturbed`` are Rad-CN + HVA-CN with the anatomy of another reading, or the reading's own deformed.
    """
    if not is_gaze(hva):
        raise ValueError(f"hva must be a gaze control ({', '.join(GAZE_CONTROLS)}), got {hva!r}")
    multi = list(pipe.controls_of("multi")) if "multi" in pipe.modes else []
    rad = tuple(c for c in multi if not is_gaze(c) and not is_texture(c))
    texture = tuple(c for c in multi if is_texture(c))
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
    if rad and hva in multi:
        found.append(Configuration("donor", f"Rad-CN of a donor reading + HVA-CN (ours{which})", "multi", (*rad, hva),
                                   anatomy=DONOR))  # fmt: skip
        found.append(Configuration("perturbed", f"Rad-CN deformed + HVA-CN (ours{which})", "multi", (*rad, hva),
                                   anatomy=PERTURBED))  # fmt: skip
    return found


def condition_cases(dataset: ReflacxDataset, n: int, seed: int, split: str = "train") -> list[ReflacxCase]:
    """``n`` readings of ``split`` in a seeded random order (all of them when there are fewer)."""
    cases = [case for case in dataset if case.split == split]
    if not cases:
        raise ValueError(f"{dataset.root}: no readings in split {split!r}")
    order = np.random.default_rng(seed).permutation(len(cases))
    return [cases[i] for i in order[:n]]


def donor_cases(dataset: ReflacxDataset, cases: Sequence[ReflacxCase], seed: int) -> list[ReflacxCase]:
    """A donor of anatomy for each of ``cases``: a training reading of another patient, without findings where
    there are any.

    Donors are drawn from the training readings without positive labels (all training readings when there are
    none), in a seeded random order, reading ``k`` taking the first from the ``k``-th on whose patient
    (``subject_id``; REFLACX reads one image several times) is not its own.
    """
    training = [case for case in dataset if case.split == "train"]
    pool = [case for case in training if not case.positive_labels()] or training
    order = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    donors = []
    for k, case in enumerate(cases):
        start = k % max(len(order), 1)
        donor = next((d for d in order[start:] + order[:start] if _patient(d) != _patient(case)), None)
        if donor is None:
            raise ValueError(f"{dataset.root}: no training reading of another patient to lend anatomy to {case.id}")
        donors.append(donor)
    return donors


def _patient(case: ReflacxCase) -> str:
    return case.subject_id or case.id


def perturbation_seed(seed: int, reading: str) -> int:
    """The seed of a reading's perturbed anatomy: one per reading and run seed, whatever the batch or copy."""
    return zlib.crc32(f"{seed}:{reading}".encode())


def perturbed_anatomy(maps: dict[str, np.ndarray], readings: Sequence[str], seed: int) -> dict[str, np.ndarray]:
    """Stacked anatomical maps ``{control: (n, S, S)}``, row ``i`` deformed as reading ``readings[i]``'s
    (:func:`~radgazegen.controls.perturb.perturb_maps` with :func:`perturbation_seed`)."""
    moved = [perturb_maps({c: values[i] for c, values in maps.items()}, perturbation_seed(seed, reading))
             for i, reading in enumerate(readings)]  # fmt: skip
    return {c: np.stack([m[c] for m in moved]) for c in maps}


def configuration_inputs(
    configuration: Configuration,
    cases: Sequence[ReflacxCase],
    run_dir: str | Path,
    registry: ControlRegistry,
    *,
    donors: Sequence[ReflacxCase] | None = None,
    seed: int = 0,
) -> SampleInputs:
    """``inputs(rows)`` for :func:`~radgazegen.models.sampling.sample_cached`: reading ``cases[k]``'s report and the
    configuration's controls, extracted into ``run_dir``: gaze always the reading's own, the anatomical maps its own,
    those of ``donors[k]``, or its own perturbed (:func:`perturbation_seed`)."""
    gaze = [c for c in configuration.controls if is_gaze(c)]
    anatomical = list(configuration.anatomical)
    if configuration.anatomy == DONOR and (donors is None or len(donors) != len(cases)):
        raise ValueError(f"configuration {configuration.name!r} lends anatomy from donors: give one per reading")

    def inputs(rows: Sequence[int]) -> tuple[list[str], dict[str, np.ndarray]]:
        chosen = [cases[k] for k in rows]
        maps = stacked_controls(run_dir, [c.id for c in chosen], gaze, registry) if gaze else {}
        if anatomical:
            lenders = [donors[k] for k in rows] if configuration.anatomy == DONOR else chosen
            anatomy = stacked_controls(run_dir, [c.id for c in lenders], anatomical, registry)
            if configuration.anatomy == PERTURBED:
                anatomy = perturbed_anatomy(anatomy, [case.id for case in chosen], seed)
            maps |= anatomy
        return [case.transcription() for case in chosen], maps

    return inputs


@dataclass
class Samples:
    """A configuration's samples: ``images[i]`` is copy ``copy[i]`` of reading ``ids[i]``, whose anatomy came from
    reading ``donors[i]`` (``""``: its own, or none)."""

    configuration: Configuration
    ids: list[str]
    copy: np.ndarray
    images: np.ndarray
    donors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.donors:
            self.donors = [""] * len(self.ids)

    def contributors(self, i: int) -> set[str]:
        """The readings whose data conditioned sample ``i``: its report's and any donor's."""
        return {self.ids[i], self.donors[i]} - {""}

    def first(self) -> tuple[list[str], np.ndarray]:
        """The first copy of every reading: ``(ids, images)``."""
        rows = np.flatnonzero(self.copy == 0)
        return [self.ids[i] for i in rows], self.images[rows]

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies 0 and 1 of every reading that has two: two aligned image arrays."""
        second = {self.ids[i]: i for i in np.flatnonzero(self.copy == 1)}
        firsts = [i for i in np.flatnonzero(self.copy == 0) if self.ids[i] in second]
        return self.images[firsts], self.images[[second[self.ids[i]] for i in firsts]]


def _stem(reading: str, copy: int) -> str:
    return reading if copy == 0 else f"{reading}_{copy}"


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
    donors: Sequence[ReflacxCase] | None = None,
    steps: int | None = None,
    batch_size: int = 8,
    folder: str | Path | None = None,
    progress: bool = True,
) -> Samples:
    """Sample ``copies[k]`` images (default 1) of ``configuration`` for each of ``cases``; images already made are kept.

    Copy ``c`` of reading ``k`` is seeded by index ``k + c * 500000``, whatever the batch it falls in. ``donors``:
    one reading per case lending its anatomy (configurations with ``anatomy="donor"``; :func:`donor_cases`).
    """
    folder = Path(folder) if folder else bank_folder(run_dir, configuration.name)
    steps = steps or preset.evaluation.sampling_steps
    copies = [1] * len(cases) if copies is None else list(copies)
    if len(copies) != len(cases) or min(copies, default=1) < 1:
        raise ValueError(f"copies must give a positive count for each of the {len(cases)} readings")
    jobs = [(k, c) for k in range(len(cases)) for c in range(copies[k])]
    lenders = [donors[k] for k, _ in jobs] if configuration.anatomy == DONOR and donors is not None else None
    inputs = configuration_inputs(configuration, [cases[k] for k, _ in jobs], run_dir, pipe.registry, donors=lenders,
                                  seed=preset.seed)  # fmt: skip
    images = sample_cached(pipe, folder, [_stem(cases[k].id, c) for k, c in jobs], inputs, mode=configuration.mode,
                           controls=configuration.controls, seeds=[k + c * _COPY_SEED_OFFSET for k, c in jobs],
                           steps=steps, **preset.sampling.guidance(), seed=preset.seed, batch_size=batch_size,
                           progress=progress, desc=f"samples ({configuration.name})")  # fmt: skip
    lent = [lender.id for lender in lenders] if lenders is not None else []
    write_json_atomic(folder / "index.json", {"ids": [c.id for c in cases], "copies": copies, "donors": lent})
    return Samples(configuration, [cases[k].id for k, _ in jobs], np.array([c for _, c in jobs]), images, lent)
