"""Voxel-wise radiomic maps: pyradiomics' voxel-based extraction (reference) vs radgazegen's texture_maps.

The same crop of the real chest radiograph ``RG1_UNCR.dcm`` (pydicom-data), kernelRadius 2,
binCount 32, force2D, all first-order and GLCM features, in one run: both times, the speed-up and the
worst relative difference over all features and voxels (``radgazegen.controls.reference.relative_difference``).
``flash-radiomics`` (PyPI) runs side by side when it is installed, on CPU and, with a GPU, on CUDA;
radgazegen also runs on CUDA when torch sees a GPU.

    python benchmarks/radiomic_maps.py [--size 256] [--json radgazegen/benchmark_results/radiomic_maps.json]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from radgazegen.controls.reference import pyradiomics_maps, relative_difference
from radgazegen.controls.texture import texture_maps
from radgazegen.controls.texture_names import expand_features
from radgazegen.io import write_json_atomic
from radgazegen.runs import hardware, versions

FEATURES = ["firstorder", "glcm"]


def radiograph_crop(size: int, image: Path | None = None, at: tuple[int, int] = (800, 700)) -> np.ndarray:
    """A ``size x size`` crop of RG1_UNCR.dcm's stored values (or of a saved ``.npy`` image)."""
    if image is not None:
        pixels = np.load(image).astype(np.float64)
    else:
        import pydicom
        from pydicom.data import get_testdata_file

        pixels = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm")).pixel_array.astype(np.float64)
    top, left = at
    if top + size > pixels.shape[0] or left + size > pixels.shape[1]:
        raise ValueError(f"a {size}x{size} crop at {at} does not fit the {pixels.shape} image")
    return pixels[top : top + size, left : left + size]


def timed(run, repeats: int = 1) -> tuple[dict[str, np.ndarray], float]:
    """The result of ``run()`` and its best wall time over ``repeats`` runs."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return result, best


def flash_radiomics_maps(image: np.ndarray, backend: str) -> dict[str, np.ndarray]:
    """The same maps from flash-radiomics' spatial (voxel) extraction."""
    import SimpleITK as sitk
    from flash_radiomics import RadiomicsFeatureExtractor

    logging.getLogger("flash_radiomics").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as folder:
        extractor = RadiomicsFeatureExtractor(
            backend=backend, binCount=32, force2D=True, force2Ddimension=0, kernelRadius=2, maskedKernel=True,
            initValue=float("nan"), hdf5OutputDirectory=folder,
        )  # fmt: skip
        extractor.disableAllFeatures()
        for cls in FEATURES:
            extractor.enableFeatureClassByName(cls)
        result = extractor.execute(
            sitk.GetImageFromArray(image[None]), sitk.GetImageFromArray(np.ones((1, *image.shape), np.uint8)),
            label=1, spatialMode=True, output_hdf5_path=f"{folder}/maps.h5",
        )  # fmt: skip
    return {name: sitk.GetArrayFromImage(result[f"original_{name}"])[0] for name in expand_features(FEATURES)}


def worst(maps: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> tuple[float, str]:
    differences = {name: relative_difference(name, maps[name], reference[name]) for name in reference}
    name = max(differences, key=differences.get)
    return differences[name], name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the fast methods (best time kept)")
    parser.add_argument("--json", type=Path, help="also write the table here")
    parser.add_argument("--image", type=Path, help="a saved 2-D .npy image to crop instead of RG1_UNCR.dcm")
    parser.add_argument("--at", type=int, nargs=2, default=(800, 700), metavar=("ROW", "COL"), help="crop corner")
    parser.add_argument("--flash-backends", nargs="*", default=["cpu", "cuda"], help="flash-radiomics backends to run")
    parser.add_argument("--reference", choices=["pyradiomics", "radgazegen-cpu"], default="pyradiomics",
                        help="radgazegen-cpu: compare with texture_maps on CPU (tested equal to pyradiomics), "
                             "for machines without pyradiomics or for sizes where it takes too long")  # fmt: skip
    args = parser.parse_args()

    image = radiograph_crop(args.size, args.image, tuple(args.at))
    settings = dict(kernel_radius=2, bin_count=32, progress=False)
    texture_maps(image[:32, :32], FEATURES)  # warm-up (first-call allocations)
    ours, seconds = timed(lambda: texture_maps(image, FEATURES, **settings), args.repeats)
    if args.reference == "pyradiomics":
        reference, reference_seconds = timed(lambda: pyradiomics_maps(image, FEATURES, kernel_radius=2, bin_count=32))
        rows = [("pyradiomics (voxel-based)", "cpu", reference_seconds, 0.0, "")]
        rows.append(("radgazegen texture_maps", "cpu", seconds, *worst(ours, reference)))
    else:
        reference, reference_seconds = ours, seconds
        rows = [("radgazegen texture_maps", "cpu", seconds, 0.0, "")]
    if torch.cuda.is_available():
        texture_maps(image[:32, :32], FEATURES, device="cuda")
        ours, seconds = timed(lambda: texture_maps(image, FEATURES, device="cuda", **settings), args.repeats)
        rows.append(("radgazegen texture_maps", "cuda", seconds, *worst(ours, reference)))
    try:
        from flash_radiomics import detect_backends
    except ImportError:
        print("flash-radiomics is not installed (pip install flash-radiomics): skipped")
    else:
        for backend in [b for b in args.flash_backends if detect_backends().get(b)]:
            maps, seconds = timed(lambda backend=backend: flash_radiomics_maps(image, backend))
            rows.append(("flash-radiomics (spatial)", backend, seconds, *worst(maps, reference)))

    print(f"{args.size}x{args.size} radiograph crop, kernelRadius 2, binCount 32, force2D, "
          f"{len(reference)} first-order + GLCM features; {hardware()}")  # fmt: skip
    print(f"reference: {rows[0][0]} on {rows[0][1]}")
    print(f"{'method':28s} {'device':6s} {'seconds':>9s} {'speed-up':>9s} {'max rel. diff':>14s}  worst feature")
    table = []
    for method, device, seconds, difference, feature in rows:
        speedup = reference_seconds / seconds
        print(f"{method:28s} {device:6s} {seconds:9.3g} {speedup:8.3g}x {difference:14.2e}  {feature}")
        table.append({"method": method, "device": device, "seconds": float(f"{seconds:.4g}"), "speedup": float(f"{speedup:.3g}"),
                      "max_relative_difference": difference, "worst_feature": feature})  # fmt: skip
    if args.json:
        write_json_atomic(args.json, {"size": args.size, "kernel_radius": 2, "bin_count": 32, "features": len(reference),
                                      "reference": rows[0][0], "hardware": hardware(), "versions": versions(), "rows": table,
                                      "date": time.strftime("%Y-%m-%d")})  # fmt: skip
        print(f"table: {args.json}")


if __name__ == "__main__":
    main()
