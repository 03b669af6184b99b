"""Hypotheses: "put the finding where the radiologist looked" (the released code's counterfactual generation).

A gaze heatmap (or a hotspot the user places) is thresholded and dilated into a region; the gaze
control becomes that region, softened at its border, and the prompt names the finding, so the
generator draws the finding there.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def gaze_region(heatmap: np.ndarray, threshold: float = 0.5, dilation: int = 2) -> np.ndarray:
    r"""The gaze ("hypothesis") region of a heatmap: threshold at a share of its peak, then dilate.

    .. math:: R = \bigl\{p : H(p) \ge \tau \max H\bigr\} \oplus B^{d},

    :math:`B^{d}` the 4-connected cross applied ``dilation`` (:math:`d`) times, a diamond of radius
    :math:`d` pixels of ``heatmap``. This is the one region function of the package: chapter 1 draws it,
    hypotheses (:func:`hypothesis_gaze`), adherence and the placement protocol measure with it.

    The authors' ``generate_hypotheses.py`` does the same two steps on the 8-bit heatmap PNG:
    ``cv2.threshold(img, 120, 255)`` — a threshold of :math:`120/255 \approx 0.47` of full scale, which is
    the peak for their min-max-scaled maps — then ``cv2.dilate`` with a 100x100 square kernel, three
    iterations, at the radiograph's full resolution (about 150 px on each side of a 2-3k px image). We keep
    :math:`\tau = 0.5` and count the dilation in pixels of the map at hand, because a fixed 150 px would
    swallow a 64 px phantom image whole.
    """
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
