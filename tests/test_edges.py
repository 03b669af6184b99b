"""The filter controls reproduce scikit-image / SciPy exactly, on CPU and (when present) CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from skimage.feature import canny as skimage_canny
from skimage.filters import sobel as skimage_sobel

from radgazegen.controls.edges import canny, laplacian_of_gaussian, sobel


@pytest.fixture(scope="module")
def radiograph_like() -> np.ndarray:
    """A smooth [0, 1] image with edges, texture and noise (no data files needed)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :80] / 80.0
    image = 0.4 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy) + 0.25 * ((xx - 0.5) ** 2 + (yy - 0.6) ** 2 < 0.08)
    image += rng.normal(0, 0.03, image.shape)
    return ndi.gaussian_filter(np.clip(image, 0, 1), 0.7)


@pytest.mark.parametrize(
    ("sigma", "low", "high"), [(1.0, 0.1, 0.2), (2.0, 0.02, 0.05), (1.5, 0.05, 0.1), (1.0, 0.0, 0.1)]
)
def test_canny_matches_scikit_image(radiograph_like: np.ndarray, sigma: float, low: float, high: float) -> None:
    expected = skimage_canny(radiograph_like, sigma=sigma, low_threshold=low, high_threshold=high)
    got = canny(radiograph_like, sigma, low, high).numpy()
    assert expected.sum() > 20
    np.testing.assert_array_equal(got, expected)


def test_sobel_and_log_match_scikit_image_and_scipy(radiograph_like: np.ndarray) -> None:
    np.testing.assert_allclose(sobel(radiograph_like).numpy(), skimage_sobel(radiograph_like), atol=1e-14)
    for sigma in (1.0, 2.5, 30.0):  # 30: the kernel is wider than the image (repeated mirroring)
        expected = ndi.gaussian_laplace(radiograph_like, sigma) * sigma**2
        np.testing.assert_allclose(laplacian_of_gaussian(radiograph_like, sigma).numpy(), expected, atol=1e-13)


def test_batches_equal_single_images_and_bad_input_is_rejected(radiograph_like: np.ndarray) -> None:
    batch = torch.as_tensor(np.stack([radiograph_like, radiograph_like[::-1].copy()]))
    for function in (canny, sobel, laplacian_of_gaussian):
        together = function(batch)
        assert torch.equal(together[1], function(batch[1]))
    with pytest.raises(ValueError, match="shape"):
        sobel(np.zeros((2, 2, 4, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        sobel(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="low_threshold"):
        canny(radiograph_like, 1.0, 0.3, 0.2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_filters_equal_cpu(radiograph_like: np.ndarray) -> None:
    image = torch.as_tensor(radiograph_like)
    assert torch.equal(canny(image.cuda()).cpu(), canny(image))
    torch.testing.assert_close(sobel(image.cuda()).cpu(), sobel(image), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(
        laplacian_of_gaussian(image.cuda()).cpu(), laplacian_of_gaussian(image), rtol=1e-12, atol=1e-14
    )
