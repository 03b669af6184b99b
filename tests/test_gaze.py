"""Gaze heatmaps against the straightforward per-fixation recipe, plus the per-phrase maps."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from radgazegen.controls.gaze import (
    egd_heatmap,
    finding_heatmaps,
    fixation_heatmap,
    fixation_heatmaps,
    mentions,
    phrase_heatmaps,
    phrases,
    window_weights,
)
from radgazegen.controls.gaze_reference import per_fixation_heatmap
from radgazegen.data.reflacx import SHOWN_RECT_COLUMNS, DroppedFixationsWarning
from radgazegen.data.resample import area_matrix, area_resample


def random_fixations(rng: np.random.Generator, shape: tuple[int, int], count: int = 40) -> pd.DataFrame:
    height, width = shape
    start = np.cumsum(rng.uniform(0.1, 0.4, count))
    shown = np.tile([-20.3, 0.0, width + 20.6, height], (count, 1))
    shown[: count // 3] = [width * 0.25, height * 0.15, width * 0.8, height * 0.75]  # zoomed in
    frame = pd.DataFrame(
        {
            "timestamp_start_fixation": start,
            "timestamp_end_fixation": start + rng.uniform(0.05, 0.6, count),
            "x_position": rng.uniform(shown[:, 0].clip(0), shown[:, 2].clip(max=width - 1)),
            "y_position": rng.uniform(shown[:, 1].clip(0), shown[:, 3].clip(max=height - 1)),
            "angular_resolution_x_pixels_per_degree": rng.uniform(3, 9, count),
            "angular_resolution_y_pixels_per_degree": rng.uniform(3, 9, count),
        }
    )
    for i, column in enumerate(SHOWN_RECT_COLUMNS):
        frame[column] = shown[:, i]
    return frame


@pytest.mark.parametrize("shape", [(61, 47), (80, 80)])
def test_full_resolution_equals_the_per_fixation_recipe(shape: tuple[int, int]) -> None:
    fixations = random_fixations(np.random.default_rng(1), shape)
    ours = fixation_heatmap(fixations, shape)
    expected = per_fixation_heatmap(fixations, shape)
    assert ours.shape == shape and ours.dtype == np.float64
    assert np.abs(ours - expected).max() <= 1e-12 * expected.max()
    assert ours.sum() == pytest.approx(1.0, abs=1e-12)
    zoomed = fixations.iloc[: len(fixations) // 3]  # gaze while zoomed lands only in the shown rectangle
    zoomed_map = fixation_heatmap(zoomed, shape)
    x0, y0, x1, y1 = np.round(zoomed[list(SHOWN_RECT_COLUMNS)].iloc[0]).astype(int)
    assert (
        zoomed_map[:y0].sum() == 0
        and zoomed_map[y1:].sum() == 0
        and zoomed_map[:, :x0].sum() == 0
        and zoomed_map[:, x1:].sum() == 0
    )


@pytest.mark.parametrize("out_shape", [(16, 16), (23, 31), (61, 20)])
def test_resampled_maps_equal_area_resampling_of_the_full_map(out_shape: tuple[int, int]) -> None:
    shape = (61, 47)
    fixations = random_fixations(np.random.default_rng(2), shape)
    ours = fixation_heatmap(fixations, shape, out_shape)
    expected = area_resample(per_fixation_heatmap(fixations, shape), out_shape)
    assert ours.shape == out_shape
    assert np.abs(ours - expected).max() <= 1e-12 * expected.max()
    assert ours.sum() == pytest.approx(1.0, abs=1e-12)


def test_area_matrix_integer_factor_is_block_sum() -> None:
    image = np.random.default_rng(0).random((12, 8))
    assert np.allclose(area_resample(image, (3, 2)), image.reshape(3, 4, 2, 4).sum(axis=(1, 3)))
    assert np.allclose(area_matrix(7, 3).sum(axis=0), 1.0)


def test_batch_of_different_image_sizes_matches_single_cases() -> None:
    rng = np.random.default_rng(3)
    shapes = [(61, 47), (40, 52), (75, 30)]
    tables = [random_fixations(rng, s, count=int(rng.integers(5, 30))) for s in shapes]
    batch = fixation_heatmaps(tables, shapes, (20, 20))
    assert batch.shape == (3, 20, 20)
    for i, (table, shape) in enumerate(zip(tables, shapes, strict=True)):
        assert torch.allclose(batch[i], torch.as_tensor(fixation_heatmap(table, shape, (20, 20))), atol=1e-15)
    single32 = fixation_heatmaps(tables, shapes, (20, 20), dtype=torch.float32)
    assert single32.dtype == torch.float32 and torch.allclose(single32.double(), batch, atol=1e-6)


def test_out_of_image_fixations_are_dropped_and_reported() -> None:
    shape = (40, 40)
    fixations = random_fixations(np.random.default_rng(4), shape, count=10)
    fixations.loc[9, "x_position"] = -5.0  # inside the (wider) shown rectangle, outside the image
    with pytest.warns(DroppedFixationsWarning, match="0 outside the shown rectangle, 1 outside the image"):
        heat = fixation_heatmap(fixations, shape)
    expected = per_fixation_heatmap(fixations.iloc[:9], shape)
    assert np.abs(heat - expected).max() <= 1e-12 * expected.max()


def test_no_usable_fixation_is_an_error() -> None:
    fixations = random_fixations(np.random.default_rng(5), (30, 30), count=3)
    fixations["timestamp_end_fixation"] = fixations["timestamp_start_fixation"]
    with pytest.raises(ValueError, match="no fixation with positive duration"):
        fixation_heatmap(fixations, (30, 30))


def test_phrases_windows_and_negation() -> None:
    words = pd.DataFrame(
        {
            "word": ["small", "left", "effusion", ".", "no", "pneumothorax."],
            "timestamp_start_word": [1.0, 1.3, 1.6, 2.0, 5.0, 5.2],
            "timestamp_end_word": [1.2, 1.5, 2.0, 2.0, 5.1, 5.8],
        }
    )
    found = phrases(words)
    assert [(p.text, p.start, p.end) for p in found] == [
        ("small left effusion", 1.0, 2.0),
        ("no pneumothorax", 5.0, 5.8),
    ]
    fixations = pd.DataFrame(
        {"timestamp_start_fixation": [-1.0, 0.0, 2.4, 3.0], "timestamp_end_fixation": [-0.6, 0.4, 2.8, 3.5]}
    )
    assert np.allclose(window_weights(fixations, 1.0, 2.0, (1.5, 0.5)), [0.0, 0.4, 0.1, 0.0])
    assert mentions("Small left effusion", ["effusion"]) and not mentions("No pleural effusion", ["effusion"])
    assert not mentions("without effusion", ["effusion"])


def test_finding_heatmap_follows_the_gaze_around_its_sentence() -> None:
    shape = (50, 50)
    rows = []
    for start, x in ((0.0, 10.0), (0.5, 10.0), (3.0, 40.0), (3.5, 40.0)):
        rows.append(
            {
                "timestamp_start_fixation": start, "timestamp_end_fixation": start + 0.4, "x_position": x, "y_position": 25.0,
                "angular_resolution_x_pixels_per_degree": 3.0, "angular_resolution_y_pixels_per_degree": 3.0,
                "xmin_shown_from_image": 0, "ymin_shown_from_image": 0, "xmax_shown_from_image": 50, "ymax_shown_from_image": 50,
            }
        )  # fmt: skip
    fixations = pd.DataFrame(rows)
    words = pd.DataFrame(
        {
            "word": ["nodule.", "no", "effusion."],
            "timestamp_start_word": [1.0, 4.0, 4.3],
            "timestamp_end_word": [1.4, 4.2, 4.6],
        }
    )
    maps = finding_heatmaps(
        fixations, words, {"nodule": ["nodule"], "effusion": ["effusion"]}, shape, window=(1.0, 0.0)
    )
    assert list(maps) == ["nodule"]  # the effusion sentence is negated
    assert maps["nodule"][:, :25].sum() == pytest.approx(1.0)
    spans = phrase_heatmaps(fixations, [(1.0, 1.4), (10.0, 11.0)], shape, (10, 10), window=(1.0, 0.0))
    assert spans[0].sum() == pytest.approx(1.0) and spans[1].sum() == 0.0


def test_egd_heatmap_uses_a_fixed_sigma_and_drops_outside() -> None:
    fixations = pd.DataFrame(
        {"X_ORIGINAL": [10.0, 30.0, -4.0], "Y_ORIGINAL": [12.0, 5.0, 3.0], "FPOGD": [0.2, 0.6, 0.3]}
    )
    with pytest.warns(DroppedFixationsWarning, match="dropped 1 of 3 outside the image"):
        heat = egd_heatmap(fixations, (20, 40), sigma=2.0)
    rows, cols = np.mgrid[0:20, 0:40]
    expected = sum(
        d * np.exp(-0.5 * ((cols - x) ** 2 + (rows - y) ** 2) / 4.0) for x, y, d in [(10, 12, 0.2), (30, 5, 0.6)]
    )
    assert np.allclose(heat, expected / expected.sum(), atol=1e-14)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(6)
    shapes = [(300, 250), (280, 260)]
    tables = [random_fixations(rng, s, 200) for s in shapes]
    cpu = fixation_heatmaps(tables, shapes, (64, 64))
    gpu = fixation_heatmaps(tables, shapes, (64, 64), device="cuda")
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-12)


def test_phantom_gaze_during_a_finding_sentence_lands_on_the_finding(phantom_dir) -> None:
    from radgazegen.controls.gaze import sentence_heatmaps
    from radgazegen.data.images import load_mask
    from radgazegen.data.reflacx import ReflacxDataset

    truth = pd.read_csv(phantom_dir / "phantom" / "findings.csv")
    dataset = ReflacxDataset(phantom_dir)
    inside, chance = [], []
    for row in truth.itertuples(index=False):
        case = dataset.case(row.id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DroppedFixationsWarning)
            _, maps = sentence_heatmaps(case.fixations(), case.words(), case.image_shape)
        mask = load_mask(phantom_dir / row.mask)
        inside.append(maps[row.sentence][mask].sum())
        chance.append(mask.mean())
    assert len(inside) >= 3
    assert np.mean(inside) > 0.4 and np.mean(inside) > 4 * np.mean(chance)


def test_bad_shapes_and_missing_columns_are_named() -> None:
    fixations = random_fixations(np.random.default_rng(7), (30, 30), count=5)
    with pytest.raises(ValueError, match=r"out_shape must be \(height, width\).*\(0, 16\)"):
        fixation_heatmap(fixations, (30, 30), (0, 16))
    with pytest.raises(ValueError, match="out_shape must be"):
        fixation_heatmap(fixations, (30, 30), (16, 16, 3))
    with pytest.raises(ValueError, match="missing fixation column.*x_position"):
        fixation_heatmap(fixations.drop(columns=["x_position"]), (30, 30))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(timestamp_end_fixation=f["timestamp_start_fixation"] + np.nan), "is not a finite number"),
        (lambda f: f.assign(timestamp_start_fixation=-1e308, timestamp_end_fixation=1e308), "duration .* overflows"),
        (lambda f: f.assign(angular_resolution_x_pixels_per_degree=0.0), "must be positive"),
        (lambda f: f.assign(x_position=f["x_position"].astype(str) + "px"), r"column 'x_position' value '.*px'"),
    ],
)
def test_heatmap_of_bad_fixations_is_a_named_error(phantom_dir: Path, change, message: str) -> None:
    from radgazegen.data.reflacx import ReflacxDataset
    from radgazegen.errors import DataFormatError

    case = next(iter(ReflacxDataset(phantom_dir)))
    fixations = change(case.fixations())
    with pytest.raises(DataFormatError, match=rf"fixations.csv, row 1: .*{message}"):
        fixation_heatmap(fixations, case.image_shape, (32, 32))
    with pytest.raises(ValueError, match="sigma must be a positive number"):
        egd_heatmap(pd.DataFrame({"X_ORIGINAL": [1.0], "Y_ORIGINAL": [1.0], "FPOGD": [0.2]}), (8, 8), sigma=0.0)
