"""Hypothesis regions and control-adherence measures."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from radgazegen.controls.lungs import segment_lungs
from radgazegen.controls.registry import ControlInputs, ControlRegistry, ControlSettings
from radgazegen.data.images import load_image
from radgazegen.data.reflacx import ReflacxDataset
from radgazegen.evaluation.adherence import adherence, anomaly_mask, finding_share, map_correlation, summarise
from radgazegen.controls.hypotheses import gaze_region, hotspot, hypothesis_gaze


def test_gaze_region_thresholds_at_a_share_of_the_peak_and_dilates() -> None:
    heatmap = np.zeros((9, 9))
    heatmap[4, 4], heatmap[4, 5], heatmap[0, 0] = 1.0, 0.6, 0.4
    np.testing.assert_array_equal(np.argwhere(gaze_region(heatmap, 0.5, dilation=0)), [[4, 4], [4, 5]])
    grown = gaze_region(heatmap, 0.5, dilation=1)
    assert grown.sum() == 2 + 6 and not grown[0, 0]  # the cross-shaped neighbours of both pixels
    for bad, message in [(np.zeros((4, 4)), "empty"), (np.full((4, 4), np.nan), "finite")]:
        with pytest.raises(ValueError, match=message):
            gaze_region(bad)
    with pytest.raises(ValueError, match="threshold"):
        gaze_region(heatmap, 1.5)


def test_hotspot_peaks_where_placed_and_hypothesis_gaze_is_a_soft_region() -> None:
    spot = hotspot(32, (0.25, 0.75), 0.1)
    assert np.unravel_index(spot.argmax(), spot.shape) == (8, 24) and spot.max() == pytest.approx(1.0)
    soft = hypothesis_gaze(spot)
    assert soft.max() == pytest.approx(1.0) and soft.dtype == np.float32
    assert soft[8, 24] > 0.9 and soft[28, 4] < 1e-6
    with pytest.raises(ValueError, match="centre"):
        hotspot(32, (1.5, 0.5), 0.1)


def test_map_correlation_is_one_for_the_same_map_and_tolerates_a_pixel_shift() -> None:
    edges = np.zeros((32, 32))
    edges[8:24, 16] = 1
    assert map_correlation(edges, edges) == pytest.approx(1.0)
    shifted = np.roll(edges, 1, axis=1)
    share = 16 / 1024
    assert map_correlation(edges, shifted, sigma=0) == pytest.approx(-share / (1 - share))  # disjoint lines
    assert map_correlation(edges, shifted, sigma=1.0) > 0.5
    assert map_correlation(edges, np.zeros_like(edges)) == 0.0


def test_finding_share_counts_anomalous_lung_pixels_inside_the_region() -> None:
    rng = np.random.default_rng(0)
    lungs = np.zeros((40, 40), bool)
    lungs[5:35, 5:35] = True
    image = 0.3 + 0.01 * rng.standard_normal((40, 40))
    image[10:14, 10:14] = 0.9  # a bright finding
    region = np.zeros_like(lungs)
    region[8:16, 8:16] = True
    assert anomaly_mask(image, lungs)[10:14, 10:14].all()
    assert finding_share(image, lungs, region) > 0.9
    assert finding_share(image, lungs, ~region & lungs) < 0.1
    assert np.isnan(finding_share(np.full((40, 40), 0.3), lungs, region))


def test_real_images_adhere_to_their_own_controls(phantom_dir) -> None:
    dataset = ReflacxDataset(phantom_dir)
    case = next(iter(dataset))
    image, _ = load_image(case.image_path)
    settings = ControlSettings(size=48)
    registry = ControlRegistry(settings)
    small = ndimage.zoom(image, (48 / image.shape[0], 48 / image.shape[1]), order=1)
    lungs = segment_lungs(image)
    given = registry.controls(["canny"], ControlInputs(image=small))
    given["lungs"] = ndimage.zoom(lungs.astype(float), (48 / image.shape[0], 48 / image.shape[1]), order=0)
    table = adherence(small[None], {k: v[None] for k, v in given.items()}, registry)
    values = table.set_index("control")["value"]
    assert values["canny"] == pytest.approx(1.0, abs=1e-6)
    assert values["lungs"] > 0.8
    noise = np.random.default_rng(0).random((1, 48, 48))
    worse = adherence(noise, {k: v[None] for k, v in given.items()}, registry).set_index("control")["value"]
    assert worse["canny"] < 0.3
    summary = summarise({"real": table, "noise": worse.reset_index().assign(image=0, metric=table["metric"])})
    assert list(summary.columns) == ["real", "noise"]
