r"""The paper's filter controls: Canny edges, Sobel gradient magnitude and Laplacian of Gaussian.

All take a batch of images ``(batch, height, width)`` (or one ``(height, width)`` image) with values
in [0, 1], as a torch tensor on any device or a numpy array, and compute in float64 unless given a
float32 tensor. Each reproduces a standard implementation, which the tests use as the reference:

- :func:`canny` is ``skimage.feature.canny`` (Gaussian smoothing with border compensation,
  Sobel gradients, bilinear non-maximum suppression, hysteresis with 8-connectivity);
- :func:`sobel` is ``skimage.filters.sobel``: :math:`\sqrt{(G_x^2 + G_y^2)/2}` with the
  :math:`\frac14[1,2,1]\otimes[1,0,-1]` kernels and mirrored borders;
- :func:`laplacian_of_gaussian` is the scale-normalised :math:`\sigma^2\nabla^2(G_\sigma * I)`
  (``scipy.ndimage.gaussian_laplace`` times :math:`\sigma^2`), the operator of pyradiomics' ``LoG``
  image type with ``sigma`` in pixels (pyradiomics uses SimpleITK's recursive approximation of it).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

CANNY_SIGMA = 1.0
CANNY_LOW = 0.1
"""Default hysteresis thresholds on the gradient magnitude of a [0, 1] image (scikit-image's defaults)."""
CANNY_HIGH = 0.2
LOG_SIGMA = 2.0
"""Default LoG scale in pixels at the control resolution."""


def canny(
    images: torch.Tensor | np.ndarray,
    sigma: float = CANNY_SIGMA,
    low_threshold: float = CANNY_LOW,
    high_threshold: float = CANNY_HIGH,
) -> torch.Tensor:
    """Canny edge maps (bool), the same pixels as ``skimage.feature.canny(image, sigma, low, high)``."""
    batch, single = _batch(images)
    if not 0 <= low_threshold <= high_threshold:
        raise ValueError(f"need 0 <= low_threshold <= high_threshold, got {low_threshold}, {high_threshold}")
    weights = _gaussian_weights(sigma, 0, batch)
    smoothed = _separable(batch, weights, weights, "constant")
    coverage = _separable(torch.ones_like(batch[:1]), weights, weights, "constant") + torch.finfo(batch.dtype).eps
    smoothed = smoothed / coverage
    gy, gx = _sobel_pair(smoothed)
    magnitude = torch.sqrt(gy * gy + gx * gx)
    low = float(np.float32(low_threshold)) or 1e-14  # scikit-image passes it as a C float
    candidates = _non_maximum_suppression(gy, gx, magnitude) & (magnitude >= low)
    candidates[:, [0, -1], :] = False
    candidates[:, :, [0, -1]] = False
    edges = _hysteresis(candidates, candidates & (magnitude >= high_threshold))
    return edges[0] if single else edges


def sobel(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    r"""Gradient magnitude :math:`\sqrt{(G_x^2+G_y^2)/2}`, as ``skimage.filters.sobel``."""
    batch, single = _batch(images)
    gy, gx = _sobel_pair(batch)
    magnitude = torch.sqrt((gy * gy + gx * gx) / 2) / 4
    return magnitude[0] if single else magnitude


def laplacian_of_gaussian(images: torch.Tensor | np.ndarray, sigma: float = LOG_SIGMA) -> torch.Tensor:
    r"""Scale-normalised LoG :math:`\sigma^2(\partial_{yy}+\partial_{xx})(G_\sigma * I)`, mirrored borders."""
    batch, single = _batch(images)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    smooth, second = _gaussian_weights(sigma, 0, batch), _gaussian_weights(sigma, 2, batch)
    result = (
        _separable(batch, second, smooth, "symmetric") + _separable(batch, smooth, second, "symmetric")
    ) * sigma**2
    return result[0] if single else result


def _batch(images: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, bool]:
    tensor = torch.as_tensor(images)
    if tensor.ndim not in (2, 3):
        raise ValueError(f"expected (height, width) or (batch, height, width) images, got shape {tuple(tensor.shape)}")
    if tensor.shape[-1] < 3 or tensor.shape[-2] < 3:
        raise ValueError(f"images must be at least 3x3, got {tuple(tensor.shape[-2:])}")
    if not tensor.is_floating_point() or tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.to(torch.float64)
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError("images contain non-finite values")
    return (tensor[None], True) if tensor.ndim == 2 else (tensor, False)


def _gaussian_weights(sigma: float, order: int, like: torch.Tensor) -> torch.Tensor:
    """SciPy's sampled Gaussian (or its second derivative), truncated at 4 sigma."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    phi /= phi.sum()
    if order == 2:
        phi = phi * (x**2 - sigma**2) / sigma**4
    return torch.as_tensor(phi, dtype=like.dtype, device=like.device)


def _pad_index(size: int, radius: int, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.pad(np.arange(size), radius, mode="symmetric"), device=device)


def _correlate(batch: torch.Tensor, weights: torch.Tensor, axis: int, mode: str) -> torch.Tensor:
    """1-D correlation along ``axis`` (-2 rows, -1 columns) with zero or mirrored (scipy 'reflect') borders."""
    radius = (len(weights) - 1) // 2
    moved = batch.transpose(-1, axis) if axis == -2 else batch
    if mode == "constant":
        padded = F.pad(moved, (radius, radius))
    else:
        padded = moved.index_select(-1, _pad_index(moved.shape[-1], radius, moved.device))
    rows = padded.reshape(-1, 1, padded.shape[-1])
    out = F.conv1d(rows, weights.view(1, 1, -1)).reshape(*moved.shape)
    return out.transpose(-1, axis) if axis == -2 else out


def _separable(batch: torch.Tensor, along_rows: torch.Tensor, along_cols: torch.Tensor, mode: str) -> torch.Tensor:
    return _correlate(_correlate(batch, along_rows, -2, mode), along_cols, -1, mode)


def _sobel_pair(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``scipy.ndimage.sobel`` along rows (axis 0) and columns (axis 1), mirrored borders."""
    derivative = torch.tensor([-1.0, 0.0, 1.0], dtype=batch.dtype, device=batch.device)
    smoothing = torch.tensor([1.0, 2.0, 1.0], dtype=batch.dtype, device=batch.device)
    return (
        _separable(batch, derivative, smoothing, "symmetric"),
        _separable(batch, smoothing, derivative, "symmetric"),
    )


def _non_maximum_suppression(gy: torch.Tensor, gx: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Keep pixels not smaller than the gradient-direction neighbours, bilinearly interpolated (scikit-image)."""
    m = F.pad(magnitude, (1, 1, 1, 1))

    def at(dy: int, dx: int) -> torch.Tensor:
        return m[:, 1 + dy : m.shape[1] - 1 + dy, 1 + dx : m.shape[2] - 1 + dx]

    ay, ax = gy.abs(), gx.abs()
    same_sign = ((gy > 0) & (gx > 0)) | ((gy <= 0) & (gx <= 0))
    steep = ay > ax  # for same sign; the mixed-sign branch tests ay < ax
    safe = lambda num, den: num / torch.where(den == 0, torch.ones_like(den), den)  # noqa: E731
    w_same = torch.where(steep, safe(ax, ay), safe(ay, ax))
    w_mixed = torch.where(ay < ax, safe(ay, ax), safe(ax, ay))
    w = torch.where(same_sign, w_same, w_mixed)
    n11 = torch.where(same_sign, torch.where(steep, at(1, 0), at(0, 1)), torch.where(ay < ax, at(0, 1), at(-1, 0)))
    n12 = torch.where(same_sign, at(1, 1), at(-1, 1))
    n21 = torch.where(same_sign, torch.where(steep, at(-1, 0), at(0, -1)), torch.where(ay < ax, at(0, -1), at(1, 0)))
    n22 = torch.where(same_sign, at(-1, -1), at(1, -1))
    return ((n12 * w + n11 * (1.0 - w)) <= magnitude) & ((n22 * w + n21 * (1.0 - w)) <= magnitude)


def _hysteresis(candidates: torch.Tensor, strong: torch.Tensor) -> torch.Tensor:
    """Candidates 8-connected (through candidates) to a strong pixel, by repeated 3x3 dilation."""
    kept = strong.clone()
    for _ in range(math.prod(candidates.shape[-2:])):
        grown = F.max_pool2d(kept[:, None].to(torch.float32), 3, stride=1, padding=1)[:, 0].bool() & candidates
        if torch.equal(grown, kept):
            break
        kept = grown
    return kept
