r"""Gaze placement: does the generator put a finding where the radiologist looked, and move it with the gaze?

The paper's "hypotheses" use of HVA-CN, measured counterfactually so that the measure has range:

* **readings**: held-out readings with exactly one focal finding (one that may sit anywhere in a lung:
  :data:`FOCAL_LABELS`); the prompt is the report *without its location words*
  (:func:`~radgazegen.data.reports.strip_locations`), so only the gaze says where;
* **gaze**: the reading's own gaze control, and the same map moved (:data:`MOVES`): ``mirrored`` to the
  other lung, ``shifted`` by a third of the lungs' height to another zone (down from the upper half of
  the lungs, up from the lower half). The *target* is the gaze while the finding was named
  (``gaze_findings``), moved the same way;
* **anatomy**: the Rad-CN controls come from a held-out reading *without* findings (a donor), so no arm
  is told where the finding is by its edges;
* **arms** (:func:`placement_arms`): text only and Rad-CN only (which cannot see the gaze: their images
  are the same for every move, so they measure where findings land by chance), HVA-CN only and
  Rad-CN + HVA-CN, for each gaze control the pipeline has. Every arm samples reading :math:`k` with the
  same seed.

The finding :math:`M` in a generated image is located by the phantom-trained
:class:`~radgazegen.evaluation.segmenter.FindingSegmenter`; :math:`G` is the target's gaze region
(:func:`~radgazegen.controls.hypotheses.gaze_region`), :math:`c(\cdot)` a centroid (the target's weighted
by the heatmap). Per image (:func:`placement_scores`):

* ``detected``: :math:`M \neq \emptyset`;
* ``finding share`` :math:`|M \cap G| / |M|` and ``centroid distance`` :math:`\lVert c(M) - c(h)\rVert_2` (px);
* ``hit``: :math:`c(M) \in G` (0 when nothing is detected);
* ``follows`` (moved conditions): the finding's displacement projected on the target's,
  :math:`(c(M_{moved}) - c(M_{orig})) \cdot d / \lVert d \rVert^2`, :math:`d = c(h_{moved}) - c(h_{orig})`:
  1 when the finding moves with the gaze, 0 when it stays.

Claims (:func:`placement_claims`) pair each gaze arm with text only reading by reading (each reading's
mean over the moves), with a bootstrap interval of the mean difference and of the ratio of means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from radgazegen.controls.extract import case_controls
from radgazegen.controls.hypotheses import gaze_region
from radgazegen.controls.registry import ControlRegistry, is_gaze, is_texture
from radgazegen.data.reflacx import ReflacxCase
from radgazegen.data.reports import strip_locations
from radgazegen.evaluation.adherence import gaze_adherence
from radgazegen.evaluation.bank import DONOR, PERTURBED, Configuration, perturbed_anatomy
from radgazegen.evaluation.claims import HIGHER, LOWER, Claim
from radgazegen.evaluation.stats import Estimate, bootstrap
from radgazegen.models.pipeline import RadGazeGenPipeline
from radgazegen.models.sampling import TEXT_ONLY, sample_cached

FOCAL_FINDINGS = ("consolidation", "atelectasis", "nodule", "mass", "pneumothorax")
"""Phantom finding types that may lie anywhere in a lung (the placement cohort draws one of them per reading)."""
FOCAL_LABELS = ("Consolidation", "Atelectasis", "Nodule", "Mass", "Lung nodule or mass", "Pneumothorax")
"""REFLACX labels of focal findings (phases 1-3)."""
MOVES = ("original", "mirrored", "shifted")
TARGET = "gaze_findings"  # the target region: the gaze while the finding was named
METRICS = {"finding share": HIGHER, "centroid distance": LOWER, "hit": HIGHER, "follows": HIGHER}
"""Placement metrics and the side the paper's claim is on."""


def gaze_of(arm: Configuration) -> str | None:
    """The gaze control an arm follows (``None``: it does not see the gaze)."""
    return next((name for name in arm.controls if is_gaze(name)), None)


def placement_arms(
    pipe: RadGazeGenPipeline, rad: Sequence[str] | None = None, gaze: Sequence[str] | None = None
) -> list[Configuration]:
    """Text only, Rad-CN only, then HVA-CN only, Rad-CN + HVA-CN and Rad-CN deformed + HVA-CN for each gaze control.

    ``rad``: the Rad-CN controls (default: every non-gaze, non-texture ``multi`` control); ``gaze``: the gaze
    controls to make arms for (default: every one the pipeline has). Rad-CN maps always come from a donor
    (anatomy ``donor``); the ``perturbed`` arms deform the donor's maps as the bank's ``perturbed`` configuration
    deforms a reading's own. Arms of the whole-reading ``gaze`` are named ``gaze`` / ``both`` / ``perturbed``, of
    ``gaze_findings`` ``gaze_findings`` / ``both_findings`` / ``perturbed_findings``.
    """
    multi = pipe.controls_of("multi") if "multi" in pipe.modes else []
    rad = tuple(rad if rad is not None else [c for c in multi if not is_gaze(c) and not is_texture(c)])
    missing = [c for c in rad if c not in multi]
    if missing:
        raise ValueError(f"the pipeline has no ControlNet for Rad-CN control(s) {missing}")
    arms = [Configuration("text", "SD text only", TEXT_ONLY, ())]
    if rad:
        arms.append(Configuration("rad", "Rad-CN only", "multi", rad, anatomy=DONOR))
    wanted = [c for c in multi if is_gaze(c)] if gaze is None else list(gaze)
    missing = [c for c in wanted if c not in multi]
    if missing:
        raise ValueError(f"the pipeline has no ControlNet for gaze control(s) {missing}")
    for name in wanted:
        suffix = "" if name == "gaze" else "_findings"
        what = "whole-reading gaze" if name == "gaze" else "gaze while findings were named"
        arms.append(Configuration(f"gaze{suffix}", f"HVA-CN only ({what})", "multi", (name,)))
        if rad:
            arms.append(Configuration(f"both{suffix}", f"Rad-CN + HVA-CN ({what})", "multi", (*rad, name), anatomy=DONOR))
            arms.append(Configuration(f"perturbed{suffix}", f"Rad-CN deformed + HVA-CN ({what})", "multi", (*rad, name),
                                      anatomy=PERTURBED))  # fmt: skip
    return arms


@dataclass
class PlacementCohort:
    """The protocol's inputs, one row per reading (see the module docstring)."""

    ids: list[str]
    donors: list[str]
    prompts: list[str]
    findings: list[str]
    targets: np.ndarray  # (n, S, S) gaze while the finding was named, peak 1
    gaze: dict[str, np.ndarray]  # gaze control -> (n, S, S), as the registry normalises it
    anatomy: dict[str, np.ndarray]  # Rad-CN control -> (n, S, S), from the donor reading
    shifts: np.ndarray  # (n,) rows the "shifted" condition moves the maps by

    def __len__(self) -> int:
        return len(self.ids)


def is_placement_reading(case: ReflacxCase) -> bool:
    """Exactly one positive label, and a focal one."""
    labels = case.positive_labels()
    return len(labels) == 1 and labels[0] in FOCAL_LABELS


def placement_cohort(
    readings: Sequence[ReflacxCase],
    donors: Sequence[ReflacxCase],
    registry: ControlRegistry,
    *,
    gaze_controls: Sequence[str] = ("gaze", TARGET),
    rad_controls: Sequence[str] = (),
    data_root: str | Path | None = None,
    donor_root: str | Path | None = None,
    progress: bool = True,
) -> PlacementCohort:
    """Controls, targets and prompts of ``readings`` (each with one focal finding) and anatomy from ``donors``.

    Donor ``k mod len(donors)`` gives reading ``k`` its Rad-CN controls; a reading or donor that does not
    qualify is an error naming it. ``data_root`` / ``donor_root``: the readings' and donors' data set folders
    (phantom lung masks; ``donor_root`` defaults to ``data_root``).
    """
    bad = [case.id for case in readings if not is_placement_reading(case)]
    if bad:
        raise ValueError(f"placement readings need exactly one focal finding ({', '.join(FOCAL_LABELS)}); "
                         f"these do not: {bad[:5]}")  # fmt: skip
    with_findings = [case.id for case in donors if case.positive_labels()]
    if with_findings or (rad_controls and not donors):
        raise ValueError(f"anatomy donors must be readings without findings; these have some: {with_findings[:5]}")
    gaze_controls = list(dict.fromkeys([*gaze_controls, TARGET]))
    ids, prompts, findings, shifts = [], [], [], []
    targets, gaze, anatomy = [], {name: [] for name in gaze_controls}, {name: [] for name in rad_controls}
    donor_root = donor_root if donor_root is not None else data_root
    donor_maps = [case_controls(case, list(rad_controls), registry, data_root=donor_root) for case in donors] if rad_controls else []
    for k, case in enumerate(tqdm(readings, desc="placement readings", unit="reading", disable=not progress)):
        maps = case_controls(case, [*gaze_controls, "lungs"], registry, data_root=data_root)
        target = maps[TARGET]
        if target.max() <= 0:
            raise ValueError(f"{case.folder}: no gaze while the finding was named (no fixation in its sentences)")
        ids.append(case.id)
        prompts.append(strip_locations(case.transcription()))
        findings.append(case.positive_labels()[0])
        targets.append(target)
        shifts.append(zone_shift(target, maps["lungs"] >= 0.5))
        for name in gaze_controls:
            gaze[name].append(maps[name])
        for name in rad_controls:
            anatomy[name].append(donor_maps[k % len(donors)][name])
    size = registry.settings.size
    return PlacementCohort(
        ids, [donors[k % len(donors)].id for k in range(len(ids))] if donors else [""] * len(ids), prompts, findings,
        np.stack(targets) if targets else np.zeros((0, size, size), np.float32),
        {name: np.stack(maps) for name, maps in gaze.items() if maps},
        {name: np.stack(maps) for name, maps in anatomy.items() if maps},
        np.array(shifts, int),
    )  # fmt: skip


def zone_shift(target: np.ndarray, lungs: np.ndarray) -> int:
    """Rows that move the target's centroid to the next zone: a third of the lungs' height, down from their
    upper half, up from their lower half."""
    rows = np.flatnonzero(np.asarray(lungs, bool).any(axis=1))
    if rows.size == 0:
        raise ValueError("empty lung mask: cannot tell the zones")
    top, bottom = rows.min(), rows.max() + 1
    centre = _weighted_centroid(target)[0]
    third = max(1, int(round((bottom - top) / 3)))
    return third if centre < (top + bottom) / 2 else -third


def move(maps: np.ndarray, how: str, shift: int | np.ndarray = 0) -> np.ndarray:
    """Maps ``(..., S, S)`` as they are (``original``), mirrored left-right, or shifted by ``shift`` rows (zero fill)."""
    maps = np.asarray(maps)
    if how == "original":
        return maps.copy()
    if how == "mirrored":
        return maps[..., ::-1].copy()
    if how != "shifted":
        raise ValueError(f"unknown move {how!r}; choose one of {MOVES}")
    shifts = np.broadcast_to(np.asarray(shift, int), maps.shape[:-2])
    out = np.zeros_like(maps)
    for index in np.ndindex(*maps.shape[:-2]):
        d = int(shifts[index])
        src = maps[index]
        if d >= 0:
            out[index][d:] = src[: src.shape[0] - d]
        else:
            out[index][:d] = src[-d:]
    return out


def _weighted_centroid(heatmap: np.ndarray) -> np.ndarray:
    heatmap = np.asarray(heatmap, np.float64)
    pixels = np.indices(heatmap.shape).reshape(2, -1)
    return pixels @ heatmap.ravel() / heatmap.sum()


def _centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0) if mask.any() else np.full(2, np.nan)


def sample_arm(
    pipe: RadGazeGenPipeline,
    arm: Configuration,
    cohort: PlacementCohort,
    how: str,
    folder: str | Path,
    *,
    steps: int,
    guidance_scale: float,
    seed: int,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    batch_size: int = 16,
    progress: bool = True,
) -> np.ndarray:
    """``arm``'s images for every reading under gaze move ``how``, cached as ``folder/<id>.png`` by
    :func:`~radgazegen.models.sampling.sample_cached` (reading ``k`` seeded ``k``). Anatomy is the donor's, deformed
    per reading (:func:`~radgazegen.evaluation.bank.perturbed_anatomy`) for arms with ``anatomy="perturbed"``."""

    def inputs(rows: Sequence[int]) -> tuple[list[str], dict[str, np.ndarray]]:
        rows = np.asarray(rows, int)
        maps = {name: move(cohort.gaze[name][rows], how, cohort.shifts[rows]) for name in arm.controls if is_gaze(name)}
        anatomy = {name: cohort.anatomy[name][rows] for name in arm.anatomical}
        if anatomy and arm.anatomy == PERTURBED:
            anatomy = perturbed_anatomy(anatomy, [cohort.ids[k] for k in rows], seed)
        return [cohort.prompts[k] for k in rows], maps | anatomy

    return sample_cached(pipe, folder, cohort.ids, inputs, mode=arm.mode, controls=arm.controls,
                         seeds=range(len(cohort)), steps=steps, guidance_scale=guidance_scale,
                         guidance_interval=guidance_interval, seed=seed, batch_size=batch_size, progress=progress,
                         desc=f"placement ({arm.name}, {how})")  # fmt: skip


def placement_scores(masks: np.ndarray, targets: np.ndarray) -> pd.DataFrame:
    """Per image: ``detected``, ``finding share``, ``centroid distance``, ``hit`` (module docstring), and the centroids.

    ``masks`` (n, S, S) located findings; ``targets`` (n, S, S) target heatmaps (already moved).
    """
    masks, targets = np.asarray(masks, bool), np.asarray(targets, np.float64)
    if masks.shape != targets.shape or masks.ndim != 3:
        raise ValueError(f"masks {masks.shape} and targets {targets.shape} must both be (n, S, S)")
    rows = []
    for mask, target in zip(masks, targets, strict=True):
        scores = gaze_adherence(mask, target)
        located = _centroid(mask)
        region = gaze_region(target)
        inside = bool(mask.any()) and bool(region[tuple(np.clip(np.round(located).astype(int), 0, np.array(mask.shape) - 1))])
        aim = _weighted_centroid(target)
        rows.append({"detected": float(mask.any()), **{k.replace("_", " "): v for k, v in scores.items()},
                     "hit": float(inside), "row": located[0], "column": located[1],
                     "target row": aim[0], "target column": aim[1]})  # fmt: skip
    return pd.DataFrame(rows)


def follow_scores(original: pd.DataFrame, moved: pd.DataFrame) -> np.ndarray:
    """Per reading, the finding's displacement projected on the target's (1: moved with the gaze, 0: stayed)."""
    found = original[["row", "column"]].to_numpy() - moved[["row", "column"]].to_numpy()
    aimed = original[["target row", "target column"]].to_numpy() - moved[["target row", "target column"]].to_numpy()
    norm = (aimed**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (found * aimed).sum(axis=1) / norm, np.nan)


def placement_table(
    images: Mapping[str, Mapping[str, np.ndarray]], cohort: PlacementCohort, segmenter
) -> pd.DataFrame:
    """Long table ``arm, reading, move, metric, value`` from ``images[arm][move]`` (n, S, S).

    Arms without gaze have one image per reading, scored against every move's target.
    """
    parts = []
    for arm, per_move in images.items():
        masks = {how: segmenter.masks(per_move[how]) for how in per_move}
        scored = {}
        for how in MOVES:
            mask = masks.get(how, masks.get("original"))
            scored[how] = placement_scores(mask, move(cohort.targets, how, cohort.shifts))
            for metric in ("detected", "finding share", "centroid distance", "hit"):
                parts.append(pd.DataFrame({"arm": arm, "reading": cohort.ids, "move": how, "metric": metric,
                                           "value": scored[how][metric].to_numpy()}))  # fmt: skip
        for how in MOVES[1:]:
            parts.append(pd.DataFrame({"arm": arm, "reading": cohort.ids, "move": how, "metric": "follows",
                                       "value": follow_scores(scored["original"], scored[how])}))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def per_reading(table: pd.DataFrame, arm: str, metric: str) -> pd.Series:
    """Each reading's mean of ``metric`` over the moves (NaN moves skipped) for one arm."""
    rows = table[(table["arm"] == arm) & (table["metric"] == metric)]
    return rows.groupby("reading", sort=False)["value"].mean()


def ratio_estimate(first: np.ndarray, second: np.ndarray, *, n_boot: int, seed: int) -> Estimate:
    """mean(first) / mean(second) over paired rows, with a paired percentile bootstrap interval."""
    return bootstrap(lambda a, b: a.mean() / b.mean() if b.mean() != 0 else np.nan, first, second, n_boot=n_boot,
                     seed=seed)  # fmt: skip


def placement_summary(table: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, baseline: str = "text") -> pd.DataFrame:
    """Per arm and metric: the mean, and against ``baseline`` the paired difference and ratio with 95% intervals."""
    rows = []
    for arm in table["arm"].unique():
        for metric in ("detected", *METRICS):
            mine = per_reading(table, arm, metric)
            theirs = per_reading(table, baseline, metric)
            paired = pd.concat([mine, theirs], axis=1, keys=["arm", "base"]).dropna()
            row = {"arm": arm, "metric": metric, "mean": mine.mean(), "readings": len(paired)}
            if arm != baseline and len(paired) > 1 and metric != "follows":
                diff = bootstrap(np.mean, (paired["arm"] - paired["base"]).to_numpy(), n_boot=n_boot, seed=seed)
                ratio = ratio_estimate(paired["arm"].to_numpy(), paired["base"].to_numpy(), n_boot=n_boot, seed=seed)
                row |= {"difference": diff.value, "difference low": diff.low, "difference high": diff.high,
                        "ratio": ratio.value, "ratio low": ratio.low, "ratio high": ratio.high}  # fmt: skip
            elif metric == "follows" and len(mine.dropna()) > 1:
                est = bootstrap(np.mean, mine.dropna().to_numpy(), n_boot=n_boot, seed=seed)
                row |= {"readings": est.n, "difference": est.value, "difference low": est.low, "difference high": est.high}
            rows.append(row)
    return pd.DataFrame(rows)


def placement_claims(table: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> list[Claim]:
    """Each gaze arm minus text only, per placement metric, paired over the readings (each reading's mean over moves).

    ``follows`` of text only is 0 by construction (its image does not depend on the gaze), so that claim is
    the gaze arm's mean with its interval against 0.
    """
    claims = []
    for arm in table["arm"].unique():
        if not (arm.startswith("gaze") or arm.startswith("both")):
            continue
        for metric, better in METRICS.items():
            mine, theirs = per_reading(table, arm, metric), per_reading(table, "text", metric)
            paired = pd.concat([mine, theirs.fillna(0.0) if metric == "follows" else theirs], axis=1,
                               keys=["first", "second"]).dropna()  # fmt: skip
            if len(paired) < 2:
                continue
            differences = (paired["first"] - paired["second"]).to_numpy()
            claims.append(Claim("placement", "the finding goes where the radiologist looked", metric, arm, "text",
                                better, bootstrap(np.mean, differences, n_boot=n_boot, seed=seed),
                                f"paired bootstrap over {len(differences)} readings ({n_boot})"))  # fmt: skip
    return claims


@dataclass
class ReadingPanels:
    """One reading of the protocol for a figure: the prompt, the moved target and every arm's image and finding."""

    prompt: str
    finding: str
    targets: dict[str, np.ndarray]  # move -> (S, S) target heatmap
    regions: dict[str, np.ndarray]  # move -> (S, S) bool, the target's gaze region
    images: dict[str, dict[str, np.ndarray]]  # arm -> move -> (S, S); arms without gaze repeat their one image
    findings: dict[str, dict[str, np.ndarray]]  # arm -> move -> (S, S) bool, the located finding


def reading_panels(
    cohort: PlacementCohort, images: Mapping[str, Mapping[str, np.ndarray]], k: int, segmenter
) -> ReadingPanels:
    """Reading ``k`` of ``images[arm][move]`` under every move, with its findings located by ``segmenter``."""
    panels: dict[str, dict[str, np.ndarray]] = {}
    found: dict[str, dict[str, np.ndarray]] = {}
    for arm, per_move in images.items():
        panels[arm] = {how: per_move.get(how, per_move["original"])[k] for how in MOVES}
        masks = {how: segmenter.masks(per_move[how][k : k + 1])[0] for how in per_move}
        found[arm] = {how: masks.get(how, masks["original"]) for how in MOVES}
    targets = {how: move(cohort.targets[k], how, cohort.shifts[k]) for how in MOVES}
    regions = {how: gaze_region(target) for how, target in targets.items()}
    return ReadingPanels(cohort.prompts[k], cohort.findings[k], targets, regions, panels, found)
