"""Voxel-wise texture maps against pyradiomics' own voxel-based and segment-based extraction.

Agreement criterion at every voxel (float64): ``|ours - pyradiomics| <= 1e-6 max(|pyradiomics|, f)``
with ``f`` the feature's noise floor (:func:`radgazegen.controls.reference.noise_floor`), which only
matters for values that are rounding noise around zero; ``nan`` must sit at the same voxels.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file

from radgazegen.controls.multiset import DENSE_LIMIT, tally
from radgazegen.controls.reference import pyradiomics_features, pyradiomics_maps, relative_difference
from radgazegen.threads import one_thread_per_op, thread_map, workers
from radgazegen.controls.texture import segment_features, texture_maps, texture_maps_batch
from radgazegen.controls.texture_glcm import FEATURES as GLCM_FEATURES
from radgazegen.controls.texture_glcm_windows import CooccurrenceWindows, box_sum
from radgazegen.controls.texture_feature_set import FeatureSet, camel_case
from radgazegen.controls.texture_names import FEATURE_SETS, IMPLEMENTED, expand_features
from radgazegen.data.images import load_image, load_mask


@pytest.fixture(scope="module")
def radiograph() -> np.ndarray:
    """The real chest radiograph from pydicom-data, raw stored values (12-bit range)."""
    return pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm")).pixel_array.astype(np.float64)


@pytest.fixture(scope="module")
def phantom_case(phantom_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A phantom image ([0, 1] floats) and its lung mask."""
    image_path = sorted((phantom_dir / "images").glob("*.png"))[0]
    image, _ = load_image(image_path)
    return image.astype(np.float64), load_mask(phantom_dir / "phantom" / "lungs" / image_path.name)


def _blob(shape: tuple[int, int]) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - 18) ** 2 / 150 + (xx - 20) ** 2 / 90 < 1) | ((yy - 30) ** 2 + (xx - 8) ** 2 < 12)


def _border_crop(mask: np.ndarray, size: int) -> tuple[slice, slice]:
    """A size x size window centred on a lung-border pixel, so the mask crosses it."""
    edge = mask & ~np.roll(mask, 1, axis=1)
    ys, xs = np.nonzero(edge)
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    y0 = min(max(y - size // 2, 0), mask.shape[0] - size)
    x0 = min(max(x - size // 2, 0), mask.shape[1] - size)
    return slice(y0, y0 + size), slice(x0, x0 + size)


def assert_maps_agree(ours: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
    assert list(ours) == list(reference)
    for name, expected in reference.items():
        assert ours[name].shape == expected.shape, name
        np.testing.assert_array_equal(np.isnan(ours[name]), np.isnan(expected), err_msg=f"{name}: nan elsewhere")
        assert relative_difference(name, ours[name], expected) <= 1e-6, name


CLASSES = ["firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"]
CASES = {
    "real, r=2, 32 bins": dict(source="real", box=(1000, 800, 32, 32), kernel_radius=2, bin_count=32),
    "real, r=1, bin width": dict(source="real", box=(1000, 800, 28, 36), kernel_radius=1, bin_width=100.0),
    "real, r=3, 16 bins, masked kernel": dict(
        source="real", box=(1000, 800, 40, 40), kernel_radius=3, bin_count=16, mask="blob"
    ),  # fmt: skip
    "real, r=2, mask, unmasked kernel": dict(
        source="real", box=(1200, 900, 40, 40), kernel_radius=2, bin_count=32, mask="blob", masked_kernel=False
    ),  # fmt: skip
    "phantom, r=2, bin width, lung mask": dict(source="phantom", kernel_radius=2, bin_width=0.02, mask="lungs"),
    "phantom, r=1, 8 bins": dict(source="phantom", kernel_radius=1, bin_count=8),
    "phantom, r=3, lung mask, unmasked kernel": dict(
        source="phantom", kernel_radius=3, bin_count=32, mask="lungs", masked_kernel=False
    ),  # fmt: skip
}


def _inputs(case: dict, radiograph: np.ndarray, phantom_case) -> tuple[np.ndarray, dict]:
    settings = {k: v for k, v in case.items() if k not in ("source", "box", "mask")}
    if case["source"] == "real":
        y, x, h, w = case["box"]
        image = radiograph[y : y + h, x : x + w]
        if case.get("mask") == "blob":
            settings["mask"] = _blob(image.shape)
        return image, settings
    image, lungs = phantom_case
    rows, cols = _border_crop(lungs, 32)
    if case.get("mask") == "lungs":
        settings["mask"] = lungs[rows, cols]
    return image[rows, cols], settings


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_voxel_maps_equal_pyradiomics(case: dict, radiograph: np.ndarray, phantom_case) -> None:
    image, settings = _inputs(case, radiograph, phantom_case)
    reference = pyradiomics_maps(image, CLASSES, **settings)
    assert_maps_agree(texture_maps(image, CLASSES, **settings), reference)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_segment_features_equal_pyradiomics(case: dict, radiograph: np.ndarray, phantom_case) -> None:
    image, settings = _inputs(case, radiograph, phantom_case)
    keep = {k: settings[k] for k in ("mask", "bin_count", "bin_width") if k in settings}
    reference = pyradiomics_features(image, CLASSES, **keep)
    ours = segment_features(image, CLASSES, **keep)
    for name, expected in reference.items():
        assert ours[name] == pytest.approx(expected, rel=1e-6, abs=1e-9, nan_ok=True), name


def test_thin_mask_kernels_without_pairs_match_pyradiomics(radiograph: np.ndarray) -> None:
    """Kernels lacking an angle: nan-mean over the rest; JointAverage nan; MCC fails everywhere, as in pyradiomics."""
    image = radiograph[1100:1124, 900:924]
    mask = np.zeros(image.shape, bool)
    mask[4:20, 6] = True  # a vertical line: no horizontal or diagonal pairs anywhere
    mask[12, 6:18] = True  # a horizontal arm: some kernels have horizontal pairs, others not
    reference = pyradiomics_maps(image, "glcm", kernel_radius=1, bin_count=16, mask=mask)
    ours = texture_maps(image, "glcm", kernel_radius=1, bin_count=16, mask=mask)
    assert_maps_agree(ours, reference)
    assert np.isnan(ours["glcm_MCC"]).all()


@pytest.mark.parametrize("cls", sorted(IMPLEMENTED))
def test_each_class_has_exactly_pyradiomics_non_deprecated_features(cls: str) -> None:
    module = importlib.import_module(f"radiomics.{cls}")
    pyradiomics_class = next(v for k, v in vars(module).items() if k.lower() == f"radiomics{cls}")
    expected = {name for name, deprecated in pyradiomics_class.getFeatureNames().items() if not deprecated}
    assert sorted(IMPLEMENTED[cls]) == sorted(expected)
    assert all(callable(function) for function in FEATURE_SETS[cls].values())


def test_feature_sets_name_functions_in_camel_case_and_refuse_a_second_definition() -> None:
    assert camel_case("dependence_non_uniformity") == "DependenceNonUniformity" and camel_case("imc1") == "Imc1"
    found: FeatureSet = FeatureSet("demo")

    @found.feature
    def total_energy(x):
        return x

    found.feature(lambda x: x, name="10Percentile")
    assert list(found) == ["TotalEnergy", "10Percentile"] and found["TotalEnergy"] is total_energy
    with pytest.raises(ValueError, match="demo feature 'TotalEnergy' is defined twice"):
        found.feature(lambda x: x, name="TotalEnergy")


def test_feature_names_expand_and_unknown_names_are_rejected() -> None:
    assert expand_features("glcm") == [f"glcm_{n}" for n in IMPLEMENTED["glcm"]]
    assert expand_features(["firstorder_Mean", "firstorder"])[:2] == ["firstorder_Mean", "firstorder_Energy"]
    assert len(expand_features(["glrlm", "glszm", "gldm", "ngtdm"])) == sum(len(IMPLEMENTED[c]) for c in ("glrlm", "glszm", "gldm", "ngtdm"))
    with pytest.raises(ValueError, match="unknown glcm feature 'Dissimilarity'"):
        expand_features("glcm_Dissimilarity")
    with pytest.raises(ValueError, match="unknown feature class 'shape'"):
        expand_features("shape_Elongation")


def test_bad_settings_and_inputs_raise_clear_errors(radiograph: np.ndarray) -> None:
    image = radiograph[:16, :16]
    with pytest.raises(ValueError, match="kernel_radius"):
        texture_maps(image, "firstorder_Mean", kernel_radius=0)
    with pytest.raises(ValueError, match="bin_width"):
        texture_maps(image, "firstorder_Mean", bin_width=-1.0)
    with pytest.raises(ValueError, match="mask shape"):
        texture_maps(image, "firstorder_Mean", mask=np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="2-D"):
        texture_maps(np.zeros((2, 8, 8)), "firstorder_Mean")
    broken = image.copy()
    broken[3, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        texture_maps(broken, "firstorder_Mean")


def test_torch_input_float32_and_other_classes(radiograph: np.ndarray) -> None:
    image = radiograph[1000:1024, 800:824]
    exact = texture_maps(image, ["glcm_Contrast", "firstorder_Variance"])
    single = texture_maps(torch.as_tensor(image), ["glcm_Contrast", "firstorder_Variance"], dtype=torch.float32)
    for name, values in single.items():
        assert values.dtype == np.float32
        np.testing.assert_allclose(values, exact[name], rtol=1e-4)
    assert list(texture_maps(image, ["glszm_ZoneEntropy", "glcm_Contrast"], kernel_radius=1)) == [
        "glszm_ZoneEntropy", "glcm_Contrast"]  # fmt: skip


@pytest.mark.parametrize("n_keys", [12, DENSE_LIMIT + 50])
def test_dense_and_sorted_tallies_agree(n_keys: int) -> None:
    generator = torch.Generator().manual_seed(0)
    keys = torch.randint(0, n_keys, (50, 3, 17), generator=generator)
    valid = torch.rand(keys.shape, generator=generator) > 0.2
    found = tally(keys, valid, n_keys)
    for row in range(50):
        for angle in range(3):
            present = keys[row, angle][valid[row, angle]].tolist()
            expected = [
                present.count(k) if v else 0 for k, v in zip(keys[row, angle].tolist(), valid[row, angle], strict=True)
            ]
            assert found.element_counts[row, angle].tolist() == expected
            distinct = sorted(set(present))
            ranks = found.ranks[0][row, angle]
            for k, v, r in zip(keys[row, angle].tolist(), valid[row, angle].tolist(), ranks.tolist(), strict=True):
                assert not v or distinct[r] == k


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_maps_equal_cpu_maps(radiograph: np.ndarray) -> None:
    image = radiograph[1000:1064, 800:864]
    cpu = texture_maps(image, CLASSES)
    gpu = texture_maps(image, CLASSES, device="cuda")
    assert_maps_agree(gpu, cpu)


@pytest.mark.parametrize("image", [np.zeros((0, 0)), np.array([[0.5]]), np.array([[1, "a"]], dtype=object)])
def test_texture_maps_refuse_images_with_no_texture_to_measure(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="image must (hold numbers|be 2-D .* at least two voxels)"):
        texture_maps(image, "glcm_Contrast")


def test_batch_equals_one_call_per_image(radiograph: np.ndarray, phantom_case) -> None:
    """Each image discretised on its own; box-summed GLCM features batched, the rest per image; masks too."""
    crops = np.stack([radiograph[1000 + 9 * k : 1024 + 9 * k, 800 + 5 * k : 824 + 5 * k] for k in range(4)])
    masks = np.stack([_blob((24, 24)) | (k % 2 == 0) for k in range(4)])
    features = ["glcm_Contrast", "glcm_ClusterShade", "glcm_JointEntropy", "firstorder_Median", "gldm_DependenceEntropy"]
    batched = texture_maps_batch(crops, features, masks=masks, kernel_radius=1, bin_count=16)
    for k, (image, mask) in enumerate(zip(crops, masks, strict=True)):
        single = texture_maps(image, features, mask=mask, kernel_radius=1, bin_count=16)
        for name in features:
            np.testing.assert_array_equal(batched[name][k], single[name], err_msg=name)
    image, lungs = phantom_case
    shapes = [image[:40, :48], image[8:40, 8:40]]
    unstacked = texture_maps_batch(shapes, "glcm_Idmn", stacked=False)
    for found, part in zip(unstacked, shapes, strict=True):
        np.testing.assert_array_equal(found["glcm_Idmn"], texture_maps(part, "glcm_Idmn")["glcm_Idmn"])
    with pytest.raises(ValueError, match="different shapes"):
        texture_maps_batch(shapes, "glcm_Idmn")
    with pytest.raises(ValueError, match="image 1: .*non-finite"):
        texture_maps_batch([crops[0], np.full((24, 24), np.nan)], "glcm_Idmn")
    with pytest.raises(ValueError, match=r"\(images, height, width\)"):
        texture_maps_batch(crops[0], "glcm_Idmn")
    with pytest.raises(ValueError, match="3 masks for 4 images"):
        texture_maps_batch(crops, "glcm_Idmn", masks=masks[:3])


def test_box_sums_equal_pair_lists(radiograph: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """The box-summed GLCM features (int64 central moments) equal the gathered pair lists' (centred moments)."""
    image = radiograph[1100:1136, 880:916]
    mask = _blob(image.shape)
    summed = [f"glcm_{name}" for name in GLCM_FEATURES.kernel_sums]
    assert len(summed) == 16 and "glcm_MCC" not in summed
    windows = texture_maps(image, summed, kernel_radius=3, bin_count=24, mask=mask)
    monkeypatch.setattr(CooccurrenceWindows, "exact", staticmethod(lambda radius, max_level: False))
    lists = texture_maps(image, summed, kernel_radius=3, bin_count=24, mask=mask)
    for name in summed:
        np.testing.assert_allclose(windows[name], lists[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_exact_bound_and_box_sum() -> None:
    assert CooccurrenceWindows.exact(2, 32) and CooccurrenceWindows.exact(5, 32) and CooccurrenceWindows.exact(3, 64)
    assert not CooccurrenceWindows.exact(2, 2000) and not CooccurrenceWindows.exact(6, 64)
    values = torch.randint(0, 9, (2, 7, 9))
    boxes = box_sum(values, 3, 4)
    assert boxes.shape == (2, 5, 6)
    assert int(boxes[1, 2, 3]) == int(values[1, 2:5, 3:7].sum()) and int(boxes[0, 0, 0]) == int(values[0, :3, :4].sum())


def test_one_thread_per_op_is_restored_and_thread_maps_keep_order(radiograph: np.ndarray) -> None:
    before = torch.get_num_threads()
    with one_thread_per_op(torch.device("cpu")):
        assert torch.get_num_threads() == 1 and workers() == before
        assert list(thread_map(lambda k: list(thread_map(lambda j: j * k, range(3))), range(4))) == [
            [0, 0, 0], [0, 1, 2], [0, 2, 4], [0, 3, 6]]  # fmt: skip
    assert torch.get_num_threads() == before
    with one_thread_per_op(torch.device("cuda")):  # a GPU queues its kernels on one stream: no worker threads
        assert workers() == 1 and torch.get_num_threads() == before
    image = radiograph[1000:1032, 800:832]
    shared = texture_maps(image, "glcm_MCC")
    torch.set_num_threads(1)
    try:
        alone = texture_maps(image, "glcm_MCC")
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(shared["glcm_MCC"], alone["glcm_MCC"])


def test_whole_images_are_discretised_together_as_one_by_one(radiograph: np.ndarray) -> None:
    """The batched discretisation of unmasked same-shape images (bin count) equals numpy's, flat images included."""
    images = [radiograph[1000 + 7 * k : 1020 + 7 * k, 800:824] for k in range(5)] + [np.full((20, 24), 3.0)]
    batched = texture_maps_batch(np.stack(images), ["glcm_Contrast", "firstorder_Median"], bin_count=24)
    for k, image in enumerate(images):
        single = texture_maps(image, ["glcm_Contrast", "firstorder_Median"], bin_count=24)
        for name, values in single.items():
            np.testing.assert_array_equal(batched[name][k], values, err_msg=f"{name}, image {k}")
