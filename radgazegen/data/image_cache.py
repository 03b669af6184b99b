"""A run's radiographs at a working size: area-resampled once, then read from ``<run_dir>/images/<size>/``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radgazegen.data.reflacx import ReflacxCase
from radgazegen.data.resample import area_resample
from radgazegen.io import atomic_path


def cached_image(case: ReflacxCase, run_dir: str | Path, size: int) -> np.ndarray:
    """The case's radiograph area-resampled to ``size`` x ``size`` (as the control maps are, so both stay aligned),
    float32 in [0, 1]; cached as ``<run_dir>/images/<size>/<case>.npy`` (decoding a full radiograph each time would
    cost more than a small model's training step)."""
    path = Path(run_dir) / "images" / str(size) / f"{case.id}.npy"
    if path.is_file():
        return np.load(path)
    image = case.load_image()
    small = area_resample(np.asarray(image, dtype=np.float64), (size, size), mean=True).astype(np.float32)
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.save(handle, small)
    return small
