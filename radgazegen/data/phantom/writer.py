"""Generate phantom cases and write them as a REFLACX-layout data set.

Layout written (REFLACX's own, plus a ``phantom/`` folder of ground truth that REFLACX lacks)::

    main_data/metadata_phase_{1,2,3}.csv
    main_data/<id>/{fixations.csv, timestamps_transcription.csv, transcription.txt,
                    anomaly_location_ellipses.csv, chest_bounding_box.csv}
    images/<dicom_id>.png                  16-bit grey radiograph
    phantom/lungs/<dicom_id>.png           lung mask
    phantom/findings/<dicom_id>_<k>.png    one mask per finding
    phantom/findings.csv                   id, dicom_id, finding, side, zone, size, sentence, mask
    phantom/manifest.json                  n, seed, size, generator version, wall time
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from radgazegen import __version__
from radgazegen.data.images import save_mask_png, save_png16
from radgazegen.data.phantom.anatomy import Anatomy, AnatomyParams, finish, render_anatomy
from radgazegen.data.phantom.findings import (
    FINDINGS_BY_NAME,
    Finding,
    FindingType,
    render_finding,
    sample_finding_types,
)
from radgazegen.data.phantom.reading import Sentence, compose_report, simulate_reading
from radgazegen.data.reflacx import LABELS, METADATA_COLUMNS, OTHER_COLUMN, PRESENCE_LABELS
from radgazegen.io import atomic_dir, read_json

DEFAULT_SIZE = (576, 480)
PHASE_SHARES = (0.2, 0.3, 0.5)  # readings per REFLACX phase
SPLIT_SHARES = {"train": 0.8, "validate": 0.1, "test": 0.1}
FORMAT = 2  # of the files written; a data set of another format is regenerated (2: REFLACX's label sets per phase)


@dataclasses.dataclass
class PhantomCase:
    """One generated reading: image, anatomy, findings, report and gaze."""

    id: str
    dicom_id: str
    subject_id: str
    phase: int
    split: str
    image: np.ndarray
    anatomy: Anatomy
    findings: list[Finding]
    sentences: list[Sentence]
    fixations: pd.DataFrame
    words: pd.DataFrame
    certainties: list[int]

    @property
    def transcription(self) -> str:
        return " ".join(s.text for s in self.sentences)


def generate_case(
    seed: np.random.SeedSequence, index: int, size: tuple[int, int] = DEFAULT_SIZE, findings: Sequence[str] | None = None
) -> PhantomCase:
    """Generate case number ``index`` from its own seed sequence (independent of the other cases).

    ``findings``: ``None`` draws each finding type with its prevalence; a list of type names gives the
    case exactly one of them (drawn in proportion to their prevalences); an empty list, none.
    """
    rng = np.random.default_rng(seed)
    kinds = sample_finding_types(rng) if findings is None else _one_of(rng, findings)
    cardiomegaly = any(k.name == "enlarged cardiac silhouette" for k in kinds)
    params = AnatomyParams.sample(rng, heart_scale=rng.uniform(1.25, 1.4) if cardiomegaly else rng.uniform(0.9, 1.05))
    height = int(size[0] + 16 * rng.integers(-1, 2))
    width = int(round(height * size[1] / size[0] / 8) * 8)
    anatomy = render_anatomy(rng, (height, width), params)
    findings = [render_finding(rng, anatomy, kind) for kind in kinds]
    findings = [f for f in findings if f.mask.any()]
    image = finish(rng, anatomy.image + sum((f.delta for f in findings), np.zeros_like(anatomy.image)))
    sentences = compose_report(rng, anatomy, findings)
    fixations, words = simulate_reading(rng, anatomy, sentences)
    phase = int(rng.choice([1, 2, 3], p=PHASE_SHARES))
    split = str(rng.choice(list(SPLIT_SHARES), p=list(SPLIT_SHARES.values())))
    hex_words = rng.integers(0, 2**32, size=5)
    return PhantomCase(
        id=f"P{100 + phase}R{index:06d}",
        dicom_id="-".join(f"{w:08x}" for w in hex_words),
        subject_id=str(10_000_000 + int(rng.integers(0, 9_000_000))),
        phase=phase,
        split=split,
        image=image,
        anatomy=anatomy,
        findings=findings,
        sentences=sentences,
        fixations=fixations,
        words=words,
        certainties=[int(rng.integers(3, 6)) for _ in findings],
    )


def _one_of(rng: np.random.Generator, names: Sequence[str]) -> list[FindingType]:
    """One finding type among ``names``, drawn with weights proportional to their prevalences (none for no names)."""
    unknown = [name for name in names if name not in FINDINGS_BY_NAME]
    if unknown:
        raise ValueError(f"unknown phantom finding(s) {unknown}; known: {sorted(FINDINGS_BY_NAME)}")
    if not names:
        return []
    kinds = [FINDINGS_BY_NAME[name] for name in names]
    weights = np.array([kind.prevalence for kind in kinds])
    return [kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]]


def generate_phantom(
    out_dir: str | Path,
    n: int = 100,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    *,
    findings: Sequence[str] | None = None,
    progress: bool = True,
) -> Path:
    """Write ``n`` phantom readings to ``out_dir`` in the REFLACX layout; returns ``out_dir``.

    ``findings`` (see :func:`generate_case`): ``None`` for the long-tailed prevalences, else exactly one
    of the named findings per reading (none for an empty list), e.g. for the gaze-placement cohort.
    Deterministic for ``(n, seed, size, findings)``; case ``k`` is the same whatever ``n`` is (but for its split
    in a data set too small to fill every split, :func:`cover_splits`). The data set is
    written into a temporary sibling folder and renamed into place, so an interrupted run leaves
    no partial data set. An existing ``out_dir`` is replaced.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    out_dir = Path(out_dir)
    started = time.perf_counter()
    with atomic_dir(out_dir) as staging:
        rows: dict[int, list[dict]] = {1: [], 2: [], 3: []}
        truth: list[dict] = []
        seeds = np.random.SeedSequence(seed).spawn(n)
        for index in tqdm(range(n), desc="phantom cases", unit="case", disable=not progress):
            case = generate_case(seeds[index], index, size, findings)
            rows[case.phase].append(_write_case(staging, case, truth))
        cover_splits([row for phase in rows.values() for row in phase])
        for phase in (1, 2, 3):
            columns = [*METADATA_COLUMNS, *LABELS[phase], OTHER_COLUMN]
            pd.DataFrame(rows[phase], columns=columns).to_csv(
                staging / "main_data" / f"metadata_phase_{phase}.csv", index=False
            )
        pd.DataFrame(truth).to_csv(staging / "phantom" / "findings.csv", index=False)
        manifest = {
            "generator": "radgazegen.data.phantom",
            "version": __version__,
            "format": FORMAT,
            "n": n,
            "seed": seed,
            "size": list(size),
            "findings": None if findings is None else list(findings),
            "seconds": round(time.perf_counter() - started, 3),
        }
        (staging / "phantom" / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out_dir


def cover_splits(rows: Sequence[dict]) -> None:
    """Give every split of :data:`SPLIT_SHARES` at least one reading where there are enough readings (in place).

    A split the draws left empty takes the last reading (highest id) of the largest split; with 120 or more
    readings no split is empty, so this changes only tiny data sets (e.g. the ``smoke`` preset's 12).
    """
    for split in SPLIT_SHARES:
        counts = {name: sum(row["split"] == name for row in rows) for name in SPLIT_SHARES}
        largest = max(counts, key=counts.get)
        if counts[split] == 0 and counts[largest] > 1:
            donor = max((row for row in rows if row["split"] == largest), key=lambda row: int(row["id"].rsplit("R", 1)[1]))
            donor["split"] = split


def ensure_phantom(
    folder: str | Path,
    n: int,
    seed: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    *,
    findings: Sequence[str] | None = None,
    progress: bool = True,
) -> Path:
    """``folder``'s phantom data set, generated (:func:`generate_phantom`) unless one of these settings and of
    this :data:`FORMAT` is there already."""
    wanted = {"format": FORMAT, "n": n, "seed": seed, "size": list(size),
              "findings": None if findings is None else list(findings)}  # fmt: skip
    existing = phantom_manifest(folder)
    if existing is None or any(existing.get(k) != v for k, v in wanted.items()):
        generate_phantom(folder, n=n, seed=seed, size=size, findings=findings, progress=progress)
    return Path(folder)


def phantom_manifest(folder: str | Path) -> dict | None:
    """The manifest of a phantom data set, or ``None`` if ``folder`` holds none."""
    path = Path(folder) / "phantom" / "manifest.json"
    return read_json(path) if path.is_file() else None


def _write_case(root: Path, case: PhantomCase, truth: list[dict]) -> dict:
    folder = root / "main_data" / case.id
    folder.mkdir(parents=True)
    height, width = case.image.shape
    save_png16(root / "images" / f"{case.dicom_id}.png", case.image)
    save_mask_png(root / "phantom" / "lungs" / f"{case.dicom_id}.png", case.anatomy.lung_mask)
    case.fixations.to_csv(folder / "fixations.csv", index=False)
    case.words.to_csv(folder / "timestamps_transcription.csv", index=False)
    (folder / "transcription.txt").write_text(case.transcription + "\n", encoding="utf-8")
    labels = LABELS[case.phase]
    ellipses = []
    row: dict = {
        "id": case.id,
        "split": case.split,
        "eye_tracking_data_discarded": False,
        "image": f"images/{case.dicom_id}.png",
        "dicom_id": case.dicom_id,
        "subject_id": case.subject_id,
        "image_size_x": width,
        "image_size_y": height,
        **{name: False if name in PRESENCE_LABELS[case.phase] else 0 for name in labels},
        OTHER_COLUMN: "",
    }
    for k, (finding, certainty) in enumerate(zip(case.findings, case.certainties, strict=True)):
        label = finding.kind.label_phase1 if case.phase == 1 else finding.kind.label_phase23
        ys, xs = np.nonzero(finding.mask)
        pad_x, pad_y = 0.08 * (np.ptp(xs) + 1), 0.08 * (np.ptp(ys) + 1)
        ellipses.append(
            {
                "xmin": round(max(xs.min() - pad_x, 0), 1),
                "ymin": round(max(ys.min() - pad_y, 0), 1),
                "xmax": round(min(xs.max() + 1 + pad_x, width), 1),
                "ymax": round(min(ys.max() + 1 + pad_y, height), 1),
                "certainty": certainty,
                **{name: name == label for name in labels},
            }
        )
        row[label] = max(row[label], certainty)
        mask_name = f"{case.dicom_id}_{k}.png"
        save_mask_png(root / "phantom" / "findings" / mask_name, finding.mask)
        sentence = next(
            i for i, s in enumerate(case.sentences) if s.finding == finding.kind.name and s.target is finding.mask
        )
        truth.append(
            {
                "id": case.id,
                "dicom_id": case.dicom_id,
                "finding": finding.kind.name,
                "label": label,
                "side": finding.side,
                "zone": finding.zone,
                "size": finding.size,
                "sentence": sentence,
                "area_fraction": round(float(finding.mask.mean()), 6),
                "mask": f"phantom/findings/{mask_name}",
            }
        )
    pd.DataFrame(ellipses, columns=["xmin", "ymin", "xmax", "ymax", "certainty", *labels]).to_csv(
        folder / "anomaly_location_ellipses.csv", index=False
    )
    chest = case.anatomy.lung_mask | case.anatomy.heart
    ys, xs = np.nonzero(chest)
    pd.DataFrame([{"xmin": xs.min(), "ymin": ys.min(), "xmax": xs.max() + 1, "ymax": ys.max() + 1}]).to_csv(
        folder / "chest_bounding_box.csv", index=False
    )
    return row
