"""Hypotheses: "put the finding where the radiologist looked" (the released code's counterfactual generation).

A gaze heatmap (or a hotspot the user places) is thresholded and dilated into a region; the gaze
control becomes that region, softened at its border, and the prompt names the finding, so the
generator draws the finding there.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def gaze_region(heatmap: np.ndarray, threshold: float = 0.5, dilation: int = 2) -> np.ndarray:
    """Pixels where ``heatmap >= threshold * max``, dilated by ``dilation`` pixels (a boolean mask)."""
    heatmap = np.asarray(heatmap, dtype=np.float64)
    if heatmap.ndim != 2 or not np.isfinite(heatmap).all():
        raise ValueError(f"heatmap must be a finite 2-D map, got shape {heatmap.shape}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold is a fraction of the peak in (0, 1], got {threshold}")
    peak = heatmap.max()
    if peak <= 0:
        raise ValueError("heatmap is empty (no positive value): nothing to threshold")
    region = heatmap >= threshold * peak
    if dilation > 0:
        region = ndimage.binary_dilation(region, ndimage.generate_binary_structure(2, 1), iterations=dilation)
    return region


def hotspot(size: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    """A user-drawn gaze hotspot: a Gaussian of standard deviation ``radius`` (fractions of the side) at ``centre``.

    ``centre`` is (row, column) as fractions of the image side; the map peaks at 1.
    """
    if not (0 <= centre[0] <= 1 and 0 <= centre[1] <= 1) or radius <= 0:
        raise ValueError(f"centre must lie in [0, 1]^2 and radius be positive, got {centre}, {radius}")
    rows, cols = np.mgrid[0:size, 0:size] / size
    return np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * radius**2)).astype(np.float32)


def hypothesis_gaze(
    heatmap: np.ndarray, threshold: float = 0.5, dilation: int = 2, softness: float = 1.0
) -> np.ndarray:
    """The gaze control of a hypothesis: the thresholded, dilated region, blurred by ``softness`` px, peak 1."""
    region = gaze_region(heatmap, threshold, dilation).astype(np.float64)
    soft = ndimage.gaussian_filter(region, softness) if softness > 0 else region
    return (soft / soft.max()).astype(np.float32)
