"""The REFLACX quality table: FRD, FID / KID, MS-SSIM diversity, paired SSIM and text-image agreement per
sampling configuration, beside a real-vs-real reference row, and the paper's quality claims."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from radgazegen.data.images import grey_levels8
from radgazegen.evaluation import frd, quality
from radgazegen.evaluation.claims import HIGHER, LOWER, Claim
from radgazegen.evaluation.protocols.truth import REAL
from radgazegen.evaluation.stats import Estimate, bootstrap, half_sample
from radgazegen.evaluation.study import Study


SET_DISTANCES = ("FRD", "FRD (CheXGenBench)", "FRD (torch, Original)", "FID (CXR)", "FID (Inception)", "FID (RAD-DINO)")
"""The set distances of the quality table: frd-score's FRD v1 (headline), CheXGenBench's variant of it, our torch port
on Original features, FID on the CXR feature network's features (and on Inception's / RAD-DINO's when given)."""
FRD_TABLES = ("FRD", "FRD (CheXGenBench)", "FRD (torch, Original)")
"""The set distances computed from radiomic feature tables (z-scored with the reference set, :func:`frd.frd_zscores`)."""
PRDC = ("precision", "recall", "density", "coverage")
PRDC_K = 5
"""Naeem et al.'s fidelity and diversity measures, k = 5 (on RAD-DINO features when given, as CheXGenBench; else CXR)."""


def eight_bit(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1] as CheXGenBench reads its PNG / JPEG files: rounded to 8-bit grey levels."""
    return grey_levels8(images) / 255


@dataclass
class ImageSet:
    """One set of images with everything the quality table needs of it, rows aligned with the readings."""

    name: str
    label: str
    images: np.ndarray
    prompted: np.ndarray  # (n, C) findings the prompts (or, for real images, the labels) name
    prompts: list[str]
    rows: dict[str, object] = field(default_factory=dict)  # per set distance: the feature rows of its images
    paired_ssim: np.ndarray | None = None  # each image against the real image of its reading
    diversity: np.ndarray | None = None  # MS-SSIM of each pair of samples of one reading
    predicted: np.ndarray | None = None


class QualityEvaluation:
    """Chapter 5's measurements: every configuration's samples and the held-out real images against the real
    images of the conditioning readings; :meth:`table` (one row per set) and :meth:`claims` (paired differences).

    Set distances: frd-score's FRD v1; CheXGenBench's FRD (``metrics/frd.py``: frd-score's v1 extraction of images
    read as 8-bit grey, the larger set subsampled to the smaller's size, seeded); our torch FRD on Original
    features; FID / KID on the features of the CXR network trained on :attr:`Study.feature_cohort` (readings that
    are neither a reference image nor a conditioning reading); with ``inception_weights``, FID / KID on Inception
    and with ``rad_dino`` (a local ``microsoft/rad-dino`` folder) on RAD-DINO, both at CheXGenBench's settings
    (8-bit images; KID over 100 subsets of the smaller set's size); precision, recall, density and coverage
    (k = 5; RAD-DINO features when given, else CXR). Intervals of set distances and PRDC are half-sampling ones
    (:func:`~radgazegen.evaluation.stats.half_sample`) over the readings, the reference set held fixed; KID (CXR)
    reports torchmetrics' mean and standard deviation over subsets of half of each set. Per-image metrics
    (SSIM to real, MS-SSIM, agreement, CLIP) have percentile-bootstrap intervals over readings.
    """

    def __init__(self, study: Study, *, inception_weights: str | Path | None = None,
                 clip_dir: str | Path | None = None, rad_dino: str | Path | None = None,
                 configurations: Sequence[str] | None = None) -> None:  # fmt: skip
        self.study, self.clip_dir = study, clip_dir
        settings = study.settings
        self.replicates = min(settings.bootstrap, 100)  # half-sampling replicates of each set distance
        reference = study.condition_cohort
        held = study.test.subset(np.arange(min(len(reference), len(study.test))))
        self.reference = reference
        extractors = {"FID (CXR)": study.feature_classifier.features}
        if inception_weights:
            inception = quality.TorchScriptFeatures(inception_weights, device=study.device, antialias=True)
            extractors["FID (Inception)"] = lambda images: inception(eight_bit(images))
        if rad_dino:
            extractors["FID (RAD-DINO)"] = quality.RadDinoFeatures(rad_dino, device=study.device)
        self.prdc_column = "FID (RAD-DINO)" if rad_dino else "FID (CXR)"
        self.prdc_network = "RAD-DINO" if rad_dino else "CXR"
        self.sets: dict[str, ImageSet] = {
            REAL: ImageSet(REAL, "real images (held-out reference)", held.images, held.labels.astype(bool), held.prompts)
        }
        for configuration in study.configurations:
            if configurations is not None and configuration.name not in configurations:
                continue
            samples = study.samples(configuration.name)
            _, images = samples.first()
            found = ImageSet(configuration.name, configuration.label, images, reference.labels.astype(bool),
                             reference.prompts, paired_ssim=quality.ssim(images, reference.images))  # fmt: skip
            pairs = samples.pairs()
            found.diversity = quality.ms_ssim(*pairs) if len(pairs[0]) else None
            self.sets[configuration.name] = found
        self.sets[REAL].diversity = quality.ms_ssim(*_real_pairs(held.images, settings.diversity_pairs, study.preset.seed))
        bar = tqdm(total=len(self.sets) + 1, desc="quality features", unit="set", disable=not study.progress)
        radiomics = {"FRD": frd.frd_v1_features, "FRD (CheXGenBench)": lambda images: frd.frd_v1_features(eight_bit(images)),
                     "FRD (torch, Original)": lambda images: frd.radiomic_features(images).to_numpy()}  # fmt: skip
        self.reference_rows = {column: extract(reference.images) for column, extract in (radiomics | extractors).items()}
        bar.update()
        for found in self.sets.values():
            for column, extract in (radiomics | extractors).items():
                found.rows[column] = extract(found.images)
            found.predicted = study.reference_classifier.predict(found.images)
            bar.update()
        bar.close()
        rng = np.random.default_rng(42)  # CheXGenBench's seed for matching the set sizes
        self.frd = {name: {column: frd.frechet_radiomics_distance(*(_matched(self.reference_rows[column], found.rows[column], rng)
                                                                    if column == "FRD (CheXGenBench)" else
                                                                    (self.reference_rows[column], found.rows[column])))
                           for column in FRD_TABLES}
                    for name, found in self.sets.items()}  # fmt: skip
        # the z-scored rows the half-sampling replicates take subsets of (see distance)
        self.zscores: dict[str, dict[str, np.ndarray]] = {name: {} for name in self.sets}
        self.reference_zscores: dict[str, np.ndarray] = {}
        for column in FRD_TABLES:
            tables = [found.rows[column] for found in self.sets.values()]
            self.reference_zscores[column], zscores = frd.frd_zscores(self.reference_rows[column], tables)
            for name, z in zip(self.sets, zscores, strict=True):
                self.zscores[name][column] = z

    # -- set distances ------------------------------------------------------------------------------
    def distance(self, column: str, name: str, rows: np.ndarray | None = None) -> float:
        """Set distance ``column`` of set ``name`` (its ``rows`` only, when given) to the reference set."""
        if column in self.reference_zscores:  # FRD: frd-score's value on the full set, log d² of the z-scored rows of a subset
            if rows is None:
                return self.frd[name][column]
            return float(np.log(quality.frechet_from_rows(self.reference_zscores[column], self.zscores[name][column][rows])))
        found, reference = self.sets[name].rows[column], self.reference_rows[column]
        if rows is None:
            return quality.frechet_distance(reference, found)  # torchmetrics' FID
        return quality.frechet_from_rows(reference, found[rows])

    def prdc(self, name: str, rows: np.ndarray | None = None) -> dict[str, float]:
        """Precision, recall, density and coverage (k = 5) of set ``name`` (its ``rows`` only) against the reference;
        NaN for a set of fewer than 7 rows."""
        found = self.sets[name].rows[self.prdc_column]
        found = found if rows is None else found[rows]
        if min(len(found), len(self.reference_rows[self.prdc_column])) < PRDC_K + 2:
            return dict.fromkeys(PRDC, float("nan"))
        return quality.precision_recall_density_coverage(self.reference_rows[self.prdc_column], found, k=PRDC_K)

    def _prdc_estimate(self, metric: str, name: str) -> Estimate:
        n = len(self.sets[name].images)
        return half_sample(lambda rows: self.prdc(name, None if len(rows) == n else rows)[metric], n,
                           n_rep=self.replicates, seed=self.study.preset.seed)  # fmt: skip

    def _distance_estimate(self, column: str, name: str, other: str | None = None) -> Estimate:
        """Half-sampling estimate of a set distance, or of the paired difference ``name - other``."""
        n = len(self.sets[name].images)

        def statistic(rows: np.ndarray) -> float:
            subset = None if len(rows) == n else rows
            value = self.distance(column, name, subset)
            return value - self.distance(column, other, subset) if other else value

        return half_sample(statistic, n, n_rep=self.replicates, seed=self.study.preset.seed)

    # -- outputs --------------------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """One row per set (``real`` first): each metric with its 95% interval columns ``<metric> low / high``."""
        settings, seed = self.study.settings, self.study.preset.seed
        rows = {}
        for name, found in self.sets.items():
            row: dict[str, object] = {"label": found.label, "images": len(found.images)}
            for column in SET_DISTANCES:
                if column in found.rows or column in self.reference_zscores:
                    row |= self._distance_estimate(column, name).columns(column)
            features = found.rows["FID (CXR)"]
            size = len(features) // 2
            if size >= 2:
                row["KID (CXR)"], row["KID (CXR) std"] = quality.kernel_inception_distance(
                    self.reference_rows["FID (CXR)"], features, subset_size=size, subsets=50, seed=seed)  # fmt: skip
            for network in ("Inception", "RAD-DINO"):  # CheXGenBench's KID: 100 subsets of the smaller set's size
                if f"FID ({network})" in found.rows:
                    real, fake = self.reference_rows[f"FID ({network})"], found.rows[f"FID ({network})"]
                    row[f"KID ({network})"], row[f"KID ({network}) std"] = quality.kernel_inception_distance(
                        real, fake, subset_size=min(len(real), len(fake)), subsets=100, seed=seed)  # fmt: skip
            for metric in PRDC:
                row |= self._prdc_estimate(metric, name).columns(f"{metric} ({self.prdc_network})")
            if found.diversity is not None:
                row |= bootstrap(np.mean, found.diversity, n_boot=settings.bootstrap).columns("MS-SSIM")
            if found.paired_ssim is not None:
                row |= bootstrap(np.mean, found.paired_ssim, n_boot=settings.bootstrap).columns("SSIM to real")
            row |= bootstrap(quality.finding_agreement, found.prompted, found.predicted,
                             n_boot=settings.bootstrap).columns("agreement AUROC")  # fmt: skip
            if self.clip_dir:
                scores = quality.clip_score(found.images, found.prompts, self.clip_dir)
                row |= bootstrap(np.mean, scores, n_boot=settings.bootstrap).columns("CLIP score")
            rows[name] = row
        return pd.DataFrame.from_dict(rows, orient="index")

    def claims(self) -> list[Claim]:
        """The paper's quality and ablation claims as paired differences over the conditioning readings."""
        comparisons = [("both", "text", "RadGazeGen (Rad-CN + HVA-CN) is closer to real images than SD text only"),
                       ("both", "rad", "both ControlNets beat Rad-CN alone"),
                       ("both", "gaze", "both ControlNets beat HVA-CN alone")]  # fmt: skip
        found = []
        n = len(self.reference)
        boot = self.study.settings.bootstrap
        for first, second, claim in comparisons:
            if first not in self.sets or second not in self.sets:
                continue
            protocol = "quality" if second == "text" else "ablation"
            for column in ("FRD", "FID (CXR)"):
                found.append(Claim(protocol, claim, column, first, second, LOWER,
                                   self._distance_estimate(column, first, second),
                                   f"half-sampling over {n} readings ({self.replicates})"))  # fmt: skip
            a, b = self.sets[first], self.sets[second]
            found.append(Claim(protocol, claim, "SSIM to real", first, second, HIGHER,
                               bootstrap(np.mean, a.paired_ssim - b.paired_ssim, n_boot=boot, seed=self.study.preset.seed),
                               f"paired bootstrap over {n} readings ({boot})"))  # fmt: skip
            if second == "text" and a.diversity is not None and b.diversity is not None:
                found.append(Claim(protocol, "RadGazeGen keeps the diversity of SD text only (MS-SSIM not higher)",
                                   "MS-SSIM", first, second, LOWER,
                                   bootstrap(np.mean, a.diversity - b.diversity, n_boot=boot, seed=self.study.preset.seed),
                                   f"paired bootstrap over {len(a.diversity)} readings ({boot})"))  # fmt: skip
        return found


def quality_table(
    study: Study,
    *,
    inception_weights: str | Path | None = None,
    clip_dir: str | Path | None = None,
    rad_dino: str | Path | None = None,
    configurations: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Quality and diversity of every configuration's samples (rows), reference row ``real`` first
    (:class:`QualityEvaluation`; its :meth:`~QualityEvaluation.claims` decide the paper's claims)."""
    return QualityEvaluation(study, inception_weights=inception_weights, clip_dir=clip_dir, rad_dino=rad_dino,
                             configurations=configurations).table()  # fmt: skip


def _matched(real: np.ndarray, fake: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """CheXGenBench's ``match_sample_count``: the larger table's rows subsampled (without replacement) to the smaller's."""
    if len(real) > len(fake):
        real = real[np.sort(rng.choice(len(real), len(fake), replace=False))]
    elif len(fake) > len(real):
        fake = fake[np.sort(rng.choice(len(fake), len(real), replace=False))]
    return real, fake


def _real_pairs(images: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs of distinct real images (the diversity of the real data)."""
    rng = np.random.default_rng(seed)
    first = rng.permutation(len(images))[:n]
    second = (first + 1 + rng.integers(0, len(images) - 1, size=len(first))) % len(images)
    return images[first], images[second]
