"""Voxel-wise radiomic texture maps that equal pyradiomics' voxel-based extraction, vectorised in torch.

Semantics are pyradiomics' (``RadiomicsFeatureExtractor.execute(..., voxelBased=True)`` on a
one-slice volume with ``force2D``):

- the region is the mask's bounding box grown by the kernel radius (clipped to the image);
- grey levels are discretised once, by bin count or bin width, over the mask voxels (masked kernel)
  or over the whole region (unmasked kernel), exactly as ``radiomics.imageoperations.binImage``;
- each mask voxel's kernel is the ``(2r+1) x (2r+1)`` square around it, clipped at the image border
  and, with a masked kernel, restricted to the mask;
- features are every non-deprecated texture feature of pyradiomics: first-order
  (:mod:`~radgazegen.controls.texture_firstorder`), GLCM (:mod:`~radgazegen.controls.texture_glcm`),
  GLRLM and GLSZM (:mod:`~radgazegen.controls.texture_zones`), GLDM and NGTDM
  (:mod:`~radgazegen.controls.texture_neighbourhood`); :func:`~radgazegen.controls.reference.pyradiomics_maps`
  runs pyradiomics itself, the reference they are tested against.

The GLCM features that are functions of sums over a kernel's pairs come from box filters over the whole
region (:mod:`~radgazegen.controls.texture_glcm_windows`), on another worker while the rest runs. The rest
gather each kernel's cells or pairs for chunks of voxels (so memory stays bounded whatever the image size);
pair lists are sorted by how many grey levels their kernel can hold, so that the small per-kernel
eigenproblems of MCC come in batches of equal size. On a CPU each torch op runs on one thread and the chunks
spread over the cores (:mod:`radgazegen.threads`). :func:`texture_maps_batch` takes many images in one call.
Everything runs on the tensor's device, CPU or CUDA.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from tqdm.auto import tqdm

from radgazegen.controls import texture_firstorder, texture_glcm, texture_neighbourhood, texture_zones
from radgazegen.controls.texture_glcm_windows import CooccurrenceWindows
from radgazegen.controls.texture_names import expand_features
from radgazegen.threads import in_background, one_thread_per_op, thread_map, workers

PROGRESS_VOXELS = 1 << 18
"""Voxel count from which a progress bar is shown when ``progress`` is left to ``None``."""
LEVEL_MATRIX_BUDGET = {"cpu": 1 << 20, "cuda": 1 << 24}
"""Entries of a chunk's per-kernel level matrices (voxels x angles x levels^2: GLCM's ``matrix``, MCC's eigenproblems).
Voxels come sorted by how many levels their kernel holds, so a chunk of few-level kernels is long and one of
many-level kernels short. On a CPU 2^20 float64 entries (8 MB) stay in cache: at 64 x 64 (r = 2, 32 bins) this
made all 42 first-order and GLCM maps 2.4x faster than 2^24, and no size slower (``benchmarks/radiomic_maps.py``)."""


def texture_maps(
    image: np.ndarray | torch.Tensor,
    features: str | Iterable[str],
    *,
    kernel_radius: int = 2,
    bin_count: int | None = 32,
    bin_width: float | None = None,
    mask: np.ndarray | torch.Tensor | None = None,
    masked_kernel: bool = True,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> dict[str, np.ndarray]:
    """Feature maps of a 2-D image, one per pyradiomics feature name, each the image's shape.

    ``features``: names such as ``"firstorder_Mean"`` or ``"glcm_Contrast"``, or a class name
    (``"glcm"``) for all its non-deprecated features. ``bin_width``, when given, discretises by bin
    width and ``bin_count`` is ignored. Voxels outside ``mask`` (default: the whole image) are ``nan``
    (pyradiomics' ``initValue`` as :func:`~radgazegen.controls.reference.pyradiomics_maps` sets it).
    ``device`` defaults to the image's device (CPU for numpy input). ``chunk_size`` voxels are processed
    at a time (default 4096 on CPU, where it keeps the work in cache, and 65536 on CUDA).
    """
    return texture_maps_batch(
        [image], features, kernel_radius=kernel_radius, bin_count=bin_count, bin_width=bin_width,
        masks=None if mask is None else [mask], masked_kernel=masked_kernel,
        device=device, dtype=dtype, chunk_size=chunk_size, progress=progress, stacked=False,
    )[0]  # fmt: skip


def texture_maps_batch(
    images: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
    features: str | Iterable[str],
    *,
    kernel_radius: int = 2,
    bin_count: int | None = 32,
    bin_width: float | None = None,
    masks: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor] | None = None,
    masked_kernel: bool = True,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    chunk_size: int | None = None,
    progress: bool | None = None,
    stacked: bool = True,
):
    """The maps of many 2-D images in one call, equal to one :func:`texture_maps` call per image.

    ``images``: an ``(images, height, width)`` array or tensor, or a sequence of 2-D images (``masks``
    alike, or ``None``). Each image is discretised on its own, as its single call would be. The GLCM
    features that are functions of sums over a kernel's pairs (``texture_glcm.FEATURES.kernel_sums``:
    contrast, correlation, the inverse differences, ...) are computed for all images of one shape
    together, by box filters over their stacked pair images; the others image by image. Returns
    name -> ``(images, height, width)`` array when ``stacked`` (the images must share a shape), else a
    list of ``{name: map}``, one per image.
    """
    names = expand_features(features)
    if isinstance(images, np.ndarray | torch.Tensor) and images.ndim != 3:
        raise ValueError(f"images must be (images, height, width) or a sequence of 2-D images, got shape {tuple(images.shape)}")
    listed = list(images)
    if not listed:
        raise ValueError("no images given")
    mask_list = [None] * len(listed) if masks is None else list(masks)
    if len(mask_list) != len(listed):
        raise ValueError(f"{len(mask_list)} masks for {len(listed)} images")
    checked = []
    for number, (image, mask) in enumerate(zip(listed, mask_list, strict=True)):
        try:
            checked.append(as_arrays(image, mask))
        except ValueError as err:
            if len(listed) == 1:
                raise
            raise ValueError(f"image {number}: {err}") from err
    if stacked and len({image.shape for image, _ in checked}) > 1:
        raise ValueError(f"images of different shapes {sorted({i.shape for i, _ in checked})}: pass stacked=False")
    _check_settings(kernel_radius, bin_count, bin_width, chunk_size or 1)
    if device is None:
        first = listed[0]
        device = first.device if isinstance(first, torch.Tensor) else "cpu"
    device = torch.device(device)
    if chunk_size is None:
        chunk_size = 65536 if device.type == "cuda" else 4096
    with one_thread_per_op(device):
        maps = _maps([i for i, _ in checked], [m for _, m in checked], names, kernel_radius, bin_count, bin_width,
                     masked_kernel, device, dtype, chunk_size, progress)  # fmt: skip
    if not stacked:
        return maps
    return {name: np.stack([found[name] for found in maps]) for name in names}


def segment_features(
    image: np.ndarray | torch.Tensor,
    features: str | Iterable[str],
    *,
    mask: np.ndarray | torch.Tensor | None = None,
    bin_count: int | None = 32,
    bin_width: float | None = None,
    dtype: torch.dtype = torch.float64,
) -> dict[str, float]:
    """Features of the whole mask, as pyradiomics' segment-based extraction (``force2D``) gives them.

    The same formulas as :func:`texture_maps` with one kernel that is the whole region.
    """
    names = expand_features(features)
    image_array, mask_array = as_arrays(image, mask)
    _check_settings(1, bin_count, bin_width, 1)
    levels, n_levels, max_level = _grey_levels(image_array, mask_array, bin_count, bin_width)
    values = torch.as_tensor(image_array[mask_array], dtype=dtype)[None]
    window_levels = torch.as_tensor(levels[mask_array])[None]
    first_order = texture_firstorder.FirstOrderWindows(values, window_levels, max_level)
    height, width = levels.shape
    firsts, seconds = [], []
    for dy, dx in texture_glcm.ANGLES:
        rows, cols = slice(0, height - dy), slice(max(0, -dx), width - max(0, dx))
        moved_rows, moved_cols = slice(dy, height), slice(max(0, dx), width + min(0, dx))
        firsts.append(levels[rows, cols].ravel())
        seconds.append(levels[moved_rows, moved_cols].ravel())
    longest = max(len(f) for f in firsts)
    first = torch.as_tensor(np.stack([np.pad(f, (0, longest - len(f))) for f in firsts]))[None]
    second = torch.as_tensor(np.stack([np.pad(f, (0, longest - len(f))) for f in seconds]))[None]
    valid = (first > 0) & (second > 0)
    empty = valid.sum(-1)[0] == 0
    lists = texture_glcm.CooccurrenceLists(first, second, valid, n_levels=n_levels, max_level=max_level,
                                           empty_angles=empty, some_kernel_lacks_an_angle=False, dtype=dtype)  # fmt: skip
    tables = {
        "firstorder": (texture_firstorder.FEATURES, first_order),
        "glcm": (texture_glcm.FEATURES, lists),
        **_grid_classes(torch.as_tensor(levels)[None], max_level, dtype, set(GRID_CLASSES)),
    }
    found = {}
    for name in names:
        cls, feature = name.split("_", 1)
        table, data = tables[cls]
        found[name] = float(table[feature](data)[0])
    return found


def as_arrays(
    image: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor | None
) -> tuple[np.ndarray, np.ndarray]:
    """The image as float64 and the mask as bool numpy arrays (an all-true mask when ``None``), checked."""
    raw = _numpy(image)
    if raw.dtype.kind not in "biuf":
        raise ValueError(f"image must hold numbers, got dtype {raw.dtype}")
    image_array = raw.astype(np.float64)
    if image_array.ndim != 2 or image_array.size < 2:
        raise ValueError(f"image must be 2-D (height, width) with at least two voxels, got shape {image_array.shape}")
    if mask is None:
        return image_array, np.ones(image_array.shape, bool)
    mask_array = _numpy(mask)
    if mask_array.shape != image_array.shape:
        raise ValueError(f"mask shape {mask_array.shape} differs from image shape {image_array.shape}")
    mask_array = mask_array.astype(bool)
    if mask_array.sum() < 2:
        raise ValueError("mask must hold at least two voxels")
    return image_array, mask_array


def _grey_levels(image: np.ndarray, region: np.ndarray, bin_count, bin_width) -> tuple[np.ndarray, int, int]:
    """Discretised grey levels (0 outside ``region``), the number of levels present and the highest one."""
    inside = image[region]
    if not np.isfinite(inside).all():
        raise ValueError("image has non-finite values inside the region")
    levels = np.where(region, np.digitize(image, discretise(inside, bin_count, bin_width)), 0)
    present = np.flatnonzero(np.bincount(levels[region]))
    return levels, len(present), int(present[-1])


def discretise(values: np.ndarray, bin_count: int | None, bin_width: float | None) -> np.ndarray:
    """pyradiomics' bin edges for ``values`` (``imageoperations.getBinEdges``)."""
    if bin_width is None:
        edges = np.histogram_bin_edges(values, int(bin_count))
        edges[-1] += 1
        return edges
    low, high = float(values.min()), float(values.max())
    edges = np.arange(low - (low % bin_width), high + 2 * bin_width, bin_width)
    return np.array([edges[0] - 0.5, edges[0] + 0.5]) if len(edges) == 1 else edges


@dataclass(frozen=True)
class _Kernels:
    """Flat padded grids of one region and the offsets that gather kernels and pairs from them."""

    levels: torch.Tensor  # grey level per cell (0 = not in the kernel)
    values: torch.Tensor  # intensity per cell (nan = not in the kernel)
    centres: torch.Tensor  # flat index of each mask voxel
    window: torch.Tensor  # flat offsets of the kernel cells
    first: torch.Tensor  # (angles, pairs) flat offsets of the first end of each pair (the centre on padding)
    step: torch.Tensor  # (angles,) flat offset from the first to the second end
    real: torch.Tensor  # (angles, pairs) False on padding slots (angles with fewer pairs than the longest)

    def gather_window(self, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = centres[:, None] + self.window[None]
        return self.values[index], self.levels[index]

    def gather_pairs(self, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        first = centres[:, None, None] + self.first[None]
        a, b = self.levels[first], self.levels[first + self.step[None, :, None]]
        return a, b, (a > 0) & (b > 0) & self.real[None]


def _kernels(levels: np.ndarray, values: np.ndarray, targets: np.ndarray, radius: int, device, dtype) -> _Kernels:
    padded_width = levels.shape[1] + 2 * radius
    level_grid = np.pad(levels, radius).ravel()
    value_grid = np.pad(values, radius, constant_values=np.nan).ravel()
    ys, xs = np.nonzero(targets)
    centres = (ys + radius) * padded_width + xs + radius
    span = range(-radius, radius + 1)
    window = [dy * padded_width + dx for dy in span for dx in span]
    firsts = []
    for dy, dx in texture_glcm.ANGLES:
        offsets = [oy * padded_width + ox for oy in span for ox in span if -radius <= oy + dy <= radius
                   and -radius <= ox + dx <= radius]  # fmt: skip
        firsts.append(offsets)
    longest = max(len(o) for o in firsts)
    real = [[True] * len(o) + [False] * (longest - len(o)) for o in firsts]
    firsts = [o + [0] * (longest - len(o)) for o in firsts]

    def tensor(array, kind=torch.int64):
        return torch.as_tensor(np.asarray(array), dtype=kind, device=device)

    return _Kernels(
        levels=tensor(level_grid),
        values=tensor(value_grid, dtype),
        centres=tensor(centres),
        window=tensor(window),
        first=tensor(firsts),
        step=tensor([dy * padded_width + dx for dy, dx in texture_glcm.ANGLES]),
        real=tensor(real, torch.bool),
    )


@dataclass(frozen=True)
class _Region:
    """One image's region: the crop around its mask, its grey levels and the voxels whose maps are wanted."""

    top: int
    left: int
    levels: np.ndarray  # discretised levels of the crop, 0 outside the kernel region
    values: np.ndarray  # intensities of the crop, nan outside the kernel region
    targets: np.ndarray  # the mask voxels inside the crop
    n_levels: int
    max_level: int


def _region(image, mask, radius, bin_count, bin_width, masked_kernel) -> _Region:
    """The mask's bounding box grown by the radius (clipped to the image), discretised as pyradiomics does."""
    rows, cols = np.nonzero(mask)
    top, left = max(rows.min() - radius, 0), max(cols.min() - radius, 0)
    bottom, right = min(rows.max() + radius + 1, image.shape[0]), min(cols.max() + radius + 1, image.shape[1])
    crop = image[top:bottom, left:right]
    targets = mask[top:bottom, left:right]
    in_kernel = targets if masked_kernel else np.ones(crop.shape, bool)
    levels, n_levels, max_level = _grey_levels(crop, in_kernel, bin_count, bin_width)
    return _Region(int(top), int(left), levels, np.where(in_kernel, crop, np.nan), targets, n_levels, max_level)


def _regions(images, masks, radius, bin_count, bin_width, masked_kernel) -> list[_Region]:
    """:func:`_region` of each image; an error names the image when there are several."""
    regions = []
    for number, (image, mask) in enumerate(zip(images, masks, strict=True)):
        try:
            regions.append(_region(image, mask, radius, bin_count, bin_width, masked_kernel))
        except ValueError as err:
            if len(images) == 1:
                raise
            raise ValueError(f"image {number}: {err}") from err
    return regions


def _whole_image_regions(images, masks, bin_count, bin_width) -> list[_Region] | None:
    """Regions of several same-shape, finite images without masks, binned by count: :func:`_region` for all at
    once (numpy's bin edges with array endpoints, ``np.digitize`` as a batched ``searchsorted``); else ``None``."""
    if bin_width is not None or len(images) < 2 or len({image.shape for image in images}) > 1:
        return None
    if not all(mask.all() for mask in masks):
        return None
    values = np.stack(images).reshape(len(images), -1)
    if not np.isfinite(values).all():
        return None  # the image-by-image path names the image
    low, high = values.min(1), values.max(1)
    flat = low == high  # as np.histogram_bin_edges: a flat image's range is widened by 0.5 each side
    edges = np.linspace(np.where(flat, low - 0.5, low), np.where(flat, high + 0.5, high), int(bin_count) + 1, axis=1)
    edges[:, -1] += 1
    levels = torch.searchsorted(torch.from_numpy(np.ascontiguousarray(edges)), torch.from_numpy(values), right=True).numpy()
    regions = []
    for image, mask, level in zip(images, masks, levels, strict=True):
        present = np.flatnonzero(np.bincount(level))
        regions.append(_Region(0, 0, level.reshape(image.shape), image, mask, len(present), int(present[-1])))
    return regions


def _maps(images, masks, names, radius, bin_count, bin_width, masked_kernel, device, dtype, chunk_size, progress):
    """Each image's maps (checked arrays in, one ``{name: map}`` per image out)."""
    regions = _whole_image_regions(images, masks, bin_count, bin_width) or _regions(
        images, masks, radius, bin_count, bin_width, masked_kernel
    )
    found: list[dict[str, torch.Tensor]] = [{} for _ in regions]  # per image: name -> values at its targets
    pair_counts: list[Callable[[], torch.Tensor] | None] = [None] * len(regions)
    summing = []  # per group of regions box-summed together: its regions, their kernel counts, its result
    if any(name.startswith("glcm_") for name in names):
        summed = [name for name in names if name.startswith("glcm_") and name[5:] in texture_glcm.FEATURES.kernel_sums]
        for numbers in _summable_groups(regions, radius):
            sizes = [int(regions[n].targets.sum()) for n in numbers]
            result = in_background(partial(_summed_maps, [regions[n] for n in numbers], summed, radius, device, dtype))
            summing.append((numbers, sizes, result))
            for k, number in enumerate(numbers):
                pair_counts[number] = partial(_region_part, result, sizes, k)
                found[number] |= {name: None for name in summed}
    for number, region in enumerate(regions):  # while the box sums run on other workers
        rest = [name for name in names if name not in found[number]]
        if rest:
            found[number] |= _kernel_maps(region, rest, radius, device, dtype, chunk_size, progress, pair_counts[number])
    for numbers, sizes, result in summing:
        for name, values in result()[1].items():
            for number, part in zip(numbers, torch.split(values, sizes), strict=True):
                found[number][name] = part
    out_dtype = np.float64 if dtype == torch.float64 else np.float32
    maps = []
    for image, region, values in zip(images, regions, found, strict=True):
        height, width = region.targets.shape
        crop = slice(region.top, region.top + height), slice(region.left, region.left + width)
        maps.append({})
        for name in names:
            full = np.full(image.shape, np.nan, dtype=out_dtype)
            full[crop][region.targets] = values[name].cpu().numpy()
            maps[-1][name] = full
    return maps


def _region_part(result: Callable[[], tuple], sizes: list[int], k: int) -> torch.Tensor:
    """The ``k``-th region's kernels of a group's box-summed pair counts."""
    return torch.split(result()[0], sizes)[k]


def _summed_maps(regions: list[_Region], names: list[str], radius: int, device, dtype):
    """Box sums over same-shape regions: each kernel's pair counts ``(kernels, angles)`` and the GLCM features
    ``names`` (``"glcm_<Feature>"``), kernels in region order."""
    windows = _windows(regions, radius, device, dtype)
    return windows.pair_counts.T, {name: texture_glcm.FEATURES[name.split("_", 1)[1]](windows) for name in names}


def _summable_groups(regions: list[_Region], radius: int) -> list[list[int]]:
    """The regions whose GLCM pair sums are exact in int64, grouped by the shape of their level grid, each
    group split into one part per worker."""
    groups: dict[tuple[int, int], list[int]] = {}
    for number, region in enumerate(regions):
        if CooccurrenceWindows.exact(radius, region.max_level):
            groups.setdefault(region.levels.shape, []).append(number)
    return [group[start : start + step] for group in groups.values()
            for step in [-(-len(group) // workers())] for start in range(0, len(group), step)]  # fmt: skip


def _windows(regions: list[_Region], radius: int, device, dtype) -> CooccurrenceWindows:
    """Box-filtered pair sums of same-shape regions, their kernels in region order."""
    return CooccurrenceWindows(
        torch.as_tensor(np.stack([region.levels for region in regions]), device=device),
        radius,
        torch.as_tensor(np.stack([region.targets for region in regions]), device=device),
        max_level=torch.tensor([region.max_level for region in regions], device=device),
        dtype=dtype,
    )


def _kernel_maps(region, names, radius, device, dtype, chunk_size, progress, pair_counts) -> dict[str, torch.Tensor]:
    """Maps from each kernel's own cells or pairs, gathered chunk by chunk (``pair_counts``: gives the pairs per
    kernel and angle when the box sums count them, waited for only when the pair lists need them)."""
    kernels = _kernels(region.levels, region.values, region.targets, radius, device, dtype)
    max_level = region.max_level
    by_class: dict[str, list[str]] = {}
    for name in names:
        cls, feature = name.split("_", 1)
        by_class.setdefault(cls, []).append(feature)
    listed = bool(by_class.get("glcm"))
    on_grid = [(cls, name) for cls in GRID_CLASSES for name in by_class.get(cls, [])]
    on_cells = "firstorder" in by_class or bool(on_grid)

    total = len(kernels.centres)
    results = {name: torch.empty(total, dtype=dtype, device=device) for name in names}
    show = total >= PROGRESS_VOXELS if progress is None else progress
    with tqdm(total=total * (on_cells + listed), desc="texture maps", unit="voxel", disable=not show) as bar:
        if on_cells:  # kernels' cells: first-order and grid classes, in chunks spread over the workers
            step = min(chunk_size, -(-total // workers()))
            chunks = [slice(start, start + step) for start in range(0, total, step)]

            def cell_maps(chosen: slice) -> dict[str, torch.Tensor]:
                values, window_levels = kernels.gather_window(kernels.centres[chosen])
                found = {}
                if "firstorder" in by_class:
                    windows = texture_firstorder.FirstOrderWindows(values, window_levels, max_level)
                    found |= {f"firstorder_{f}": texture_firstorder.FEATURES[f](windows) for f in by_class["firstorder"]}
                if on_grid:
                    grids = _grid_classes(window_levels.reshape(-1, 2 * radius + 1, 2 * radius + 1), max_level, dtype,
                                          {cls for cls, _ in on_grid})  # fmt: skip
                    found |= {f"{cls}_{f}": grids[cls][0][f](grids[cls][1]) for cls, f in on_grid}
                return found

            for chosen, found in zip(chunks, thread_map(cell_maps, chunks), strict=True):
                for name, values in found.items():
                    results[name][chosen] = values
                bar.update(len(range(total)[chosen]))
        if listed:  # kernels' pair lists, by how many levels they hold: few-level kernels in long chunks
            counts = pair_counts() if pair_counts is not None else _pair_counts(kernels, chunk_size)
            empty_angles = counts.sum(0) == 0
            lacking = bool((counts[:, ~empty_angles] == 0).any())
            sizes = _level_spans(region, radius, device)
            order = torch.argsort(sizes, stable=True)
            budget = LEVEL_MATRIX_BUDGET["cuda" if device.type == "cuda" else "cpu"]
            chunks, start = [], 0
            while start < total:
                widest = int(sizes[order[min(start + chunk_size, total) - 1]])
                chunks.append(order[start : start + min(chunk_size, max(64, budget // (4 * widest * widest)))])
                start += len(chunks[-1])

            def listed_maps(chosen: torch.Tensor) -> dict[str, torch.Tensor]:
                lists = texture_glcm.CooccurrenceLists(
                    *kernels.gather_pairs(kernels.centres[chosen]), n_levels=region.n_levels, max_level=max_level,
                    empty_angles=empty_angles, some_kernel_lacks_an_angle=lacking, dtype=dtype,
                )  # fmt: skip
                return {feature: texture_glcm.FEATURES[feature](lists) for feature in by_class["glcm"]}

            for chosen, found in zip(chunks, thread_map(listed_maps, chunks), strict=True):
                for feature, values in found.items():
                    results[f"glcm_{feature}"][chosen] = values
                bar.update(len(chosen))
    return results


GRID_CLASSES = ("glrlm", "glszm", "gldm", "ngtdm")
"""Classes computed on each kernel as a small 2-D grid (runs, zones, neighbours) rather than a pair list."""


def _grid_classes(levels: torch.Tensor, max_level: int, dtype: torch.dtype, wanted: set[str]) -> dict[str, tuple]:
    """Feature tables and their input for the grid classes in ``wanted``, on ``(kernels, height, width)`` levels."""
    found: dict[str, tuple] = {}
    if wanted & {"gldm", "ngtdm"}:
        windows = texture_neighbourhood.NeighbourhoodWindows(levels, max_level, dtype)
        found["gldm"], found["ngtdm"] = (texture_neighbourhood.GLDM, windows), (texture_neighbourhood.NGTDM, windows)
    if "glrlm" in wanted:
        found["glrlm"] = (texture_zones.GLRLM, texture_zones.runs(levels, max_level, dtype))
    if "glszm" in wanted:
        found["glszm"] = (texture_zones.GLSZM, texture_zones.zones(levels, max_level, dtype))
    return found


def _pair_counts(kernels: _Kernels, chunk_size: int) -> torch.Tensor:
    """Each mask voxel's number of pairs per angle, from its gathered pair list."""
    return torch.cat([kernels.gather_pairs(kernels.centres[start : start + chunk_size])[2].sum(-1)
                      for start in range(0, len(kernels.centres), chunk_size)])  # fmt: skip


def _level_spans(region: _Region, radius: int, device) -> torch.Tensor:
    """Per mask voxel, ``max - min + 1`` of the grey levels in its kernel: a bound on how many it holds (pooling)."""
    levels = torch.as_tensor(region.levels, dtype=torch.float32, device=device)[None, None]
    pool = partial(torch.nn.functional.max_pool2d, kernel_size=2 * radius + 1, stride=1, padding=radius)
    highest = pool(levels)[0, 0]
    lowest = -pool(-torch.where(levels > 0, levels, torch.inf))[0, 0]
    ys, xs = (torch.as_tensor(index, device=device) for index in np.nonzero(region.targets))
    return (highest - lowest + 1)[ys, xs].long()


def _check_settings(kernel_radius, bin_count, bin_width, chunk_size) -> None:
    if isinstance(kernel_radius, bool) or not isinstance(kernel_radius, int) or kernel_radius < 1:
        raise ValueError(f"kernel_radius must be an integer >= 1, got {kernel_radius!r}")
    if bin_width is None:
        if isinstance(bin_count, bool) or not isinstance(bin_count, int) or bin_count < 1:
            raise ValueError(f"bin_count must be an integer >= 1 (or give bin_width), got {bin_count!r}")
    elif not (isinstance(bin_width, int | float) and math.isfinite(bin_width) and bin_width > 0):
        raise ValueError(f"bin_width must be a positive number, got {bin_width!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")


def _numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    return array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
