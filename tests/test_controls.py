"""Lung masks, the control registry and batch extraction into a run directory (cached, resumable)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from radgazegen.cli import main
from radgazegen.controls.extract import extract_controls, load_controls, load_registry, stacked_controls
from radgazegen.controls.lungs import dice, lung_mask, segment_lungs
from radgazegen.controls.registry import (
    DEFAULT_CONTROLS,
    ControlInputs,
    ControlRegistry,
    ControlSettings,
    check_names,
    raw_controls,
)
from radgazegen.controls.texture_stats import HEALTHY, region_texture_values, separation
from radgazegen.data.images import load_image, load_mask, save_mask_png
from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.errors import DataFormatError
from radgazegen.runs import read_manifest


def test_fallback_lung_segmentation_overlaps_the_phantom_truth(phantom_dir: Path) -> None:
    dataset = ReflacxDataset(phantom_dir)
    scores = []
    for case in dataset:
        image, _ = load_image(case.image_path)
        scores.append(dice(segment_lungs(image), load_mask(phantom_dir / "phantom" / "lungs" / f"{case.dicom_id}.png")))
    assert np.mean(scores) > 0.85
    assert dice(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0


def test_lung_mask_sources_in_order(phantom_dir: Path, tmp_path: Path) -> None:
    dataset = ReflacxDataset(phantom_dir)
    case = dataset.case(dataset.ids[0])
    image, _ = load_image(case.image_path)
    mask, source = lung_mask(case.dicom_id, image, data_root=phantom_dir)
    assert source == "phantom" and mask.shape == image.shape
    assert lung_mask(case.dicom_id, image)[1] == "segmented"
    with pytest.raises(DataFormatError, match=f"no lung mask for image {case.dicom_id}"):
        lung_mask(case.dicom_id, image, mask_dir=tmp_path)
    save_mask_png(tmp_path / f"{case.dicom_id}.png", np.ones((10, 8), bool))
    given, source = lung_mask(case.dicom_id, image, mask_dir=tmp_path, data_root=phantom_dir)
    assert source == "mask folder" and given.shape == image.shape and given.all()


def test_control_names_are_checked() -> None:
    assert check_names(DEFAULT_CONTROLS) == list(DEFAULT_CONTROLS)
    for bad, message in [("edges", "unknown control"), ("texture:glcm", "one feature"),
                         ("texture:glcm_Nope", "unknown glcm feature")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            check_names([bad])
    with pytest.raises(ValueError, match="duplicate"):
        check_names(["canny", "canny"])


def test_registry_normalises_to_unit_range_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((40, 36))
    settings = ControlSettings(size=16)
    raw = raw_controls(["canny", "sobel", "log", "texture:glcm_Contrast"], ControlInputs(image), settings)
    assert all(m.shape == (16, 16) and m.dtype == np.float32 for m in raw.values())
    registry = ControlRegistry(settings)
    with pytest.raises(KeyError, match="no fitted scaling"):
        registry.normalise("sobel", raw["sobel"])
    low, high = registry.fit("sobel", [raw["sobel"]])
    assert low < high
    scaled = registry.normalise("sobel", raw["sobel"])
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    again = ControlRegistry.from_dict(json.loads(json.dumps(registry.to_dict())))
    assert again == registry
    with pytest.raises(ValueError, match="needs a lung mask"):
        raw_controls(["lungs"], ControlInputs(image), settings)
    with pytest.raises(ValueError, match="needs fixations"):
        raw_controls(["gaze"], ControlInputs(image), settings)


def test_extraction_is_cached_resumable_and_normalised(phantom_copy: Path, tmp_path: Path) -> None:
    dataset = ReflacxDataset(phantom_copy)
    settings = ControlSettings(size=24)
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="dropped"):
        registry = extract_controls(dataset, DEFAULT_CONTROLS, run, settings, progress=False)
    files = sorted((run / "controls").glob("*/*.npy"))
    assert len(files) == len(DEFAULT_CONTROLS) * len(dataset)
    first = files[0]
    stamps = {f: f.stat().st_mtime_ns for f in files[1:]}
    first.unlink()  # an interrupted run: one map missing
    extract_controls(dataset, DEFAULT_CONTROLS, run, settings, progress=False)
    assert first.is_file() and all(f.stat().st_mtime_ns == stamp for f, stamp in stamps.items())
    saved = json.loads((run / "controls" / "registry.json").read_text())
    assert saved["cases_computed"] == 1 and set(saved["scaling"]) == {"sobel", "log", *DEFAULT_CONTROLS[-2:]}
    assert load_registry(run) == registry
    maps = load_controls(run, dataset.ids[0], DEFAULT_CONTROLS)
    for name, values in maps.items():
        assert values.shape == (24, 24) and values.dtype == np.float32, name
        assert 0.0 <= values.min() and values.max() <= 1.0, name
    assert maps["gaze"].max() == 1.0 and set(np.unique(maps["lungs"])) <= {0.0, 1.0}
    stacked = stacked_controls(run, dataset.ids[:3], ["gaze", "lungs"])
    assert stacked["gaze"].shape == (3, 24, 24)
    np.testing.assert_array_equal(stacked["lungs"][0], maps["lungs"])
    changed = ControlSettings(size=24, log_sigma=3.0)
    assert changed.key("log") != settings.key("log") and changed.key("sobel") == settings.key("sobel")


def test_extracting_a_subset_keeps_the_scalings_fitted_before(phantom_copy: Path, tmp_path: Path) -> None:
    dataset = ReflacxDataset(phantom_copy)
    settings, run = ControlSettings(size=16), tmp_path / "run"
    everything = extract_controls(dataset, ["sobel", "gaze"], run, settings, progress=False)
    extract_controls(dataset, ["gaze"], run, settings, progress=False)  # one more ControlNet, on gaze only
    assert load_registry(run).scaling == everything.scaling
    assert json.loads((run / "controls" / "registry.json").read_text())["controls"] == ["sobel", "gaze"]
    load_controls(run, dataset.ids[0], ["sobel", "gaze"])  # the first network's controls still load
    other = ControlSettings(size=12)  # other settings: nothing carried over from the 16-px registry
    assert "sobel" not in extract_controls(dataset, ["gaze"], run, other, progress=False).scaling


def test_cli_extracts_controls_into_the_run_directory(phantom_copy: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["controls", "--preset", "smoke", "--data", str(phantom_copy), "--run-dir", str(run),
                 "--controls", "canny", "sobel", "texture:firstorder_Entropy"]) == 0  # fmt: skip
    assert "controls of 10 cases" in capsys.readouterr().out
    assert set(read_manifest(run)["controls"]["extraction"]["scaling"]) == {"sobel", "texture:firstorder_Entropy"}
    assert main(["controls", "--preset", "smoke", "--data", str(phantom_copy), "--run-dir", str(run),
                 "--controls", "edges"]) == 1  # fmt: skip
    assert "unknown control 'edges'" in capsys.readouterr().err


def test_texture_values_by_region_separate_findings(phantom_dir: Path, tmp_path: Path) -> None:
    dataset = ReflacxDataset(phantom_dir)
    table = region_texture_values(dataset, ["firstorder_Mean", "glcm_Contrast"], long_side=48, progress=False)
    assert set(table["feature"]) == {"firstorder_Mean", "glcm_Contrast"}
    assert HEALTHY in set(table["region"]) and len(set(table["region"])) > 2
    effects = separation(table)
    assert effects.shape[1] == 2 and np.isfinite(effects.to_numpy()).any()
    without_truth = _without_truth(dataset, tmp_path)
    with pytest.raises(DataFormatError, match="findings.csv"):
        region_texture_values(without_truth, ["firstorder_Mean"], progress=False)


def _without_truth(dataset: ReflacxDataset, tmp_path: Path) -> ReflacxDataset:
    import shutil

    copy = Path(shutil.copytree(dataset.root, tmp_path / "copy"))
    (copy / "phantom" / "findings.csv").unlink()
    return ReflacxDataset(copy)
