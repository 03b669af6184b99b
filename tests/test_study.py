"""The evaluation study's plumbing: bootstrap intervals, cohorts and labels, the sample bank, the results page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radgazegen.data.images import save_png16
from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.evaluation import bank
from radgazegen.evaluation.cohort import Cohort, label_matrix, reading_findings, reflacx_cohort
from radgazegen.evaluation.results import results_tables, write_results_tables
from radgazegen.evaluation.stats import bootstrap
from radgazegen.models.assembly import pipeline_from_run
from radgazegen.presets import get_preset

SMOKE = get_preset("smoke")


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.normal(1.0, 1.0, 30), rng.normal(1.0, 1.0, 3000)
    a, b = bootstrap(np.mean, small, n_boot=400), bootstrap(np.mean, large, n_boot=400)
    assert a.low < small.mean() < a.high and b.low < 1.0 < b.high
    assert (b.high - b.low) < (a.high - a.low) / 5
    assert a.value == pytest.approx(small.mean()) and a.n == 30


def test_bootstrap_pairs_rows_and_skips_undefined_replicates() -> None:
    x = np.arange(20.0)
    paired = bootstrap(lambda u, v: float(np.corrcoef(u, v)[0, 1]), x, 2 * x, n_boot=200)
    assert paired.low == pytest.approx(1.0) and paired.high == pytest.approx(1.0)
    rare = np.array([1] + [0] * 19)
    estimate = bootstrap(lambda y: float("nan") if y.sum() == 0 else float(y.mean()), rare, n_boot=200)
    assert np.isfinite(estimate.low) and estimate.low > 0
    with pytest.raises(ValueError, match="equal length"):
        bootstrap(np.mean, x, x[:5])


def test_reading_findings_harmonise_phases(phantom_dir: Path) -> None:
    dataset = ReflacxDataset(phantom_dir)
    truth = pd.read_csv(phantom_dir / "phantom" / "findings.csv")
    for case in dataset:
        found = reading_findings(case)
        assert "Nodule" not in found and "Mass" not in found and "Pleural effusion" not in found
        assert bool(found) == bool((truth["id"] == case.id).any())


def test_label_matrix_orders_classes_by_frequency_and_with_classes_reorders() -> None:
    labels, classes = label_matrix([{"b"}, {"a", "b"}, set(), {"c", "b"}])
    assert classes[0] == "b" and labels.shape == (4, 3) and labels[:, 0].tolist() == [1, 1, 0, 1]
    cohort = Cohort(["1", "2", "3", "4"], np.zeros((4, 2, 2)), labels, classes, [""] * 4)
    moved = cohort.with_classes(["c", "z", "b"])
    assert moved.labels[:, 0].tolist() == [0, 0, 0, 1] and moved.labels[:, 1].sum() == 0
    assert moved.subset([3]).ids == ["4"]


def test_reflacx_cohort_images_and_split(phantom_dir: Path, tmp_path: Path) -> None:
    dataset = ReflacxDataset(phantom_dir)
    cohort = reflacx_cohort(dataset, tmp_path, 32, split="train", progress=False)
    assert cohort.images.shape == (len(cohort), 32, 32) and 0 <= cohort.images.min() and cohort.images.max() <= 1
    assert set(cohort.ids) == {c.id for c in dataset if c.split == "train"}
    assert len(list((tmp_path / "images" / "32").glob("*.npy"))) == len(cohort)
    with pytest.raises(ValueError, match="no readings in split"):
        reflacx_cohort(dataset, tmp_path, 32, split="nonexistent", progress=False)


@pytest.fixture(scope="module")
def trained_pipe(phantom_dir: Path, trained_run: Path):
    return trained_run, ReflacxDataset(phantom_dir), pipeline_from_run(trained_run, SMOKE)


def test_configurations_follow_the_trained_networks(trained_pipe) -> None:
    _, _, pipe = trained_pipe
    found = {c.name: c for c in bank.configurations(pipe)}
    assert list(found) == ["text", "rad", "gaze", "both", "fused", "donor", "perturbed"]
    assert found["rad"].controls == ("canny",) and found["both"].controls == ("canny", "gaze")
    assert found["text"].mode == "text" and found["fused"].mode == "fused"
    assert found["donor"].controls == found["perturbed"].controls == ("canny", "gaze")
    assert [c.name for c in found.values() if c.uses_own_image] == ["rad", "both", "fused"]
    assert found["donor"].anatomical == ("canny",) and found["gaze"].anatomical == ()


def test_bank_resumes_and_an_image_does_not_depend_on_its_batch(trained_pipe, tmp_path: Path) -> None:
    run_dir, dataset, pipe = trained_pipe
    cases = bank.condition_cases(dataset, 3, seed=0)
    both = next(c for c in bank.configurations(pipe) if c.name == "both")
    first = bank.generate(pipe, both, cases, run_dir, SMOKE, copies=[2, 1, 1], batch_size=2, folder=tmp_path,
                          progress=False)  # fmt: skip
    assert first.images.shape == (4, SMOKE.control_size, SMOKE.control_size)
    assert first.pairs()[0].shape[0] == 1 and len(first.first()[0]) == 3
    assert not np.allclose(*first.pairs())  # two seeds, two images
    (tmp_path / f"{cases[1].id}.png").unlink()
    again = bank.generate(pipe, both, cases, run_dir, SMOKE, copies=[2, 1, 1], batch_size=3, folder=tmp_path,
                          progress=False)  # fmt: skip
    np.testing.assert_allclose(again.images, first.images, atol=2e-5)
    (tmp_path / "settings.json").unlink()  # images of unknown making are not trusted
    save_png16(tmp_path / f"{cases[0].id}.png", np.zeros((SMOKE.control_size, SMOKE.control_size)))
    unknown = bank.generate(pipe, both, cases, run_dir, SMOKE, copies=[2, 1, 1], folder=tmp_path, progress=False)
    np.testing.assert_allclose(unknown.images, first.images, atol=2e-5)
    assert SMOKE.evaluation.sampling_steps != 3
    more_steps = bank.generate(pipe, both, cases, run_dir, SMOKE, copies=[2, 1, 1], steps=3, folder=tmp_path,
                               progress=False)  # fmt: skip
    assert np.abs(more_steps.images - first.images).max() > 0.05  # other settings: the images are made afresh
    with pytest.raises(ValueError, match="copies"):
        bank.generate(pipe, both, cases, run_dir, SMOKE, copies=[1, 1], folder=tmp_path, progress=False)


def test_bank_is_keyed_on_each_images_prompt_and_maps(trained_pipe, tmp_path: Path) -> None:
    """A changed prompt or control map re-makes that image only; the others are kept as they are on disk."""
    run_dir, dataset, pipe = trained_pipe
    cases = bank.condition_cases(dataset, 3, seed=0)
    both = next(c for c in bank.configurations(pipe) if c.name == "both")
    first = bank.generate(pipe, both, cases, run_dir, SMOKE, folder=tmp_path, progress=False)
    kept = tmp_path / f"{cases[0].id}.png"
    marker = np.full((SMOKE.control_size, SMOKE.control_size), 0.5)
    save_png16(kept, marker)  # stands in for an image made earlier from the same inputs
    changed = [cases[0], cases[2], cases[1]]  # reading 1 now has reading 2's seed index, 2 has 1's
    again = bank.generate(pipe, both, changed, run_dir, SMOKE, folder=tmp_path, progress=False)
    np.testing.assert_allclose(again.images[0], marker, atol=1e-4)  # same prompt, maps and seed: kept
    assert np.abs(again.images[1] - first.images[2]).max() > 0.05  # same reading, another seed: re-made
    donors = bank.donor_cases(dataset, cases, seed=0)
    donor = next(c for c in bank.configurations(pipe) if c.name == "donor")
    lent = bank.generate(pipe, donor, cases, run_dir, SMOKE, donors=donors, folder=tmp_path / "donor", progress=False)
    assert lent.donors == [d.id for d in donors] and all(d.id != c.id for d, c in zip(donors, cases, strict=True))
    assert lent.contributors(0) == {cases[0].id, donors[0].id}
    with pytest.raises(ValueError, match="donors"):
        bank.generate(pipe, donor, cases, run_dir, SMOKE, folder=tmp_path / "none", progress=False)
    perturbed = next(c for c in bank.configurations(pipe) if c.name == "perturbed")
    moved = bank.generate(pipe, perturbed, cases, run_dir, SMOKE, folder=tmp_path / "perturbed", progress=False)
    # the smoke ControlNets are barely trained: other maps move the images only a little, but they do move them
    assert np.abs(moved.images - first.images).max() > 1e-4 and moved.contributors(0) == {cases[0].id}
    assert np.abs(lent.images - first.images).max() > 1e-4


def test_study_describes_its_run_and_cohorts(trained_pipe) -> None:
    from radgazegen.evaluation.study import Study

    run_dir, dataset, _ = trained_pipe
    line = Study(SMOKE, run_dir, dataset, progress=False).describe()
    train_readings = sum(c.split == "train" for c in dataset)
    conditions = min(SMOKE.evaluation.conditions, train_readings)  # at most every training reading
    assert line.startswith(f"run '{run_dir.name}' (preset smoke): {conditions} conditioning readings")
    assert "configurations text, rad, gaze, both, fused" in line
    assert f"{train_readings} real training readings, {SMOKE.evaluation.test_cases} held-out test readings" in line
    assert line.endswith("; samples from the networks this run trained")
    assert str(run_dir.parent) not in line  # the published book names the run, not this machine's folders


def test_results_page_renders_the_metrics_files(tmp_path: Path) -> None:
    metrics = tmp_path / "run" / "metrics"
    metrics.mkdir(parents=True)
    pd.DataFrame({"label": ["real", "both"], "FRD": [1.25, 2.5], "FRD low": [1.0, 2.0], "FRD high": [1.5, 3.0]},
                 index=["real", "both"]).to_csv(metrics / "quality.csv")  # fmt: skip
    index = pd.MultiIndex.from_product(
        [["real", "real + generated"], ["Consolidation", "mean"]], names=["arm", "finding"]
    )
    pd.DataFrame({"auroc": [0.7, 0.7, 0.8, 0.8], "low": 0.5, "high": 0.9, "positives": 3}, index=index).to_csv(
        metrics / "classification.csv"
    )
    text = results_tables(tmp_path / "run")
    assert "| both | 2.500 [2.000, 3.000] |" in text
    assert "| mean | 0.700 | 0.800 |" in text
    assert "Not computed yet: run chapter 8" in text and "Not computed yet: run chapter 6" in text
    assert text.startswith("Run `run` (preset **?**)") and str(tmp_path) not in text  # no machine paths in the book
    path = write_results_tables(tmp_path, tmp_path / "run")
    assert path.read_text() == text


def test_label_csv_cohorts_read_their_images(tmp_path: Path) -> None:
    from radgazegen.errors import DataFormatError
    from radgazegen.evaluation.cohort import chexpert_cohort, longtail_cohort

    for k in range(3):
        save_png16(tmp_path / "img" / f"{k}.png", k / 4 + np.linspace(-0.1, 0.1, 30)[None, :].repeat(40, 0))  # contrast
    (tmp_path / "lt.csv").write_text("path,Mass,Hernia\nimg/0.png,1,0\nimg/1.png,0,1\nimg/2.png,0,0\n")
    cohort = longtail_cohort(tmp_path / "lt.csv", tmp_path, 16, progress=False)
    assert cohort.classes == ["Mass", "Hernia"] and cohort.labels.tolist() == [[1, 0], [0, 1], [0, 0]]
    assert cohort.images.shape == (3, 16, 16) and cohort.images[2].mean() == pytest.approx(0.5, abs=1e-3)
    (tmp_path / "test.csv").write_text("Path,Edema,Cardiomegaly\nimg/0.png,-1,1\nimg/1.png,,0\nimg/2.png,1,0\n")
    ones = chexpert_cohort(tmp_path / "test.csv", tmp_path, 16, classes=["Edema", "Cardiomegaly"], progress=False)
    zeros = chexpert_cohort(tmp_path / "test.csv", tmp_path, 16, classes=["Edema"], policy="zeros", progress=False)
    assert ones.labels[:, 0].tolist() == [1, 0, 1] and zeros.labels[:, 0].tolist() == [0, 0, 1]
    (tmp_path / "bad.csv").write_text("Path,Edema\nimg/missing.png,1\n")
    with pytest.raises(DataFormatError, match="missing.png"):
        chexpert_cohort(tmp_path / "bad.csv", tmp_path, 16, classes=["Edema"], progress=False)
