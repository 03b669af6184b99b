"""The package functions chapters 1-4 call instead of notebook code: opening a run, sampling free prompts, the
quick adherence look, the pyradiomics comparison, the shipped benchmark tables and the training read-outs."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from radgazegen.benchmarks import OLD_CROP, RESULTS, benchmark_runs, radiomic_maps_summary, radiomic_maps_table
from radgazegen.controls.extract import load_controls
from radgazegen.controls.reference import compare_with_pyradiomics
from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.data.resample import shrink_to
from radgazegen.evaluation.protocols import sampling_adherence
from radgazegen.evaluation.study import Study
from radgazegen.models.sampling import case_generators, sample_prompts
from radgazegen.models.shipped import describe, find_shipped, networks_table, verify
from radgazegen.models.train import stage_folder, training_table, validation_panels
from radgazegen.plots import adherence_bars, agreement_plot, map_grid, speedup_plot, validation_strip
from radgazegen.presets import get_preset
from radgazegen.runs import open_run

matplotlib.use("Agg")
SMOKE = get_preset("smoke")


def test_open_run_opens_data_run_folder_and_device_in_one_call(phantom_dir: Path, phantom_copy: Path,
                                                               tmp_path: Path) -> None:  # fmt: skip
    run = open_run("smoke", str(phantom_dir), "", str(tmp_path / "run"))
    assert run.preset.name == "smoke" and run.run_dir == tmp_path / "run" and run.device == "cpu"
    assert run.dataset.ids == ReflacxDataset(phantom_dir).ids and run.is_phantom
    assert str(run).startswith(f"preset smoke: {len(run.dataset)} readings from the phantom; control maps 32x32")
    (phantom_copy / "phantom" / "findings.csv").unlink()  # what real data looks like to the chapters
    assert not open_run("smoke", str(phantom_copy)).is_phantom
    with pytest.raises(KeyError, match="nonexistent"):
        open_run("nonexistent")


def test_sample_prompts_passes_the_maps_the_mode_takes_and_seeds_per_image(phantom_dir: Path, trained_run: Path) -> None:
    study = Study(SMOKE, trained_run, ReflacxDataset(phantom_dir), progress=False)
    pipe, case = study.pipe, study.conditions[0]
    maps = load_controls(trained_run, case.id, ["canny", "gaze"], pipe.registry)
    given = {name: np.stack([values] * 2) for name, values in maps.items()}
    prompts = [case.transcription()] * 2
    canny_only = sample_prompts(pipe, prompts, given, SMOKE, controls=["canny"])
    direct = pipe(prompts, {"canny": given["canny"]}, mode="multi", num_inference_steps=SMOKE.sampling.steps,
                  **SMOKE.sampling.guidance(), generator=case_generators(SMOKE.seed, [0, 1]), progress=False).images
    np.testing.assert_array_equal(canny_only, direct)  # the gaze map was left out
    assert not np.allclose(canny_only[0], canny_only[1])  # two seeds
    both = sample_prompts(pipe, prompts[:1], {k: v[:1] for k, v in given.items()}, SMOKE, seeds=[1])
    np.testing.assert_allclose(both[0], sample_prompts(pipe, prompts, given, SMOKE)[1], atol=1e-5)  # batch-free
    text = sample_prompts(pipe, prompts[0], {}, SMOKE)
    assert text.shape == (1, SMOKE.control_size, SMOKE.control_size)


def test_sampling_adherence_scores_real_images_and_every_mode_and_records_them(phantom_dir: Path,
                                                                               trained_run: Path) -> None:  # fmt: skip
    study = Study(SMOKE, trained_run, ReflacxDataset(phantom_dir), progress=False)
    cases = study.conditions[:3]
    result = sampling_adherence(study, cases, ["canny", "gaze"], batch_size=2)
    assert list(result.tables) == ["real image", "text only", "multi", "fused"]
    assert set(result.images_per_second) == {"text only", "multi", "fused"}
    summary = result.summary()
    assert list(summary.columns) == list(result.tables) and ("canny", "correlation") in summary.index
    assert set(result.long()["condition"]) == set(result.tables)
    recorded = json.loads((trained_run / "manifest.json").read_text())["metrics"]["control_adherence"]
    assert recorded["readings"] == 3 and "multi" in recorded["images_per_second"]
    adherence_bars(result.long())


def test_training_read_outs_and_figures(trained_run: Path) -> None:
    panels = validation_panels(stage_folder(trained_run, "base"))
    assert [label for label, _ in panels] == [f"step {SMOKE.train.base_steps}"] and panels[0][1].dtype == np.uint8
    controlnet = validation_panels(trained_run / "checkpoints" / "controlnet" / "canny")
    assert controlnet[0][0] == "controls" and len(controlnet) == 2
    validation_strip(controlnet, "canny")
    table = training_table(trained_run)
    assert set(table["network"]) == {"base", "controlnet/canny", "controlnet/gaze", "controlnet/fused"}
    assert (table["s / step"] > 0).all() and (table["parameters (M)"] > 0).all()
    assert training_table(trained_run / "nothing").empty


def test_shipped_manifest_read_outs() -> None:
    manifest = verify(find_shipped())
    table = networks_table(manifest)
    assert list(table.columns) == ["steps", "seconds", "mean_loss_last_50", "batch_size", "device"]
    assert f"trained with preset {manifest['preset']!r}" in describe(manifest)


def test_compare_with_pyradiomics_agrees_and_times_both() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 200, (12, 12)).astype(np.float64)
    agreement = compare_with_pyradiomics(image, ["firstorder_Mean", "glcm_Contrast"])
    assert list(agreement.differences.index) == ["firstorder_Mean", "glcm_Contrast"]
    assert (agreement.differences <= 1e-6).all() and agreement.speedup > 0
    agreement_plot(agreement.differences)


def test_benchmark_tables_ship_with_the_package_and_bad_files_are_named(tmp_path: Path) -> None:
    shipped = radiomic_maps_table()
    assert not shipped.empty and RESULTS.parent.name == "radgazegen"
    first = shipped.groupby(["machine", "crop", "size"]).head(1)  # each crop's reference row
    np.testing.assert_allclose(first["speedup"], 1.0)
    assert {"lung field", "mass", "heart edge", OLD_CROP} <= set(shipped["crop"])
    summary = radiomic_maps_summary()
    assert set(summary["images"]) == {120} and (summary["batched_seconds"] > 0).all() and "glcm_Contrast" in set(summary["feature"])
    speedup_plot(shipped)
    assert radiomic_maps_table(tmp_path).empty and radiomic_maps_summary(tmp_path).empty
    (tmp_path / "radiomic_maps_x.json").write_text("{not json")
    with pytest.raises(ValueError, match="radiomic_maps_x.json: not a benchmark result"):
        benchmark_runs("radiomic_maps", tmp_path)


def test_shrink_to_keeps_the_aspect_and_the_mean() -> None:
    image = np.arange(40 * 20, dtype=np.float64).reshape(40, 20)
    small = shrink_to(image, 10)
    assert small.shape == (10, 5) and small.mean() == pytest.approx(image.mean())
    with pytest.raises(ValueError, match="long_side"):
        shrink_to(image, 0)
    map_grid({"image": image, "small": small}, columns=2)
