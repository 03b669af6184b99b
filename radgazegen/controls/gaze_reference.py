"""The straightforward gaze-heatmap recipe, kept as the reference that tests and benchmarks compare with.

One full-image Gaussian density per fixation, as REFLACX's own heatmap script builds it (shown
rectangle rounded to whole pixels and intersected with the image), summed with duration weights,
normalised, then area-resampled. :mod:`radgazegen.controls.gaze` computes the same map without
forming any full-image Gaussian.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from radgazegen.data.resample import area_resample


def per_fixation_heatmap(
    fixations: pd.DataFrame, image_shape: tuple[int, int], out_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Reference heatmap (float64, sum 1) of fixations already inside the image and shown rectangle."""
    height, width = image_shape
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    heat = np.zeros(image_shape)
    for f in fixations.itertuples(index=False):
        x0, x1 = np.clip([round(f.xmin_shown_from_image), round(f.xmax_shown_from_image)], 0, width)
        y0, y1 = np.clip([round(f.ymin_shown_from_image), round(f.ymax_shown_from_image)], 0, height)
        sx, sy = f.angular_resolution_x_pixels_per_degree, f.angular_resolution_y_pixels_per_degree
        z = ((cols - f.x_position) / sx) ** 2 + ((rows - f.y_position) / sy) ** 2
        inside = (cols >= x0) & (cols < x1) & (rows >= y0) & (rows < y1)
        heat += (
            np.exp(-0.5 * z) / (2 * np.pi * sx * sy) * inside * (f.timestamp_end_fixation - f.timestamp_start_fixation)
        )
    heat /= heat.sum()
    return heat if out_shape is None else area_resample(heat, out_shape)
