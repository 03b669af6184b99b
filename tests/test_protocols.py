"""The evaluation protocols, one test per table on a tiny study (smoke preset), and the claims they decide.

Also the regressions of the evaluation review: KID's spread, the FID feature network's data, set-distance
intervals that contain their value, the sample bank's key.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic import phantom_study

from radgazegen.evaluation import bank, protocols
from radgazegen.evaluation.claims import COLUMNS, HIGHER, LOWER, NOT_SUPPORTED, SUPPORTED, UNDECIDED, verdict
from radgazegen.evaluation.quality import frechet_from_rows
from radgazegen.evaluation.results import results_tables
from radgazegen.evaluation.stats import Estimate, bootstrap, half_sample
from radgazegen.evaluation.study import Study
from radgazegen.presets import get_preset

SMOKE = get_preset("smoke")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    return phantom_study(tmp_path_factory.mktemp("protocols"), SMOKE, ["canny", "gaze"], n=16, seed=5)


@pytest.fixture(scope="module")
def quality(study: Study) -> protocols.QualityEvaluation:
    return protocols.QualityEvaluation(study)


def _check_claims(claims, protocol: str) -> pd.DataFrame:
    from radgazegen.evaluation.claims import claims_frame

    frame = claims_frame(claims)
    assert list(frame.columns) == list(COLUMNS) and len(frame) and set(frame["protocol"]) <= {protocol, "ablation"}
    assert set(frame["verdict"]) <= {SUPPORTED, NOT_SUPPORTED, UNDECIDED}
    finite = frame.dropna(subset=["low", "high"])
    assert (finite["low"] <= finite["high"]).all()
    for claim in claims:
        assert claim.sentence().startswith(claim.verdict) and claim.metric in claim.sentence()
    return frame


# --- statistics ---------------------------------------------------------------------------------------------------


def test_verdicts_follow_the_interval_and_the_claimed_side() -> None:
    assert verdict(Estimate(-1.0, -2.0, -0.5, 10), LOWER) == SUPPORTED
    assert verdict(Estimate(-1.0, -2.0, -0.5, 10), HIGHER) == NOT_SUPPORTED
    assert verdict(Estimate(0.1, -0.2, 0.4, 10), HIGHER) == UNDECIDED
    assert verdict(Estimate(0.1, float("nan"), float("nan"), 2), HIGHER) == UNDECIDED
    assert verdict(Estimate(2.6, 2.1, 3.0, 10), HIGHER, threshold=2) == SUPPORTED  # a ratio that must reach 2x
    assert verdict(Estimate(2.6, 1.9, 3.0, 10), HIGHER, threshold=2) == UNDECIDED
    assert verdict(Estimate(0.7, 0.65, 0.8, 10), LOWER, threshold=0.6) == NOT_SUPPORTED
    with pytest.raises(ValueError, match="better"):
        verdict(Estimate(0.0, 0.0, 0.0, 1), "bigger")


def test_half_sampling_interval_of_a_set_distance_contains_it_where_the_bootstrap_does_not() -> None:
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(40, 30)), rng.normal(0.1, 1.0, size=(40, 30))
    half = half_sample(lambda rows: frechet_from_rows(real, fake[rows]), len(fake), n_rep=200)
    assert half.low < half.value < half.high
    boot = bootstrap(lambda rows: frechet_from_rows(real, fake[rows]), np.arange(len(fake)), n_boot=200)
    assert boot.low > boot.value  # repeated images inflate a set distance: the defect half-sampling removes
    mean = half_sample(lambda rows: float(fake[rows, 0].mean()), len(fake), n_rep=2000, seed=1)
    se = fake[:, 0].std(ddof=1) / np.sqrt(len(fake))  # for a mean the interval is the usual one
    assert (mean.high - mean.low) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert np.isnan(half_sample(np.mean, 3).low)


# --- the tables ---------------------------------------------------------------------------------------------------


def test_quality_table_kid_spread_intervals_and_claims(study: Study, quality: protocols.QualityEvaluation) -> None:
    table = quality.table()
    assert list(table.index) == [protocols.REAL, *[c.name for c in study.configurations]]
    for column in ("FRD", "FRD (torch, Original)", "FID (CXR)"):
        assert (table[f"{column} low"] <= table[column]).all() and (table[column] <= table[f"{column} high"]).all()
    assert (table["KID (CXR) std"] > 0).all()  # subsets are half of each set, not permutations of it
    assert table["FRD (CheXGenBench)"].notna().all()
    assert len(study.conditions) < 7 and table["precision (CXR)"].isna().all()  # PRDC (k = 5) needs 7 images a set
    assert table.loc["both", "images"] == len(study.conditions)
    frame = _check_claims(quality.claims(), "quality")
    both_text = frame[frame["comparison"] == "both − text"].set_index("metric")
    assert set(both_text.index) == {"FRD", "FID (CXR)", "SSIM to real", "MS-SSIM"}
    expected = table.loc["both", "FRD"] - table.loc["text", "FRD"]
    assert both_text.loc["FRD", "difference"] == pytest.approx(expected, rel=1e-9)
    assert {"both − rad", "both − gaze"} <= set(frame["comparison"])


def test_headline_frd_is_frd_score_v1_on_the_same_images(study: Study, quality: protocols.QualityEvaluation,
                                                         tmp_path: Path) -> None:  # fmt: skip
    import contextlib
    import io

    from frd_score import compute_frd

    from radgazegen.data.images import save_png16

    for name, images in (("real", study.condition_cohort.images), ("fake", quality.sets["both"].images)):
        for k, image in enumerate(images):
            save_png16(tmp_path / name / f"{k:03d}.png", image)
    with contextlib.redirect_stdout(io.StringIO()):
        expected = compute_frd([str(tmp_path / "real"), str(tmp_path / "fake")], frd_version="v1", num_workers=1)
    assert quality.distance("FRD", "both") == pytest.approx(expected, rel=1e-6)


def test_quality_rows_of_chexgenbench_with_local_inception_and_rad_dino(study: Study, tmp_path: Path) -> None:
    """The field's standard rows: FID / KID on Inception and RAD-DINO (local files), PRDC on RAD-DINO, and
    CheXGenBench's FRD (frd-score v1 of the 8-bit images)."""
    from synthetic import tiny_rad_dino
    from torch import nn

    from radgazegen.evaluation import frd
    from radgazegen.evaluation.protocols.quality import eight_bit

    class Energies(nn.Module):  # an Inception stand-in: (n, 3, H, W) in [0, 255] -> 4 features
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, kernel_size=5, stride=4)

        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return (self.conv(x / 255.0 - 0.5) ** 2).mean((2, 3))

    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(Energies().eval()), str(tmp_path / "inception.pt"))
    tiny_rad_dino(tmp_path / "rad-dino")
    evaluation = protocols.QualityEvaluation(study, inception_weights=tmp_path / "inception.pt",
                                             rad_dino=tmp_path / "rad-dino", configurations=["both"])  # fmt: skip
    table = evaluation.table()
    for column in ("FID (Inception)", "KID (Inception)", "FID (RAD-DINO)", "KID (RAD-DINO)", "FRD (CheXGenBench)"):
        assert table[column].notna().all(), column
    assert evaluation.prdc_network == "RAD-DINO" and "precision (CXR)" not in table.columns
    assert "coverage (RAD-DINO)" in table.columns  # NaN here: the smoke sets have 6 images, PRDC needs 7
    assert (table["KID (RAD-DINO) std"] < 1e-9).all()  # CheXGenBench's subsets are the whole (smaller) set
    expected = frd.frechet_radiomics_distance(frd.frd_v1_features(eight_bit(study.condition_cohort.images)),
                                              frd.frd_v1_features(eight_bit(evaluation.sets["both"].images)))  # fmt: skip
    assert table.loc["both", "FRD (CheXGenBench)"] == pytest.approx(expected, rel=1e-9)
    assert table.loc["both", "FRD (CheXGenBench)"] != table.loc["both", "FRD"]


def test_fid_feature_network_never_saw_a_reference_image(study: Study, quality: protocols.QualityEvaluation) -> None:
    trained_on = set(study.feature_cohort.ids)
    assert trained_on and not trained_on & {case.id for case in study.conditions}
    held_out = {image.tobytes() for image in study.test.images}  # the phantom test cohort reuses reading ids
    assert not held_out & {image.tobytes() for image in study.feature_cohort.images}
    stamp = json.loads((study.run_dir / "classifiers" / "features" / "training.json").read_text())
    assert stamp["images"] == len(study.feature_cohort)
    features = study.feature_classifier.features(study.condition_cohort.images)
    np.testing.assert_allclose(quality.reference_rows["FID (CXR)"], features, rtol=1e-6)


def test_classification_table_and_claim(study: Study) -> None:
    table = protocols.classification_table(study)
    assert set(table.index.get_level_values("arm")) == {"real", "real + generated", "generated only"}
    frame = _check_claims(protocols.classification_claims(study), "classification")
    means = table.xs("mean", level="finding")["auroc"]
    assert frame.loc[0, "difference"] == pytest.approx(means["real + generated"] - means["real"], abs=1e-12)


def test_longtail_table_and_claims(study: Study) -> None:
    table, groups = protocols.longtail_table(study)
    assert set(table.index.get_level_values("arm")) == {"none", "class-balanced loss", "generated tail"}
    assert set(groups["group"]) <= {"head", "medium", "tail"}
    frame = _check_claims(protocols.longtail_claims(study), "long tail")
    assert list(frame["metric"]) == ["balanced accuracy", "tail accuracy"]
    balanced = table.xs("balanced", level="metric")["accuracy"]
    assert frame.loc[0, "difference"] == pytest.approx(balanced["generated tail"] - balanced["none"], abs=1e-12)


def test_adherence_and_ablation_tables_and_claims(study: Study, quality: protocols.QualityEvaluation) -> None:
    tables = protocols.adherence_tables(study)
    summary = protocols.adherence_table(study, tables)
    assert protocols.REAL in summary.columns and "both" in summary.columns
    assert ("canny", "correlation") in summary.index and ("gaze", "finding share") in summary.index
    frame = _check_claims(protocols.adherence_claims(study, tables), "adherence")
    better = frame.set_index("metric")["better"]
    assert better["canny correlation"] == HIGHER
    assert better.get("gaze centroid distance", LOWER) == LOWER  # NaN when the 1-epoch segmenter finds nothing
    correlation = frame.set_index("metric").loc["canny correlation", "difference"]
    assert correlation == pytest.approx(summary.loc[("canny", "correlation"), "both"]
                                        - summary.loc[("canny", "correlation"), "text"], abs=1e-9)  # fmt: skip
    ablation = protocols.ablation_table(study, quality.table(), summary)
    assert list(ablation.index) == [c.name for c in study.configurations]
    assert np.isfinite(ablation["AUROC real + generated"]).all()


def test_attribution_table(study: Study) -> None:
    table, maps = protocols.attribution_table(study, method="grad-cam")
    assert set(table["images"]) == {"real", "generated"} and {"nss", "cc", "auc_judd"} <= set(table.columns)
    assert maps["generated"][0].shape[0] == len(study.conditions)


def test_results_page_leads_with_the_claims(study: Study, quality: protocols.QualityEvaluation) -> None:
    from radgazegen.evaluation.claims import claims_frame

    study.save_table("claims_quality", claims_frame(quality.claims()))
    text = results_tables(study.run_dir)
    assert text.index("The paper's claims") < text.index("Quality and diversity")
    assert "| RadGazeGen (Rad-CN + HVA-CN) is closer to real images than SD text only | FRD | both − text |" in text


# --- the sample bank's key ----------------------------------------------------------------------------------------


def test_retrained_weights_in_the_same_folder_are_sampled_afresh(study: Study, tmp_path: Path) -> None:
    pipe = study.pipe
    configuration = study.configuration("both")
    cases = study.conditions[:2]
    first = bank.generate(pipe, configuration, cases, study.run_dir, SMOKE, folder=tmp_path, progress=False)
    text_key = pipe.digest("text", ())
    with torch.no_grad():
        for parameter in pipe.controlnets["gaze"].parameters():
            parameter.add_(0.05)  # "retrained" in place: same folder, other weights
    try:
        assert pipe.digest("text", ()) == text_key  # the text-only samples do not depend on a ControlNet
        again = bank.generate(pipe, configuration, cases, study.run_dir, SMOKE, folder=tmp_path, progress=False)
        assert np.abs(again.images - first.images).max() > 1e-4
    finally:
        with torch.no_grad():
            for parameter in pipe.controlnets["gaze"].parameters():
                parameter.sub_(0.05)


def test_placement_protocol_moves_the_gaze_for_gaze_arms_only(study: Study) -> None:
    from radgazegen.evaluation.placement import MOVES, placement_claims, placement_summary
    from radgazegen.evaluation.results import placement_view
    from radgazegen.plots import placement_figure

    result = protocols.placement_protocol(study)
    assert [arm.name for arm in result.arms] == ["text", "rad", "gaze", "both", "perturbed"]
    assert set(result.images["text"]) == {"original"} and set(result.images["gaze"]) == set(MOVES)
    n = study.settings.placement_readings
    assert len(result.cohort) == n and all(images.shape == (n, 32, 32) for images in result.images["both"].values())
    assert "right" not in " ".join(result.cohort.prompts).lower()
    table = result.table
    assert set(table["arm"]) == {"text", "rad", "gaze", "both", "perturbed"} and set(table["move"]) == set(MOVES)
    follows = table[(table["arm"] == "text") & (table["metric"] == "follows")]["value"].dropna()
    assert (follows.abs() < 1e-9).all()  # an image that does not see the gaze cannot move with it
    _check_claims(placement_claims(table, n_boot=50), "placement")
    summary = placement_summary(table, n_boot=50)
    assert {"mean", "difference", "ratio"} <= set(summary.columns)
    pd.testing.assert_frame_equal(result.summary(n_boot=50), summary)
    view = placement_view(summary)
    assert list(view.index) == ["text", "rad", "gaze", "both", "perturbed"] and "follows" in view.columns
    for _, row in summary[summary["arm"] != "text"].iterrows():  # each paired estimate is shown with its interval
        cell = view.loc[row["arm"], row["metric"]]
        assert ("×text" in cell) == pd.notna(row.get("ratio"))
    made = pd.DataFrame([{"arm": "text", "metric": "hit", "mean": 0.2},
                         {"arm": "gaze", "metric": "hit", "mean": 0.5, "difference": 0.3, "difference low": 0.1,
                          "difference high": 0.5, "ratio": 2.5, "ratio low": 1.5, "ratio high": 4.0}])  # fmt: skip
    assert placement_view(made).loc["gaze", "hit"] == "0.500; −text 0.300 [0.100, 0.500]; ×text 2.500 [1.500, 4.000]"
    panels = result.panels(1)
    assert panels.prompt == result.cohort.prompts[1] and set(panels.targets) == set(MOVES)
    np.testing.assert_array_equal(panels.images["text"]["mirrored"], result.images["text"]["original"][1])
    np.testing.assert_array_equal(panels.images["gaze"]["mirrored"], result.images["gaze"]["mirrored"][1])
    np.testing.assert_array_equal(panels.targets["mirrored"], panels.targets["original"][:, ::-1])
    assert panels.findings["gaze"]["shifted"].dtype == bool and panels.regions["original"].any()
    assert np.abs(result.images["perturbed"]["original"] - result.images["both"]["original"]).max() > 1e-4
    figure = placement_figure(panels)
    assert len(figure.axes) == 3 * 6  # three moves; the target row and five arms
    cached = study.run_dir / "samples" / "placement" / "gaze" / "mirrored"
    stamp = {p.name: p.stat().st_mtime_ns for p in cached.glob("*.png")}
    again = protocols.placement_protocol(study)  # a second run reads the cached images
    assert {p.name: p.stat().st_mtime_ns for p in cached.glob("*.png")} == stamp
    pd.testing.assert_frame_equal(again.table, table)


def test_results_page_leads_with_the_placement_figure_and_claims(study: Study, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from radgazegen.evaluation.claims import claims_frame
    from radgazegen.evaluation.results import PLACEMENT_FIGURE, write_results_tables

    result = protocols.placement_protocol(study)
    study.save_table("placement", result.summary(n_boot=20).set_index("arm"))
    study.save_table("claims_placement", claims_frame(result.claims(n_boot=20)))
    plt.figure().savefig(study.run_dir / "metrics" / PLACEMENT_FIGURE)
    page = write_results_tables(tmp_path, study.run_dir)
    text = page.read_text()
    assert (page.parent / PLACEMENT_FIGURE).is_file()
    assert text.index(f"](chapters/{PLACEMENT_FIGURE})") < text.index("The paper's claims") < text.index("Gaze placement")
    claims_rows = text[text.index("The paper's claims") : text.index("### Gaze placement")]
    placement_row = claims_rows.index("| the finding goes where the radiologist looked |")
    if "closer to real images" in claims_rows:  # saved by the quality test: placement claims come first
        assert placement_row < claims_rows.index("closer to real images")


def test_privacy_audit_claims_frontier_and_target(study: Study, quality: protocols.QualityEvaluation) -> None:
    """The audit on the smoke study: every configuration, both spaces, roles per contributor, paired claims, the
    frontier of every utility measure, the target's criteria and the results page's sections."""
    import matplotlib.pyplot as plt

    from radgazegen.evaluation.protocols.frontier import placement_arm
    from radgazegen.evaluation.protocols.privacy import ANY, DONOR, FEATURES, PIXELS, REPORT
    from radgazegen.evaluation.results import interval_view, privacy_view, target_view
    from radgazegen.plots import frontier_plot, memorization_plot, privacy_cases, reidentification_plot

    study.save_table("quality", quality.table())
    names = ["text", "gaze", "both", "donor", "perturbed"]
    audit = protocols.PrivacyAudit(study, configurations=names)
    summary = audit.summary()
    assert set(summary.index.get_level_values("configuration")) == set(names)
    assert set(summary.index.get_level_values("space")) == {PIXELS, FEATURES}
    assert set(summary.xs("donor", level="configuration").index.get_level_values("role")) == {REPORT, ANY, DONOR}
    assert set(summary.xs("both", level="configuration").index.get_level_values("role")) == {REPORT, ANY}
    gallery = len(audit.gallery)
    assert summary["chance top-1"].xs(("both", PIXELS, ANY)) == pytest.approx(1 / gallery)
    assert summary["chance top-1"].xs(("donor", PIXELS, ANY)) == pytest.approx(2 / gallery)
    for metric in ("top-1", "top-5", "memorized", "held-out share"):
        assert ((summary[f"{metric} low"] <= summary[metric] + 1e-12) & (summary[metric] <= summary[f"{metric} high"] + 1e-12)).all()
    both = audit.rows("both", PIXELS)
    assert len(both) == len(study.conditions) and (both["top-1"] <= both["top-5"]).all()
    assert both["reading"].tolist() == [case.id for case in study.conditions]
    frame = _check_claims(audit.claims(), "privacy")
    assert set(frame["comparison"]) == {f"{n} − text" for n in names if n != "text"} and len(frame) == 4 * 2 * 2
    view = privacy_view(summary)
    assert list(view.index) == names and view.columns[0] == "chance top-1" and len(view.columns) == 1 + 2 * 3
    assert view.loc["both", f"{PIXELS}: top-1"].count("[") == 1
    cases = audit.worst_cases("donor", n=2)
    assert len(cases) == 2 and set(cases[0]["contributors"]) == {REPORT, DONOR}
    assert cases[0]["margin"] <= cases[1]["margin"]
    assert len(privacy_cases(cases, "donor").axes) == 2 * 4
    assert len(reidentification_plot(summary).axes) == 2
    distances = {n: audit.rows(n, PIXELS)["nearest distance"] for n in names}
    assert len(memorization_plot(distances, audit.held_distance[PIXELS], PIXELS).axes[0].collections) == len(names) + 1
    placement = protocols.placement_protocol(study)
    arms = {n: placement_arm(study.configuration(n), placement.arms) for n in names}
    assert arms == {"text": "text", "gaze": "gaze", "both": "both", "donor": "both", "perturbed": "perturbed"}
    found = protocols.privacy_frontier(study, audit, placement)
    table = found.table
    assert list(table.index) == names and table.loc["donor", "anatomy"] == "a donor's"
    for column in ("top-1 (pixels)", "FRD", "FID (CXR)", "anatomy adherence", "hit rate", "mean AUROC",
                   "balanced accuracy"):  # fmt: skip
        assert table[column].notna().all(), column
    targets = found.targets()
    assert set(targets.index.get_level_values("configuration")) == {"donor", "perturbed"}
    assert len(targets.xs("donor", level="configuration")) == 2 * 3 + 2  # per space: top-1, top-5, memorized; + 2
    verdicts = found.verdicts()
    for name, verdict_text in verdicts.items():
        met = targets.xs(name, level="configuration")["met"]
        assert (verdict_text == "met") == bool(met.all())
    assert list(target_view(targets).columns) == ["estimate [95% interval]", "met"]
    assert "[" in interval_view(table.drop(columns=["label"])).loc["both", "hit rate"]
    assert len(frontier_plot(table, "top-1 (pixels)", ["FRD", "hit rate"]).axes) == 2
    plt.close("all")
    study.save_table("privacy", summary)
    study.save_table("frontier", table)
    study.save_table("privacy_target", targets)
    text = results_tables(study.run_dir)
    assert "### Privacy: do the samples re-draw" in text and "### The privacy–utility frontier" in text
    assert "not computed yet: run chapter 6" not in text.lower()
