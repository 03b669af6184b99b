"""Training curves from weight snapshots, and the shipped checkpoint: export, SHA-256 check, loading back.

One tiny run (smoke preset, snapshots on) trains the base model and the canny, gaze and gaze_findings
ControlNets; the curves, the export and the HVA-CN choice are read from it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic import phantom_study

from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.errors import ChecksumError
from radgazegen.evaluation import bank
from radgazegen.evaluation.curves import adherence_beside, training_curves, with_controlnet
from radgazegen.evaluation.study import Study
from radgazegen.models.shipped import export, load_shipped, verify
from radgazegen.models.assembly import pipeline_from_run
from radgazegen.models.train import snapshots
from radgazegen.presets import get_preset

SMOKE = get_preset("smoke")
SNAPSHOTS = dataclasses.replace(SMOKE, train=dataclasses.replace(SMOKE.train, snapshots=True, validate_every=2),
                                controls=("canny", "gaze", "gaze_findings"))  # fmt: skip
CONTROLS = ["canny", "gaze", "gaze_findings"]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    return phantom_study(tmp_path_factory.mktemp("shipped"), SNAPSHOTS, CONTROLS, n=12, seed=7)


def test_snapshots_are_kept_at_every_validation(study: Study) -> None:
    checkpoints = study.run_dir / "checkpoints"
    assert list(snapshots(checkpoints / "base")) == [2, 4]
    assert list(snapshots(checkpoints / "controlnet" / "gaze")) == [2, 3]
    assert snapshots(checkpoints / "nothing") == {}


def test_training_curves_start_from_the_text_only_model(study: Study) -> None:
    curves = training_curves(study, readings=2)
    base = curves[curves["network"] == "base"]
    assert list(base["step"]) == [2, 4] and (base["value"] > 0).all()
    for gaze in ("gaze", "gaze_findings"):
        rows = curves[curves["network"] == gaze]
        assert set(rows["step"]) == {0, 2, 3}
        assert set(rows["metric"]) == {"finding share", "hit", "follows"}
        assert rows[rows["step"] == 0]["metric"].tolist() == ["finding share", "hit", "follows"]
    canny = curves[curves["network"] == "canny"]
    assert set(canny["step"]) == {0, 2, 3} and set(canny["metric"]) == {"f1"}
    assert canny["value"].between(0, 1).all()
    selection = ReflacxDataset(study.run_dir / "placement-selection" / "readings")  # not the evaluation's readings
    assert not (study.run_dir / "placement").exists() and all(len(c.positive_labels()) == 1 for c in selection)
    cached = study.run_dir / "curves" / "gaze" / "step-000002" / "mirrored"
    assert len(list(cached.glob("*.png"))) == 2
    again = training_curves(study, readings=2)  # cached samples: the same numbers
    np.testing.assert_allclose(again["value"].to_numpy(), curves["value"].to_numpy(), equal_nan=True)


def test_adherence_beside_scores_each_model_on_the_same_readings(study: Study) -> None:
    early = with_controlnet(study.pipe, "gaze", snapshots(study.run_dir / "checkpoints" / "controlnet" / "gaze")[2])
    table = adherence_beside(study, {"final": study.pipe, "early": early}, ["canny", "gaze"], readings=2)
    assert list(dict.fromkeys(table["model"])) == ["text only", "final", "early"]
    assert set(table[table["control"] == "gaze"]["metric"]) == {"finding share", "hit", "follows"}
    assert set(table[table["control"] == "canny"]["metric"]) == {"f1"}
    cached = study.run_dir / "curves" / "beside" / "gaze"
    final, early_images = (sorted((cached / model / "mirrored").glob("*.png")) for model in ("final", "early"))
    assert len(final) == len(early_images) == 2
    assert any(a.read_bytes() != b.read_bytes() for a, b in zip(final, early_images, strict=True))  # each model samples its own
    again = adherence_beside(study, {"final": study.pipe, "early": early}, ["canny", "gaze"], readings=2)
    np.testing.assert_allclose(again["value"].to_numpy(), table["value"].to_numpy(), equal_nan=True)


def test_the_hva_control_names_the_gaze_configurations(study: Study) -> None:
    found = {c.name: c for c in bank.configurations(study.pipe, hva="gaze_findings")}
    assert list(found) == ["text", "rad", "gaze", "both", "donor", "perturbed"]
    assert found["rad"].controls == ("canny",) and found["both"].controls == ("canny", "gaze_findings")
    assert found["donor"].controls == found["perturbed"].controls == ("canny", "gaze_findings")
    assert "findings" in found["gaze"].label
    assert bank.configurations(study.pipe)[2].controls == ("gaze",)
    with pytest.raises(ValueError, match="gaze control"):
        bank.configurations(study.pipe, hva="canny")
    from radgazegen.evaluation.placement import placement_arms

    assert [a.name for a in placement_arms(study.pipe)] == ["text", "rad", "gaze", "both", "perturbed", "gaze_findings",
                                                            "both_findings", "perturbed_findings"]  # fmt: skip
    arms = placement_arms(study.pipe, gaze=["gaze_findings"])
    assert [a.name for a in arms] == ["text", "rad", "gaze_findings", "both_findings", "perturbed_findings"]
    assert arms[-2].controls == arms[-1].controls == ("canny", "gaze_findings")
    with pytest.raises(ValueError, match="no ControlNet for gaze control"):
        placement_arms(study.pipe, rad=["canny"], gaze=["lungs"])


def test_export_verify_and_load_back(study: Study, tmp_path: Path) -> None:
    out = export(study.run_dir, SNAPSHOTS, tmp_path / "phantom-32", commands=["radgazegen train ..."],
                 curves=None, prompts=["Heart size is normal."], dataset={"n": 12})  # fmt: skip
    manifest = verify(out)
    assert manifest["preset"] == "smoke" and manifest["commands"] == ["radgazegen train ..."]
    assert set(manifest["networks"]) >= {"base"} and manifest["dtype"] in ("float16", "float32")
    assert all(network["seconds"] > 0 for network in manifest["networks"].values())
    assert manifest["fp16_mean_abs_difference"] is not None
    assert "unet/diffusion_pytorch_model.safetensors" in manifest["sha256"]
    shipped = load_shipped(out)
    assert shipped.unet.dtype == torch.float32 and sorted(shipped.controlnets) == sorted(CONTROLS)
    trained = pipeline_from_run(study.run_dir, SNAPSHOTS)
    prompt, generator = ["Heart size is normal."], lambda: [torch.Generator().manual_seed(0)]
    ours = shipped(prompt, num_inference_steps=3, generator=generator(), progress=False).images
    theirs = trained(prompt, num_inference_steps=3, generator=generator(), progress=False).images
    assert np.abs(ours - theirs).mean() <= 2 / 255

    cache = out / "__pycache__" / "pipeline_radgazegen.cpython-311.pyc"  # what pip writes when it installs the package
    cache.parent.mkdir()
    cache.write_bytes(b"bytecode")
    verify(out)  # a bytecode cache is not part of the checkpoint
    weights = out / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(ChecksumError, match="diffusion_pytorch_model.safetensors: SHA-256 differs"):
        load_shipped(out)
    (out / "stray.txt").write_text("x")
    with pytest.raises(ChecksumError, match="stray.txt: not listed"):
        verify(out)
    (out / "manifest.json").unlink()
    with pytest.raises(ChecksumError, match="manifest.json: missing"):
        verify(out)


def test_training_seconds_add_up_over_resumed_runs() -> None:
    from radgazegen.models.train import training_seconds

    log = [{"seconds": 1.0}, {"seconds": 3.0}, {"seconds": 2.0}, {"seconds": 5.0}]  # resumed after the second step
    assert training_seconds(log) == 8.0 and training_seconds([]) == 0.0


def test_export_refuses_a_run_without_a_base_model(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"training": {}}))
    with pytest.raises(Exception, match="no trained base model"):
        export(tmp_path, SMOKE, tmp_path / "out", commands=[])
    assert not (tmp_path / "out").exists()


def test_a_preset_pipeline_is_found_verified_and_sampled_by_default(study: Study, tmp_path: Path) -> None:
    from radgazegen.book import shipped_weights
    from radgazegen.errors import MissingWeightsError
    from radgazegen.models.sampling import load_pipeline, sample_readings
    from radgazegen.models.shipped import pipeline_folder
    from radgazegen.plots import training_curves_plot

    out = export(study.run_dir, SNAPSHOTS, tmp_path / "shipped", commands=["x"], curves=training_curves(study, readings=2))
    assert len(training_curves_plot(pd.read_csv(out / "curves.csv")).axes) == 1 + len(CONTROLS)
    preset = dataclasses.replace(SNAPSHOTS, pipeline=str(out))
    assert pipeline_folder(preset) == out and pipeline_folder(preset, "run") is None
    assert pipeline_folder(SNAPSHOTS) is None and pipeline_folder(SNAPSHOTS, tmp_path / "other") == tmp_path / "other"
    with pytest.raises(MissingWeightsError, match="nowhere-64: the 'smoke' preset samples this shipped pipeline"):
        pipeline_folder(dataclasses.replace(SNAPSHOTS, pipeline="nowhere-64"))
    pipe = load_pipeline(preset, tmp_path / "empty-run")  # the preset's pipeline: no run needed
    shipped_study = Study(preset, study.run_dir, study.dataset, progress=False)
    assert shipped_study.describe().endswith("samples from the saved pipeline 'shipped'")
    assert pipe.source == out and sorted(pipe.controlnets) == sorted(CONTROLS)
    assert shipped_weights(preset) == verify(out)["sha256"] and shipped_weights(SNAPSHOTS) is None
    cases = list(study.dataset)[:2]
    controlled = sample_readings(pipe, cases, controls=["canny", "gaze"], data_root=study.dataset.root, steps=2)
    text_only = sample_readings(pipe, cases, data_root=study.dataset.root, steps=2)
    assert controlled.shape == text_only.shape == (2, 32, 32) and np.abs(controlled - text_only).max() > 0
    (out / "scheduler" / "scheduler_config.json").write_text("{}")
    with pytest.raises(ChecksumError, match="scheduler_config.json: SHA-256 differs"):
        shipped_weights(preset)
