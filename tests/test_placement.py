"""Gaze placement: location-free prompts, the finding-focused gaze control, the placement cohort and its scores."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from radgazegen.controls.extract import finding_keywords
from radgazegen.controls.registry import ControlInputs, ControlRegistry, ControlSettings
from radgazegen.data.images import load_image
from radgazegen.data.phantom import generate_phantom
from radgazegen.data.phantom.truth import finding_masks
from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.data.reports import LEVELS, SIDES, strip_locations
from radgazegen.evaluation import placement
from radgazegen.evaluation.claims import SUPPORTED, UNDECIDED
from radgazegen.models.train import training_prompts
from radgazegen.presets import get_preset

LOCATION = re.compile(rf"\b({'|'.join((*SIDES, *LEVELS, 'zone'))})\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def focal_dir(tmp_path_factory):
    return generate_phantom(tmp_path_factory.mktemp("focal") / "reflacx", n=6, seed=5, size=(192, 160),
                            findings=placement.FOCAL_FINDINGS, progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def normal_dir(tmp_path_factory):
    return generate_phantom(tmp_path_factory.mktemp("normal") / "reflacx", n=2, seed=6, size=(192, 160), findings=[],
                            progress=False)  # fmt: skip


def test_strip_locations_removes_every_location_word_and_keeps_the_finding(phantom_dir, focal_dir):
    for case in [*ReflacxDataset(phantom_dir), *ReflacxDataset(focal_dir)]:
        report = case.transcription()
        stripped = strip_locations(report)
        assert not LOCATION.search(stripped), (report, stripped)
        for label in case.positive_labels():
            for word in finding_keywords(case)[label][:1]:
                assert (word in stripped.lower()) == (word in report.lower())
        assert stripped.count(".") == report.count(".")  # no sentence lost
    assert strip_locations("No pleural effusion. No pneumothorax.") == "No pleural effusion. No pneumothorax."
    assert strip_locations("There is a 7 mm right lower zone nodule.") == "There is a 7 mm nodule."


def test_training_prompts_drop_locations_at_the_preset_rate():
    import torch

    settings = get_preset("cpu").train
    reports = ["Patchy consolidation in the right lower zone."] * 400
    torch.manual_seed(0)
    never = training_prompts(reports, dataclasses.replace(settings, prompt_dropout=0.0, location_dropout=0.0))
    always = training_prompts(reports, dataclasses.replace(settings, prompt_dropout=0.0, location_dropout=1.0))
    assert set(never) == {reports[0]} and set(always) == {"Patchy consolidation."}
    half = training_prompts(reports, dataclasses.replace(settings, prompt_dropout=0.1, location_dropout=0.5))
    counts = pd.Series(half).value_counts()
    assert 0.05 < counts[""] / 400 < 0.15
    assert 0.35 < counts["Patchy consolidation."] / 400 < 0.55
    assert get_preset("paper").train.location_dropout == 0.0  # the paper trains on whole reports


def test_phantom_can_draw_one_named_finding_per_reading(focal_dir, normal_dir, tmp_path):
    for case in ReflacxDataset(focal_dir):
        assert len(case.positive_labels()) == 1 and placement.is_placement_reading(case)
    assert all(not case.positive_labels() for case in ReflacxDataset(normal_dir))
    with pytest.raises(ValueError, match="unknown phantom finding"):
        generate_phantom(tmp_path / "x", n=1, findings=["tumour"], progress=False)


def test_finding_focused_gaze_concentrates_on_the_finding(focal_dir, normal_dir):
    registry = ControlRegistry(ControlSettings(size=32))
    inside = {"gaze": [], "gaze_findings": []}
    cases = list(ReflacxDataset(focal_dir))
    truth = finding_masks(focal_dir, [c.id for c in cases], 32)
    for case, mask in zip(cases, truth, strict=True):
        image, _ = load_image(case.image_path)
        maps = registry.controls(["gaze", "gaze_findings"], ControlInputs(
            image, case.fixations(), words=case.words(), findings=finding_keywords(case)))  # fmt: skip
        for name in inside:
            assert maps[name].max() == pytest.approx(1.0)
            inside[name].append((maps[name] * mask).sum() / maps[name].sum())
    assert np.mean(inside["gaze_findings"]) > 1.5 * np.mean(inside["gaze"])
    normal = next(iter(ReflacxDataset(normal_dir)))
    image, _ = load_image(normal.image_path)
    empty = registry.controls(["gaze_findings"], ControlInputs(image, normal.fixations(), words=normal.words(),
                                                                findings=finding_keywords(normal)))  # fmt: skip
    assert not empty["gaze_findings"].any()
    with pytest.raises(ValueError, match="needs fixations, words and findings"):
        registry.controls(["gaze_findings"], ControlInputs(image, normal.fixations()))


def test_moves_and_zone_shift():
    maps = np.zeros((2, 16, 16))
    maps[0, 3, 2] = maps[1, 12, 13] = 1.0
    assert np.array_equal(placement.move(placement.move(maps, "mirrored"), "mirrored"), maps)
    assert placement.move(maps, "mirrored")[0, 3, 13] == 1.0
    shifted = placement.move(maps, "shifted", np.array([4, -5]))
    assert shifted[0, 7, 2] == 1.0 and shifted[1, 7, 13] == 1.0 and shifted.sum() == 2
    with pytest.raises(ValueError, match="unknown move"):
        placement.move(maps, "rotated")
    lungs = np.zeros((16, 16), bool)
    lungs[1:13] = True
    assert placement.zone_shift(maps[0], lungs) == 4 and placement.zone_shift(maps[1], lungs) == -4


def _blob(centre, size=32, radius=3.0):
    rows, cols = np.mgrid[0:size, 0:size]
    return np.hypot(rows - centre[0], cols - centre[1])


def test_placement_scores_and_follow():
    targets = np.stack([np.exp(-_blob(c) ** 2 / 8) for c in [(8, 8), (8, 8)]])
    masks = np.stack([_blob((8, 8)) <= 2, np.zeros((32, 32), bool)])
    scores = placement.placement_scores(masks, targets)
    assert scores.loc[0, "finding share"] == 1.0 and scores.loc[0, "hit"] == 1.0
    assert scores.loc[0, "centroid distance"] == pytest.approx(0.0, abs=1e-3)
    assert scores.loc[1, "detected"] == 0.0 and scores.loc[1, "hit"] == 0.0 and np.isnan(scores.loc[1, "finding share"])
    moved_targets = placement.move(targets, "mirrored")
    followed = placement.placement_scores(placement.move(masks, "mirrored"), moved_targets)
    stayed = placement.placement_scores(masks, moved_targets)
    assert placement.follow_scores(scores, followed)[0] == pytest.approx(1.0, abs=1e-3)
    assert placement.follow_scores(scores, stayed)[0] == pytest.approx(0.0, abs=1e-3)
    assert stayed.loc[0, "hit"] == 0.0


def test_placement_claims_are_paired_and_decided():
    rng = np.random.default_rng(0)
    rows = []
    for k in range(40):
        for how in placement.MOVES:
            chance = rng.uniform(0.0, 0.3)
            for arm, share in (("text", chance), ("gaze", chance + rng.uniform(0.3, 0.6)), ("both", chance)):
                rows.append((arm, f"r{k}", how, "finding share", share))
    table = pd.DataFrame(rows, columns=["arm", "reading", "move", "metric", "value"])
    claims = {c.first: c for c in placement.placement_claims(table, n_boot=200)}
    assert claims["gaze"].verdict == SUPPORTED and claims["both"].verdict == UNDECIDED
    assert claims["both"].estimate.value == pytest.approx(0.0)
    summary = placement.placement_summary(table, n_boot=200).set_index(["arm", "metric"])
    assert summary.loc[("gaze", "finding share"), "ratio low"] > 1.0


def test_follows_counts_the_readings_it_is_estimated_on():
    """Text only's `follows` is NaN where it located nothing; the gaze arm's estimate and its n ignore that."""
    rows = []
    for k in range(6):
        for how in placement.MOVES[1:]:
            rows += [("text", f"r{k}", how, "follows", np.nan if k % 2 else 0.0),
                     ("gaze", f"r{k}", how, "follows", 0.9)]  # fmt: skip
    table = pd.DataFrame(rows, columns=["arm", "reading", "move", "metric", "value"])
    summary = placement.placement_summary(table, n_boot=50).set_index(["arm", "metric"])
    assert summary.loc[("gaze", "follows"), "readings"] == 6
    assert summary.loc[("gaze", "follows"), "difference"] == pytest.approx(0.9)
    claim = next(c for c in placement.placement_claims(table, n_boot=50) if c.metric == "follows")
    assert claim.estimate.n == 6
