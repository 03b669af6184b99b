"""Lung masks: a user-supplied mask folder, the phantom's ground truth, or a classical fallback segmentation.

The fallback (:func:`segment_lungs`) is a documented classical method, not a learned one: smooth,
threshold dark (air-filled) pixels with Otsu's method, drop dark regions touching the image border
(air outside the body), keep the two largest remaining regions, fill holes and close them. The
radiomic-maps chapter reports its Dice against the phantom's ground truth; for real images prefer a
mask folder from a dedicated segmentation model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.morphology import disk
from skimage.transform import resize

from radgazegen.data.images import load_mask
from radgazegen.errors import DataFormatError

WORKING_SIDE = 256
"""Long side (pixels) at which the fallback segmentation runs; the mask is resized back."""


def segment_lungs(image: np.ndarray) -> np.ndarray:
    """Classical lung segmentation of a [0, 1] radiograph (bright = dense); a boolean mask of its shape."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or min(image.shape) < 16:
        raise ValueError(f"expected a 2-D radiograph of at least 16x16 pixels, got shape {image.shape}")
    scale = WORKING_SIDE / max(image.shape)
    small_shape = (max(16, round(image.shape[0] * scale)), max(16, round(image.shape[1] * scale)))
    small = resize(image, small_shape, anti_aliasing=True)
    smooth = ndi.gaussian_filter(small, 2.0)
    if smooth.max() - smooth.min() < 1e-6:
        return np.zeros(image.shape, bool)
    dark = smooth < threshold_otsu(smooth)
    labels, count = ndi.label(dark)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    sizes = ndi.sum_labels(dark, labels, index=np.arange(1, count + 1))
    sizes[border[border > 0] - 1] = 0
    keep = [label + 1 for label in np.argsort(sizes)[::-1][:2] if sizes[label] >= 0.01 * dark.size]
    lungs = np.isin(labels, keep)
    lungs = ndi.binary_closing(lungs, disk(3), border_value=0)
    lungs = ndi.binary_fill_holes(lungs)
    return resize(lungs.astype(np.float64), image.shape, order=1) >= 0.5


def lung_mask(
    dicom_id: str,
    image: np.ndarray,
    *,
    data_root: str | Path | None = None,
    mask_dir: str | Path | None = None,
) -> tuple[np.ndarray, str]:
    """The lung mask for one image and where it came from: ``"mask folder"``, ``"phantom"`` or ``"segmented"``.

    ``mask_dir/<dicom_id>.png`` wins when ``mask_dir`` is given (a missing file is an error: a folder
    was promised); then the phantom's ``data_root/phantom/lungs/<dicom_id>.png``; else
    :func:`segment_lungs`. Masks are resized to the image's shape.
    """
    if mask_dir is not None:
        path = Path(mask_dir) / f"{dicom_id}.png"
        if not path.is_file():
            raise DataFormatError(path, f"no lung mask for image {dicom_id} in the mask folder")
        return _fit(load_mask(path), image.shape), "mask folder"
    if data_root is not None:
        path = Path(data_root) / "phantom" / "lungs" / f"{dicom_id}.png"
        if path.is_file():
            return _fit(load_mask(path), image.shape), "phantom"
    return segment_lungs(image), "segmented"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def _fit(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if mask.shape == tuple(shape):
        return mask
    return resize(mask.astype(np.float64), shape, order=1) >= 0.5
