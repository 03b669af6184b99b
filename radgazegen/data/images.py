"""Load chest radiographs (DICOM, PNG 8/16-bit, JPEG) as float images in [0, 1], bright = dense."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from radgazegen.errors import DataFormatError
from radgazegen.io import atomic_path

_DICOM_SUFFIXES = {".dcm", ".dicom", ""}


def load_image(path: str | Path, *, require_contrast: bool = True) -> tuple[np.ndarray, tuple[int, int]]:
    """Read a radiograph; return ``(image, (height, width))`` with ``image`` float32 in [0, 1].

    DICOM: modality LUT (rescale slope/intercept), then the VOI LUT or the first window stored in
    the file, then MONOCHROME1 is inverted so that bone is bright and air dark, as in MONOCHROME2;
    the windowed values are stretched to [0, 1]. PNG (8 or 16 bit, grey or colour) and JPEG are scaled
    by their bit depth. One policy for every format: a constant image (no contrast) is an error when
    ``require_contrast`` (a radiograph), else read as it is (a mask or a generated image; a constant
    DICOM reads as zeros).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "image file not found")
    if path.suffix.lower() in _DICOM_SUFFIXES or _has_dicom_preamble(path):
        image = _load_dicom(path)
    else:
        image = _load_raster(path)
    if image.ndim != 2 or image.size == 0:
        raise DataFormatError(path, f"expected a non-empty grey image, got pixel array of shape {image.shape}")
    if require_contrast and not image.max() > image.min():
        raise DataFormatError(path, "image is constant (no contrast)")
    return image, (int(image.shape[0]), int(image.shape[1]))


def _has_dicom_preamble(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def _load_dicom(path: Path) -> np.ndarray:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array
    except (InvalidDicomError, AttributeError, ValueError, OSError, RuntimeError) as err:
        raise DataFormatError(path, f"not a readable DICOM image ({err})") from None
    if pixels.ndim != 2:
        raise DataFormatError(path, f"expected a single-frame grey image, got pixel array of shape {pixels.shape}")
    values = apply_modality_lut(pixels, dataset)
    values = apply_voi_lut(values, dataset, index=0, prefer_lut=True).astype(np.float64)
    low, high = float(values.min()), float(values.max())
    image = (values - low) / (high - low) if high > low else np.zeros_like(values)  # constant: zeros
    if str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1":
        image = 1.0 - image
    return image.astype(np.float32)


def _load_raster(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as handle:
            handle.load()
            image = handle
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float64)
                scale = 65535.0 if array.max() <= 65535 else float(array.max())
                return (array / scale).astype(np.float32)
            if image.mode == "F":
                array = np.asarray(image, dtype=np.float64)
                return np.clip(array, 0.0, 1.0).astype(np.float32)
            return (np.asarray(image.convert("L"), dtype=np.float32) / 255.0).astype(np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataFormatError(path, f"not a readable image ({err})") from None


def grey_levels8(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1] (values outside are clipped) as 8-bit grey levels ``round(255 x)``, ``uint8``, any shape."""
    return np.round(np.clip(np.asarray(images, np.float64), 0.0, 1.0) * 255).astype(np.uint8)


def save_png16(path: str | Path, image: np.ndarray) -> None:
    """Save a [0, 1] float image as a 16-bit grey PNG, atomically."""
    array = np.asarray(image, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"save_png16 expects a 2-D image, got shape {array.shape}")
    quantised = np.round(np.clip(array, 0.0, 1.0) * 65535.0).astype(np.uint16)
    with atomic_path(path) as tmp:
        Image.fromarray(quantised).save(tmp, format="PNG")


def save_mask_png(path: str | Path, mask: np.ndarray) -> None:
    """Save a boolean mask as an 8-bit PNG (0 / 255), atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255).save(tmp, format="PNG")


def load_mask(path: str | Path) -> np.ndarray:
    """Read a mask PNG as a boolean array (non-zero = inside; an empty mask is valid)."""
    image, _ = load_image(path, require_contrast=False)
    return image > 0.5
