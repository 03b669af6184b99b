"""The phantom: REFLACX layout, determinism, long tail, consistent reading."""

from __future__ import annotations

import filecmp
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from radgazegen.data.images import load_image, load_mask
from radgazegen.data.phantom import FINDING_TYPES, generate_case, generate_phantom, phantom_manifest
from radgazegen.data.phantom.findings import sample_finding_types
from radgazegen.data.reflacx import DroppedFixationsWarning, ReflacxDataset

REFLACX_FILES = {
    "fixations.csv",
    "timestamps_transcription.csv",
    "transcription.txt",
    "anomaly_location_ellipses.csv",
    "chest_bounding_box.csv",
}


def test_layout_is_reflacx_plus_ground_truth(phantom_dir: Path) -> None:
    main = phantom_dir / "main_data"
    assert {p.name for p in main.glob("metadata_phase_*.csv")} == {f"metadata_phase_{i}.csv" for i in (1, 2, 3)}
    for folder in (p for p in main.iterdir() if p.is_dir()):
        assert {p.name for p in folder.iterdir()} == REFLACX_FILES
    dataset = ReflacxDataset(phantom_dir)
    for case in dataset:
        lungs = load_mask(phantom_dir / "phantom" / "lungs" / f"{case.dicom_id}.png")
        assert lungs.shape == case.image_shape and 0.1 < lungs.mean() < 0.5
    assert phantom_manifest(phantom_dir)["n"] == 10
    assert not list(phantom_dir.parent.glob(".reflacx*")), "no staging folder may remain"


def test_same_seed_same_bytes_and_cases_independent_of_n(tmp_path: Path, phantom_dir: Path) -> None:
    again = generate_phantom(tmp_path / "again", n=10, seed=3, size=(192, 160), progress=False)
    compared = filecmp.dircmp(phantom_dir / "main_data", again / "main_data")
    assert not compared.diff_files and not compared.left_only and not compared.right_only
    for folder in compared.common_dirs:
        sub = filecmp.dircmp(phantom_dir / "main_data" / folder, again / "main_data" / folder)
        assert not sub.diff_files
    case_four = generate_case(np.random.SeedSequence(3).spawn(50)[4], 4, (192, 160))  # as if n were 50
    written, _ = load_image(ReflacxDataset(phantom_dir).case(case_four.id).image_path)
    assert np.abs(written - case_four.image).max() <= 1 / 65535


def test_label_distribution_is_long_tailed() -> None:
    rng = np.random.default_rng(0)
    counts = dict.fromkeys((k.name for k in FINDING_TYPES), 0)
    for _ in range(4000):
        for kind in sample_finding_types(rng):
            counts[kind.name] += 1
    frequencies = np.array(list(counts.values())) / 4000
    assert len(counts) >= 6
    assert frequencies.max() > 10 * frequencies.min() > 0
    assert np.allclose(frequencies, [k.prevalence for k in FINDING_TYPES], atol=0.02)


def test_report_names_each_finding_with_side_and_zone_and_timing_is_consistent(phantom_dir: Path) -> None:
    truth = pd.read_csv(phantom_dir / "phantom" / "findings.csv")
    dataset = ReflacxDataset(phantom_dir)
    for row in truth.itertuples(index=False):
        text = dataset.case(row.id).transcription().lower()
        keyword = next(k for k in FINDING_TYPES if k.name == row.finding).keywords[0]
        assert keyword in text
        if row.side in ("left", "right"):
            assert row.side in text
    for case in dataset:
        words = case.words()
        assert words["timestamp_start_word"].is_monotonic_increasing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DroppedFixationsWarning)
            fixations = case.fixations()
        assert fixations["timestamp_start_fixation"].min() < words["timestamp_start_word"].min()
        assert fixations["timestamp_end_fixation"].max() >= words["timestamp_end_word"].max()
        spoken = " ".join(w for w in words["word"] if w != ".")
        assert spoken == case.transcription().lower().replace(".", "").replace(",", "")


def test_images_look_like_radiographs(phantom_dir: Path) -> None:
    dataset = ReflacxDataset(phantom_dir)
    case = dataset.case(dataset.ids[0])
    image, shape = load_image(case.image_path)
    lungs = load_mask(phantom_dir / "phantom" / "lungs" / f"{case.dicom_id}.png")
    height, width = shape
    spine = image[int(0.3 * height) : int(0.5 * height), int(0.48 * width) : int(0.52 * width)]
    assert image[lungs].mean() + 0.2 < spine.mean()  # air dark, bone bright
    assert image[:, :3].mean() < 0.15  # air outside the body


def test_every_finding_type_renders_inside_the_lungs_or_heart() -> None:
    """Rare types too (pneumothorax is 1.5 %: a small phantom may never draw one)."""
    from radgazegen.data.phantom.anatomy import AnatomyParams, render_anatomy
    from radgazegen.data.phantom.findings import render_finding

    rng = np.random.default_rng(0)
    anatomy = render_anatomy(rng, (192, 160), AnatomyParams.sample(rng, heart_scale=1.0))
    for kind in FINDING_TYPES:
        finding = render_finding(rng, anatomy, kind)
        assert finding.mask.dtype == bool and finding.mask.any(), kind.name
        assert finding.delta.shape == finding.mask.shape and np.isfinite(finding.delta).all(), kind.name


def test_every_split_has_a_reading_even_in_a_tiny_phantom(tmp_path: Path) -> None:
    from radgazegen.data.reflacx import ReflacxDataset
    from radgazegen.presets import get_preset

    smoke = get_preset("smoke")
    dataset = ReflacxDataset(generate_phantom(tmp_path / "tiny", n=smoke.phantom_cases, seed=smoke.seed,
                                              size=smoke.phantom_size, progress=False))  # fmt: skip
    assert set(dataset.metadata["split"]) == {"train", "validate", "test"}
