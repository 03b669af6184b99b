"""Area-exact resampling between pixel grids (sum-preserving), for masks and maps."""

from __future__ import annotations

import numpy as np


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix whose entry (j, i) is the overlap of input pixel i with output cell j.

    Output cell j covers [j n_in / n_out, (j + 1) n_in / n_out) in input pixel units; every input
    pixel's overlaps sum to 1, so ``A @ v`` keeps ``v.sum()``.
    """
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo = np.maximum(edges[:-1, None], np.arange(n_in)[None, :])
    hi = np.minimum(edges[1:, None], np.arange(1, n_in + 1)[None, :])
    return np.clip(hi - lo, 0.0, None)


def area_resample(image: np.ndarray, out_shape: tuple[int, int], *, mean: bool = False) -> np.ndarray:
    """Resample a 2-D array by exact area overlap: sums (default) or means over each output cell."""
    rows = area_matrix(image.shape[0], out_shape[0])
    cols = area_matrix(image.shape[1], out_shape[1])
    result = rows @ np.asarray(image, dtype=np.float64) @ cols.T
    if mean:
        result /= (image.shape[0] / out_shape[0]) * (image.shape[1] / out_shape[1])
    return result


def shrink_to(image: np.ndarray, long_side: int) -> np.ndarray:
    """``image`` area-mean resampled so that its long side has ``long_side`` pixels (aspect kept)."""
    if long_side < 1:
        raise ValueError(f"long_side must be a positive number of pixels, got {long_side}")
    scale = long_side / max(image.shape)
    return area_resample(image, (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))), mean=True)
