"""FRD v1 with our radiomics against the frd-score package run on the same 16-bit PNG folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from radgazegen.data.images import save_png16
from radgazegen.errors import DataFormatError
from radgazegen.evaluation.frd import (
    DIAGNOSTICS,
    V1_FEATURES,
    frd,
    frd_score_reference,
    frechet_radiomics_distance,
    radiomic_features,
)

SIZE, COUNT = 48, 12


def _textures(count: int, sigma: float, seed: int) -> np.ndarray:
    """Smoothed noise in [0.2, 0.8] plus a random horizontal gradient: texture at the scale of ``sigma`` px."""
    rng = np.random.default_rng(seed)
    images = ndimage.gaussian_filter(rng.normal(size=(count, SIZE, SIZE)), (0, sigma, sigma))
    images = images / np.abs(images).max((1, 2), keepdims=True)
    ramps = rng.uniform(-0.1, 0.1, (count, 1, 1)) * np.linspace(-1, 1, SIZE)
    return 0.5 + 0.25 * images + ramps


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray]]:
    """Two folders of 16-bit PNGs of two texture distributions, with the images written."""
    root = tmp_path_factory.mktemp("frd")
    sets = {"real": _textures(COUNT, 1.0, seed=0), "fake": _textures(COUNT, 2.5, seed=1)}
    for name, images in sets.items():
        (root / name).mkdir()
        for index, image in enumerate(images):
            save_png16(root / name / f"{index:02d}.png", image)
    return {name: (root / name, images) for name, images in sets.items()}


def test_both_sides_see_the_same_grey_values(folders: dict[str, tuple[Path, np.ndarray]]) -> None:
    import SimpleITK as sitk

    folder, images = folders["real"]
    read = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "03.png"), outputPixelType=sitk.sitkFloat32))
    assert np.array_equal(read, np.round(images[3] * 65535))  # what frd-score reads, what radiomic_features uses


def test_features_equal_pyradiomics_as_frd_score_runs_it(folders: dict[str, tuple[Path, np.ndarray]]) -> None:
    from frd_score.frd import get_feature_extractor, process_image_mask_pair

    extractor = get_feature_extractor(frd_version="v1", image_types=["Original"])
    extractor.settings["resampledPixelSpacing"] = None
    folder, images = folders["fake"]
    ours = radiomic_features(images[:3])
    assert list(ours.columns) == [*DIAGNOSTICS, *V1_FEATURES]
    for index in range(3):
        _, expected, _ = process_image_mask_pair((folder / f"{index:02d}.png", None), feature_extractor=extractor)
        assert list(expected) == list(ours.columns)
        np.testing.assert_allclose(ours.iloc[index].to_numpy(), list(expected.values()), rtol=1e-9, atol=1e-9)


def test_frd_equals_frd_score_on_the_same_folders(folders: dict[str, tuple[Path, np.ndarray]]) -> None:
    (real_dir, real), (fake_dir, fake) = folders["real"], folders["fake"]
    ours, expected = frd(real, fake), frd_score_reference(real_dir, fake_dir)
    # Features agree to ~1e-12 and are rounded to float32 on both sides, so the z-scores are identical; what differs
    # is the matrix square root of the product of two rank-deficient covariances (12 images, 80 features): scipy's
    # sqrtm there, symmetric eigen-decompositions here. Measured: ~4e-9 relative.
    assert np.isfinite(ours) and ours == pytest.approx(expected, rel=1e-6)


def test_frechet_radiomics_distance_follows_frd_score_v1_on_a_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """NaN rows, a constant column and a feature with a tiny relative spread (float32 matters) through frd-score's own
    statistics; only its feature extraction is replaced by the tables."""
    from frd_score import frd as reference

    rng = np.random.default_rng(2)
    columns = ["a", "b", "constant", "energy"]
    real = pd.DataFrame(rng.normal(size=(30, 4)), columns=columns).assign(constant=3.0)
    fake = pd.DataFrame(rng.normal(0.5, 1.5, size=(25, 4)), columns=columns).assign(constant=rng.normal(size=25))
    real["energy"], fake["energy"] = 2e8 + 1e4 * real["energy"], 2e8 + 1.2e4 * fake["energy"]
    fake.loc[3, "a"] = np.nan
    tables = {"real": real, "fake": fake}

    def extracted(files: list[str], **_: object) -> tuple[np.ndarray, list[dict], list[None]]:
        table = tables[files[0]]  # returned as compute_features returns them: np.asarray of per-image lists
        return np.asarray(table.to_numpy().tolist()), table.to_dict("records"), [None] * len(table)

    monkeypatch.setattr(reference, "compute_features", extracted)
    mu, sigma, _, _ = reference.calculate_feature_statistics(
        [["real"], ["fake"]], "zscore", [0.0, 1.0], None, norm_ref="d1", frd_version="v1"
    )
    expected = np.log(reference.calculate_frechet_distance(mu[0], sigma[0], mu[1], sigma[1]))
    # frd-score takes ||mu1 - mu2||^2 as a float32 dot product of its float32 means, we in float64: ~1e-8 relative
    assert mu[0].shape == (3,) and frechet_radiomics_distance(real, fake) == pytest.approx(expected, rel=1e-7)
    assert frechet_radiomics_distance(real, fake[columns[::-1]]) == frechet_radiomics_distance(real, fake)


def test_frd_is_much_lower_against_a_nearly_identical_set(folders: dict[str, tuple[Path, np.ndarray]]) -> None:
    real, fake = folders["real"][1], folders["fake"][1]
    near = real + np.random.default_rng(3).normal(0, 2e-4, real.shape)
    same_kind = _textures(COUNT, 1.0, seed=4)
    assert frd(real, near) + 2 < frd(real, same_kind) < frd(real, fake) - 2  # log scale: factors > e^2 in d^2


def test_frd_needs_two_images_per_set_and_valid_images(folders: dict[str, tuple[Path, np.ndarray]]) -> None:
    real = folders["real"][1]
    with pytest.raises(ValueError, match="at least 2 images"):
        frd(real[:3], real[3:4])
    with pytest.raises(ValueError, match=r"image 1 must lie in \[0, 1\]"):
        radiomic_features([real[0], real[1] * 2])
    with pytest.raises(ValueError, match="image 0 is constant"):
        radiomic_features(np.full((1, 8, 8), 0.5))
    with pytest.raises(ValueError, match="feature columns differ"):
        frechet_radiomics_distance(pd.DataFrame({"a": [1.0, 2.0]}), pd.DataFrame({"b": [1.0, 2.0]}))
    with pytest.raises(DataFormatError, match="image folder not found"):
        frd_score_reference(folders["real"][0], folders["real"][0].parent / "missing")
