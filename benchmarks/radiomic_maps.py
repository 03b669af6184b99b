"""Voxel-wise radiomic maps: pyradiomics' voxel-based extraction (reference) vs radgazegen's texture_maps.

Crops of the real chest radiograph ``RG1_UNCR.dcm`` (pydicom-data) around three centres (a flat lung field,
the mass region, an edge of the heart) at 32, 64, 128 and 256 px; kernelRadius 2, binCount 32, force2D, all 42
first-order and GLCM features. In one run, for every crop: pyradiomics' time, ours warm (best of ``--repeats``
calls after a warm-up) and cold (the first call in a fresh process, imports excluded), the speed-up and the
worst relative difference over all features and voxels (``radgazegen.controls.reference.relative_difference``).
``flash-radiomics`` (PyPI) runs side by side when it is installed, on CPU and, with a GPU, on CUDA; radgazegen
also runs on CUDA when torch sees a GPU. Then:

- the per-call overhead: all 42 maps of an 8 x 8 crop, warm;
- a batch: the ``cpu`` preset's 120 phantom readings at the 64 px control size, one GLCM feature, as 120
  ``texture_maps`` calls and as one ``texture_maps_batch`` call (equal results checked);
- the memory-bandwidth limit of gathering each kernel's pair lists: a kernel of radius r has
  :math:`2(2r+1)2r + 2(2r)^2` pairs over the four angles, two grey levels (int64) each; at the measured copy
  bandwidth that is the time any method that reads every kernel's pairs once needs at least.

    python benchmarks/radiomic_maps.py [--sizes 32 64 128 256] [--json radgazegen/benchmark_results/radiomic_maps_cpu.json]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from radgazegen.controls.reference import pyradiomics_maps, relative_difference
from radgazegen.controls.texture import texture_maps, texture_maps_batch
from radgazegen.controls.texture_names import expand_features
from radgazegen.io import write_json_atomic
from radgazegen.runs import hardware, versions

FEATURES = ["firstorder", "glcm"]
SETTINGS = dict(kernel_radius=2, bin_count=32)
CROPS = {"lung field": (480, 1280), "mass": (1150, 450), "heart edge": (1250, 1130)}
"""Crop centres (row, column) in RG1_UNCR.dcm: a lung field between ribs, the round mass in the right lower
zone, the left heart border."""


def radiograph() -> np.ndarray:
    """RG1_UNCR.dcm's stored values as float64."""
    import pydicom
    from pydicom.data import get_testdata_file

    return pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm")).pixel_array.astype(np.float64)


def crop(pixels: np.ndarray, centre: tuple[int, int], size: int) -> np.ndarray:
    """The ``size x size`` crop of ``pixels`` centred on ``centre``."""
    top, left = centre[0] - size // 2, centre[1] - size // 2
    if top < 0 or left < 0 or top + size > pixels.shape[0] or left + size > pixels.shape[1]:
        raise ValueError(f"a {size}x{size} crop centred on {centre} does not fit the {pixels.shape} image")
    return pixels[top : top + size, left : left + size]


def timed(run, repeats: int = 1) -> tuple[object, float]:
    """The result of ``run()`` and its best wall time over ``repeats`` runs."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return result, best


COLD = """
import sys, time, numpy as np, torch
from radgazegen.controls.texture import texture_maps
image = np.load(sys.argv[1])
started = time.perf_counter()
texture_maps(image, ["firstorder", "glcm"], kernel_radius=2, bin_count=32, device=sys.argv[2], progress=False)
if sys.argv[2] == "cuda":
    torch.cuda.synchronize()
print(time.perf_counter() - started)
"""


def cold_seconds(image: np.ndarray, device: str) -> float:
    """The first ``texture_maps`` call in a fresh process (after its imports)."""
    with tempfile.TemporaryDirectory() as folder:
        np.save(f"{folder}/image.npy", image)
        found = subprocess.run([sys.executable, "-c", COLD, f"{folder}/image.npy", device], check=True,
                               capture_output=True, text=True)  # fmt: skip
    return float(found.stdout.split()[-1])


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


def pairs_per_voxel(radius: int) -> int:
    """Pairs of an interior kernel over the four angles: two axial angles of (2r+1)2r, two diagonal of (2r)^2."""
    return 2 * (2 * radius + 1) * 2 * radius + 2 * (2 * radius) ** 2


def copy_bandwidth() -> float:
    """Bytes per second that one torch copy of a 256 MiB float64 tensor reads and writes (best of 5)."""
    source = torch.ones(1 << 25, dtype=torch.float64)
    target = torch.empty_like(source)
    _, seconds = timed(lambda: target.copy_(source), 5)
    return 2 * source.numel() * source.element_size() / seconds


def phantom_batch(count: int, size: int) -> np.ndarray:
    """``count`` readings of a phantom generated like the ``cpu`` preset's, area-resampled to ``size x size``."""
    from radgazegen.data.phantom.writer import generate_phantom
    from radgazegen.data.reflacx import ReflacxDataset
    from radgazegen.data.resample import area_resample
    from radgazegen.presets import get_preset

    preset = get_preset("cpu")
    with tempfile.TemporaryDirectory() as folder:
        root = generate_phantom(Path(folder) / "reflacx", n=count, seed=preset.seed, size=preset.phantom_size,
                                progress=False)  # fmt: skip
        cases = list(ReflacxDataset(root))
        return np.stack([area_resample(case.load_image(), (size, size), mean=True) for case in cases])


def batch_rows(images: np.ndarray, features: list[str], repeats: int) -> list[dict]:
    """Per feature: ``len(images)`` single calls against one batched call (best of ``repeats``), results checked equal."""
    rows = []
    for feature in features:
        singles, single_seconds = timed(lambda f=feature: [texture_maps(i, f, **SETTINGS)[f] for i in images], repeats)
        batched, batch_seconds = timed(lambda f=feature: texture_maps_batch(images, f, **SETTINGS)[f], repeats)
        if not np.array_equal(np.stack(singles), batched, equal_nan=True):
            raise AssertionError(f"{feature}: the batched maps differ from the single calls'")
        rows.append({"feature": feature, "images": len(images), "size": images.shape[-1],
                     "single_calls_seconds": round(single_seconds, 4), "batched_seconds": round(batch_seconds, 4),
                     "speedup": round(single_seconds / batch_seconds, 2)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--crops", nargs="+", choices=list(CROPS), default=list(CROPS))
    parser.add_argument("--repeats", type=int, default=5, help="warm calls of the fast methods (best time kept)")
    parser.add_argument("--json", type=Path, help="also write the tables here")
    parser.add_argument("--flash-backends", nargs="*", default=["cpu", "cuda"], help="flash-radiomics backends to run")
    parser.add_argument("--reference", choices=["pyradiomics", "radgazegen-cpu"], default="pyradiomics",
                        help="radgazegen-cpu: compare with texture_maps on CPU (tested equal to pyradiomics), "
                             "for machines without pyradiomics or for sizes where it takes too long")  # fmt: skip
    parser.add_argument("--batch", type=int, default=120, help="phantom readings in the batch comparison (0: skip)")
    parser.add_argument("--batch-features", nargs="+", default=["glcm_Contrast", "glcm_JointEntropy"])
    args = parser.parse_args()

    pixels = radiograph()
    texture_maps(pixels[:32, :32], FEATURES, **SETTINGS)  # warm-up (first-call allocations, thread pool)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    try:
        from flash_radiomics import detect_backends

        flash = [backend for backend in args.flash_backends if detect_backends().get(backend)]
    except ImportError:
        print("flash-radiomics is not installed (pip install flash-radiomics): skipped")
        flash = []
    bandwidth = copy_bandwidth()
    print(f"kernelRadius 2, binCount 32, force2D, 42 first-order + GLCM features; {hardware()}; "
          f"copy bandwidth {bandwidth / 1e9:.1f} GB/s")  # fmt: skip
    header = (f"{'crop':11s} {'size':>4s} {'method':28s} {'device':6s} {'warm s':>8s} {'cold s':>8s} {'speed-up':>9s} "
              f"{'max rel. diff':>14s} {'limit s':>8s} {'x limit':>8s}  worst feature")  # fmt: skip
    print(header)
    rows = []
    for size in args.sizes:
        for name in args.crops:
            image = crop(pixels, CROPS[name], size)
            limit = image.size * pairs_per_voxel(2) * 2 * 8 / bandwidth
            found = []
            for device in devices:
                texture_maps(image, FEATURES, device=device, **SETTINGS)
                ours, seconds = timed(lambda d=device, i=image: texture_maps(i, FEATURES, device=d, **SETTINGS), args.repeats)
                found.append(("radgazegen texture_maps", device, ours, seconds, cold_seconds(image, device)))
            if args.reference == "pyradiomics":
                reference, reference_seconds = timed(lambda i=image: pyradiomics_maps(i, FEATURES, **SETTINGS))
                found.insert(0, ("pyradiomics (voxel-based)", "cpu", reference, reference_seconds, reference_seconds))
            for backend in flash:
                maps, seconds = timed(lambda b=backend, i=image: flash_radiomics_maps(i, b))
                found.append(("flash-radiomics (spatial)", backend, maps, seconds, seconds))
            reference, reference_seconds = found[0][2], found[0][3]
            for method, device, maps, seconds, cold in found:
                difference, feature = worst(maps, reference) if maps is not reference else (0.0, "")
                row = {"crop": name, "centre": list(CROPS[name]), "size": size, "method": method, "device": device,
                       "seconds": float(f"{seconds:.4g}"), "cold_seconds": float(f"{cold:.4g}"),
                       "speedup": float(f"{reference_seconds / seconds:.4g}"), "max_relative_difference": difference,
                       "worst_feature": feature, "limit_seconds": float(f"{limit:.4g}")}  # fmt: skip
                rows.append(row)
                print(f"{name:11s} {size:4d} {method:28s} {device:6s} {seconds:8.3g} {cold:8.3g} "
                      f"{row['speedup']:8.4g}x {difference:14.2e} {limit:8.2g} {seconds / limit:7.1f}x  {feature}",
                      flush=True)  # fmt: skip

    tiny = crop(pixels, CROPS["lung field"], 8)
    texture_maps(tiny, FEATURES, **SETTINGS)
    _, overhead = timed(lambda: texture_maps(tiny, FEATURES, **SETTINGS), 20)
    print(f"per-call overhead (all 42 maps of an 8 x 8 crop, warm, best of 20): {overhead * 1e3:.1f} ms")

    batches = []
    if args.batch:
        images = phantom_batch(args.batch, 64)
        batches = batch_rows(images, args.batch_features, max(1, args.repeats // 2))
        for row in batches:
            print(f"batch of {row['images']} phantom readings at {row['size']} px, {row['feature']}: "
                  f"{row['single_calls_seconds']:.3f} s as single calls, {row['batched_seconds']:.3f} s batched "
                  f"({row['speedup']:.1f}x)")  # fmt: skip

    if args.json:
        write_json_atomic(args.json, {
            "kernel_radius": 2, "bin_count": 32, "features": len(expand_features(FEATURES)),
            "reference": rows[0]["method"] if rows else None, "hardware": hardware(), "versions": versions(),
            "copy_bandwidth_bytes_per_second": float(f"{bandwidth:.4g}"), "pairs_per_voxel": pairs_per_voxel(2),
            "overhead_seconds": float(f"{overhead:.4g}"), "rows": rows, "batches": batches,
            "date": time.strftime("%Y-%m-%d"),
        })  # fmt: skip
        print(f"table: {args.json}")


if __name__ == "__main__":
    main()
