"""The phantom's ground truth at a working size: finding and lung masks per reading.

Masks are area-resampled to ``size`` x ``size`` exactly as :func:`radgazegen.data.image_cache.cached_image`
resamples the images (so they stay aligned) and thresholded: a cell is inside when at least half of it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from radgazegen.data.images import load_mask
from radgazegen.data.reflacx import ReflacxDataset, inside_dataset
from radgazegen.data.resample import area_resample
from radgazegen.data.tables import ColumnKind, raise_at_first, read_table
from radgazegen.errors import DataFormatError, check_shape

FINDINGS_COLUMNS: dict[str, ColumnKind] = {"id": "str", "dicom_id": "str", "finding": "str", "mask": "str"}


def _findings_path(dataset_root: str | Path) -> Path:
    return Path(dataset_root) / "phantom" / "findings.csv"


def has_ground_truth(dataset_root: str | Path) -> bool:
    """Whether the data set at ``dataset_root`` has ground-truth finding masks (the phantom's ``phantom/findings.csv``).

    Real data sets (REFLACX and the others) have none; the evaluation asks this, never an exception.
    """
    return _findings_path(dataset_root).is_file()


def read_findings(dataset_root: str | Path) -> pd.DataFrame:
    """``phantom/findings.csv``: one row per ground-truth finding (``id, dicom_id, finding, mask``, ...)."""
    path = _findings_path(dataset_root)
    if not path.is_file():
        raise DataFormatError(path, "file not found: ground-truth finding masks exist only for the phantom data set")
    table = read_table(path, FINDINGS_COLUMNS, allow_empty=True)
    raise_at_first(path, ~table["mask"].map(inside_dataset), lambda i: f"'mask' {table['mask'].iloc[i]!r} is not a path inside the data set")
    return table


def resample_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A boolean mask area-resampled to ``size`` x ``size``: the cells at least half inside."""
    return area_resample(np.asarray(mask, dtype=np.float64), check_shape((size, size), "size"), mean=True) >= 0.5


def finding_masks(
    dataset_root: str | Path, case_ids: Sequence[str], size: int, *, progress: bool = False
) -> np.ndarray:
    """(n, size, size) bool: the union of each reading's ground-truth finding masks (all false for a normal one)."""
    root = Path(dataset_root)
    check_shape((size, size), "size")
    truth = read_findings(root)
    _check_ids(root, case_ids)
    result = np.zeros((len(case_ids), size, size), bool)
    for k, case_id in enumerate(tqdm(case_ids, desc="finding masks", unit="case", disable=not progress)):
        for relative in truth.loc[truth["id"] == case_id, "mask"]:
            result[k] |= resample_mask(load_mask(root / relative), size)
    return result


def lung_masks(dataset_root: str | Path, case_ids: Sequence[str], size: int, *, progress: bool = False) -> np.ndarray:
    """(n, size, size) bool: each reading's ground-truth lung mask (``phantom/lungs/<dicom_id>.png``)."""
    root = Path(dataset_root)
    check_shape((size, size), "size")
    read_findings(root)  # the phantom check
    dataset = ReflacxDataset(root, include_discarded=True)
    _check_ids(root, case_ids, dataset)
    result = np.zeros((len(case_ids), size, size), bool)
    for k, case_id in enumerate(tqdm(case_ids, desc="lung masks", unit="case", disable=not progress)):
        result[k] = resample_mask(load_mask(root / "phantom" / "lungs" / f"{dataset.case(case_id).dicom_id}.png"), size)
    return result


def _check_ids(root: Path, case_ids: Sequence[str], dataset: ReflacxDataset | None = None) -> None:
    known = set((dataset or ReflacxDataset(root, include_discarded=True)).ids)
    unknown = [case_id for case_id in case_ids if case_id not in known]
    if unknown:
        raise ValueError(f"{root}: unknown reading id(s) {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
