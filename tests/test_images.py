from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from radgazegen.data.images import load_image, save_png16
from radgazegen.errors import DataFormatError


def test_real_monochrome1_radiograph_has_dark_lungs_and_bright_bone() -> None:
    path = get_testdata_file("RG1_UNCR.dcm")
    assert pydicom.dcmread(path).PhotometricInterpretation == "MONOCHROME1"
    image, (height, width) = load_image(path)
    assert image.dtype == np.float32 and (height, width) == (1955, 1841) and image.shape == (height, width)
    assert image.min() >= 0.0 and image.max() <= 1.0
    lungs = np.concatenate([image[int(0.3 * height) : int(0.5 * height), int(0.15 * width) : int(0.3 * width)].ravel(),
                            image[int(0.3 * height) : int(0.5 * height), int(0.7 * width) : int(0.85 * width)].ravel()])  # fmt: skip
    spine = image[int(0.3 * height) : int(0.5 * height), int(0.47 * width) : int(0.53 * width)]
    assert np.median(lungs) + 0.2 < np.median(spine)


def test_monochrome2_copy_gives_the_same_image(tmp_path: Path) -> None:
    dataset = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    original, _ = load_image(get_testdata_file("RG1_UNCR.dcm"))
    bits = int(dataset.BitsStored)
    dataset.PixelData = ((2**bits - 1) - dataset.pixel_array).astype(dataset.pixel_array.dtype).tobytes()
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.WindowCenter = (2**bits - 1) - float(dataset.WindowCenter)
    flipped = tmp_path / "mono2.dcm"
    dataset.save_as(flipped)
    image, _ = load_image(flipped)
    assert np.abs(image - original).max() < 1e-3


def test_png_8_and_16_bit_and_jpeg(tmp_path: Path) -> None:
    ramp = np.linspace(0, 1, 64 * 48).reshape(64, 48)
    save_png16(tmp_path / "a16.png", ramp)
    image, shape = load_image(tmp_path / "a16.png")
    assert shape == (64, 48) and np.abs(image - ramp).max() < 1e-4
    Image.fromarray((ramp * 255).round().astype(np.uint8)).save(tmp_path / "a8.png")
    assert np.abs(load_image(tmp_path / "a8.png")[0] - ramp).max() < 1 / 255
    Image.fromarray((ramp * 255).round().astype(np.uint8)).convert("RGB").save(tmp_path / "a.jpg", quality=95)
    assert np.abs(load_image(tmp_path / "a.jpg")[0] - ramp).max() < 0.05


def test_corrupt_and_missing_images_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataFormatError, match="broken.png: not a readable image"):
        load_image(bad)
    bad_dicom = tmp_path / "broken.dcm"
    bad_dicom.write_bytes(b"\x00" * 128 + b"DICM" + b"\x01\x02")
    with pytest.raises(DataFormatError, match="broken.dcm: not a readable DICOM"):
        load_image(bad_dicom)
    with pytest.raises(DataFormatError, match="nothing.png: image file not found"):
        load_image(tmp_path / "nothing.png")


def test_a_constant_image_is_one_policy_for_every_format(tmp_path: Path) -> None:
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(flat)
    with pytest.raises(DataFormatError, match="flat.png: image is constant"):
        load_image(flat)
    image, _ = load_image(flat, require_contrast=False)  # a mask or a generated image may be constant
    assert np.allclose(image, 90 / 255)
    dicom = tmp_path / "flat.dcm"
    dataset = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    dataset.PixelData = np.full_like(dataset.pixel_array, 300).tobytes()
    dataset.save_as(dicom)
    with pytest.raises(DataFormatError, match="flat.dcm: image is constant"):
        load_image(dicom)
    constant, _ = load_image(dicom, require_contrast=False)  # zeros, inverted as MONOCHROME1
    assert constant.min() == constant.max() == 1.0
