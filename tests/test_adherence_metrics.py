"""Adherence metrics with known values, phantom ground-truth masks and adherence() with a finding segmenter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic import disks

from radgazegen.controls.registry import ControlInputs, ControlRegistry, ControlSettings, raw_controls
from radgazegen.data.images import load_mask
from radgazegen.data.phantom.truth import finding_masks, has_ground_truth, lung_masks, read_findings
from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.errors import DataFormatError
from radgazegen.evaluation.adherence import adherence, edge_f1, gaze_adherence, map_ssim, texture_error
from radgazegen.evaluation.segmenter import FindingSegmenter
from radgazegen.controls.hypotheses import hotspot


def test_gaze_adherence_measures_the_share_inside_the_gaze_region_and_the_centroid_distance() -> None:
    finding = np.zeros((32, 32), bool)
    finding[10:14, 10:14] = True  # centroid (11.5, 11.5)
    heatmap = np.zeros((32, 32))
    heatmap[10:12, 10:14] = 1.0  # the finding's top half; centroid (10.5, 11.5)
    scores = gaze_adherence(finding, heatmap, dilation=0)
    assert scores == {"finding_share": 0.5, "centroid_distance": 1.0}
    assert gaze_adherence(finding, heatmap, dilation=2)["finding_share"] == 1.0
    point = np.zeros((32, 32))
    point[20, 14] = 3.0
    far = gaze_adherence(finding, point, dilation=0)
    assert far["finding_share"] == 0.0 and far["centroid_distance"] == pytest.approx(np.hypot(8.5, 2.5))
    weighted = heatmap.copy()
    weighted[10, 10:14] = 3.0  # three times the weight on row 10: centroid row (3 * 10 + 11) / 4
    assert gaze_adherence(finding, weighted)["centroid_distance"] == pytest.approx(11.5 - 41 / 4)
    empty = gaze_adherence(np.zeros_like(finding), heatmap)
    assert np.isnan(empty["finding_share"]) and np.isnan(empty["centroid_distance"])


def test_gaze_adherence_refuses_bad_maps() -> None:
    finding = np.ones((8, 8), bool)
    with pytest.raises(ValueError, match="shape mismatch"):
        gaze_adherence(finding, np.ones((8, 9)))
    with pytest.raises(ValueError, match="negative"):
        gaze_adherence(finding, -np.ones((8, 8)))
    with pytest.raises(ValueError, match="empty"):
        gaze_adherence(finding, np.zeros((8, 8)))


def line(column: int, rows: slice = slice(4, 28)) -> np.ndarray:
    edges = np.zeros((32, 32))
    edges[rows, column] = 1.0
    return edges


def test_edge_f1_matches_edges_within_the_tolerance() -> None:
    assert edge_f1(line(10), line(10), tolerance=0) == 1.0
    assert edge_f1(line(10), line(11), tolerance=1) == 1.0
    assert edge_f1(line(10), line(11), tolerance=0) == 0.0
    assert edge_f1(line(10), line(12), tolerance=1) == 0.0
    assert edge_f1(line(10), line(12), tolerance=2) == 1.0
    half = line(10, slice(4, 16))
    assert edge_f1(line(10), half, tolerance=0) == pytest.approx(2 * 1 * 0.5 / 1.5)  # P = 1, R = 12/24
    assert edge_f1(line(10), half, tolerance=1) == pytest.approx(26 / 37)  # R = 13/24: row 16 is 1 px from row 15
    assert edge_f1(np.zeros((32, 32)), np.zeros((32, 32))) == 1.0
    assert edge_f1(line(10), np.zeros((32, 32))) == 0.0 and edge_f1(np.zeros((32, 32)), line(10)) == 0.0
    with pytest.raises(ValueError, match="tolerance"):
        edge_f1(line(10), line(10), tolerance=-1)
    with pytest.raises(ValueError, match="shape mismatch"):
        edge_f1(line(10), line(10)[:16])


def test_texture_error_and_ssim_of_known_maps() -> None:
    given, produced = np.zeros((16, 16)), np.zeros((16, 16))
    produced[:8] = 0.25
    assert texture_error(given, produced) == pytest.approx(0.125)
    assert texture_error(produced, produced) == 0.0
    with pytest.raises(ValueError, match="finite"):
        texture_error(given, np.full((16, 16), np.nan))
    pattern = np.random.default_rng(0).random((16, 16))
    assert map_ssim(pattern, pattern) == pytest.approx(1.0)
    assert map_ssim(pattern, 1 - pattern) < 0


def test_finding_masks_are_the_phantom_ground_truth_at_the_working_size(phantom_dir) -> None:
    truth = read_findings(phantom_dir)
    ids = ReflacxDataset(phantom_dir).ids
    sick, normal = truth["id"].iloc[0], next(i for i in ids if i not in set(truth["id"]))
    masks = finding_masks(phantom_dir, [sick, normal], 48)
    assert masks.shape == (2, 48, 48) and masks.dtype == bool
    assert masks[0].any() and not masks[1].any()
    full = np.zeros_like(load_mask(phantom_dir / truth["mask"].iloc[0]))
    for relative in truth.loc[truth["id"] == sick, "mask"]:
        full |= load_mask(phantom_dir / relative)
    assert masks[0].mean() == pytest.approx(full.mean(), abs=0.02)  # area shares survive resampling
    lungs = lung_masks(phantom_dir, [sick], 48)
    assert lungs.shape == (1, 48, 48) and lungs[0].mean() == pytest.approx(
        load_mask(phantom_dir / "phantom" / "lungs" / f"{ReflacxDataset(phantom_dir).case(sick).dicom_id}.png").mean(),
        abs=0.02,
    )
    with pytest.raises(ValueError, match="unknown reading id"):
        finding_masks(phantom_dir, [sick, "P300R999999"], 48)


def test_finding_masks_exist_only_for_the_phantom(phantom_copy) -> None:
    assert has_ground_truth(phantom_copy)
    (phantom_copy / "phantom" / "findings.csv").unlink()
    assert not has_ground_truth(phantom_copy)
    with pytest.raises(DataFormatError, match="only for the phantom"):
        finding_masks(phantom_copy, ReflacxDataset(phantom_copy).ids[:1], 32)


def test_adherence_with_a_segmenter_reports_the_full_metric_set(disk_segmenter: FindingSegmenter) -> None:
    images, masks = disks(2, 32, seed=7)
    texture = "texture:glcm_Contrast"
    registry = ControlRegistry(ControlSettings(size=32))
    registry.fit(texture, [raw_controls([texture], ControlInputs(image=i), registry.settings)[texture] for i in images])
    maps = [registry.controls(["canny", texture], ControlInputs(image=image)) for image in images]
    given = {name: np.stack([m[name] for m in maps]) for name in ("canny", texture)}
    centres = [np.argwhere(mask).mean(axis=0) / 32 for mask in masks]
    given["gaze"] = np.stack([hotspot(32, tuple(centre), 0.1) for centre in centres])
    table = adherence(images, given, registry, has_finding=[True, False], segmenter=disk_segmenter)
    metrics = table.groupby("control")["metric"].agg(lambda m: sorted(set(m)))
    assert metrics.to_dict() == {
        "canny": ["correlation", "f1", "ssim"],
        "gaze": ["centroid distance", "finding share"],
        texture: ["correlation", "mae"],
    }
    values = table.set_index(["image", "control", "metric"])["value"]
    for k in range(2):  # each image re-extracts exactly the controls it was made from
        assert values[k, "canny", "f1"] == 1.0 and values[k, "canny", "ssim"] == pytest.approx(1.0)
        assert values[k, texture, "mae"] == pytest.approx(0.0, abs=1e-6)
    assert (1, "gaze", "finding share") not in values.index  # not a finding case
    assert values[0, "gaze", "finding share"] > 0.8 and values[0, "gaze", "centroid distance"] < 2
    plain = adherence(images, given, registry)
    assert set(zip(plain["control"], plain["metric"], strict=True)) == {
        ("canny", "correlation"),
        (texture, "correlation"),
        ("gaze", "finding share"),
    }
    assert isinstance(plain, pd.DataFrame) and len(plain) == 6
