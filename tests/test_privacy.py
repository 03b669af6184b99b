"""The privacy audit's pieces: perturbed controls, donors, similarity spaces, re-identification and memorization."""

from __future__ import annotations

import numpy as np
import pytest

from radgazegen.controls.perturb import Perturbation, deformation, perturb_maps


def _maps(size: int = 48) -> dict[str, np.ndarray]:
    rows, cols = np.indices((size, size))
    lungs = (((rows - 24) / 16) ** 2 + ((cols - 14) / 8) ** 2 < 1) | (((rows - 24) / 16) ** 2 + ((cols - 34) / 8) ** 2 < 1)
    edges = np.zeros((size, size))
    edges[10:40, 10] = edges[10:40, 30] = edges[20, 5:45] = 1
    texture = np.clip(np.sin(rows / 3.0) * np.cos(cols / 5.0) * 0.5 + 0.5, 0, 1)
    gaze = np.exp(-((rows - 20) ** 2 + (cols - 30) ** 2) / 30.0)
    return {"canny": edges, "lungs": lungs.astype(float), "texture:glcm_Contrast": texture, "gaze_findings": gaze}


def test_perturbation_is_seeded_keeps_kinds_and_leaves_gaze_alone() -> None:
    maps = _maps()
    first, again, other = perturb_maps(maps, 7), perturb_maps(maps, 7), perturb_maps(maps, 8)
    for name in maps:
        np.testing.assert_array_equal(first[name], again[name])
        assert first[name].dtype == np.float32 and 0 <= first[name].min() and first[name].max() <= 1
    np.testing.assert_array_equal(first["gaze_findings"], maps["gaze_findings"].astype(np.float32))
    assert set(np.unique(first["lungs"])) <= {0.0, 1.0} and set(np.unique(first["canny"])) <= {0.0, 1.0}
    assert any(np.abs(first[n] - other[n]).max() > 0 for n in ("canny", "lungs", "texture:glcm_Contrast"))
    # the lungs move but keep roughly their area; edges are thinned; texture is moved and smoothed
    area, moved_area = maps["lungs"].sum(), first["lungs"].sum()
    assert 0.7 * area < moved_area < 1.3 * area and np.abs(first["lungs"] - maps["lungs"]).sum() > 0.1 * area
    assert first["canny"].sum() < 0.9 * maps["canny"].sum()
    assert np.corrcoef(first["texture:glcm_Contrast"].ravel(), maps["texture:glcm_Contrast"].ravel())[0, 1] < 0.9


def test_no_perturbation_is_the_identity_and_bad_settings_are_named() -> None:
    maps = _maps()
    still = Perturbation(rotation=0, scale=0, shift=0, elastic=0, edge_keep=1.0, blur=0)
    coords = deformation(48, 3, still)
    np.testing.assert_allclose(coords, np.indices((48, 48)), atol=1e-9)
    same = perturb_maps(maps, 3, still)
    for name in ("lungs", "texture:glcm_Contrast", "canny"):
        np.testing.assert_allclose(same[name], maps[name], atol=1e-6)
    with pytest.raises(ValueError, match="edge_keep"):
        Perturbation(edge_keep=0)
    with pytest.raises(ValueError, match="rotation"):
        Perturbation(rotation=float("nan"))
    with pytest.raises(ValueError, match="square maps of one size"):
        perturb_maps({"canny": np.zeros((8, 8)), "lungs": np.zeros((9, 9))}, 0)
