"""Finding-label CSVs: CheXpert / MIMIC-CXR-JPG (1 / 0 / -1 / blank) and the MIMIC-CXR-LT splits (0 / 1).

CheXpert's ``train.csv`` / ``valid.csv`` name each image in a ``Path`` column; MIMIC-CXR-JPG's
``mimic-cxr-2.0.0-chexpert.csv`` and ``-negbio.csv`` label studies (``subject_id, study_id``)
with the same 14 columns. Uncertain labels (-1) follow a policy of Irvin et al. (2019):
U-ones (``"ones"``: uncertain is positive) or U-zeros (``"zeros"``); a blank label is negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from radgazegen.data.tables import convert_columns, raise_at_first, read_strings
from radgazegen.errors import DataFormatError

CHEXPERT_CLASSES: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
UNCERTAIN_POLICIES = {"ones": 1, "zeros": 0}
"""What an uncertain (-1) label becomes under each policy."""
STUDY_COLUMNS = ("subject_id", "study_id")
LONGTAIL_PATH_COLUMNS = ("path", "Path", "dicom_id", "id")
"""A MIMIC-CXR-LT split names each image in one of these (``id``: NIH-CXR-LT)."""
LONGTAIL_METADATA = ("subject_id", "study_id", "dicom_id", "path", "Path", "id", "subj_id", "split")
"""Columns of a long-tail split that are not classes; every other column is a 0/1 class."""


def read_chexpert_labels(
    path: str | Path, policy: str = "ones", classes: Sequence[str] = CHEXPERT_CLASSES
) -> pd.DataFrame:
    """A CheXpert-style label CSV with ``classes`` as 0/1 (``uint8``) columns under the uncertainty ``policy``.

    The image (``Path``) or study (``subject_id``, ``study_id``, as integers) columns and any other
    columns are kept as read. Raises :class:`DataFormatError` for missing columns or a label
    other than 1, 0, -1 or blank (naming the row and column).
    """
    if policy not in UNCERTAIN_POLICIES:
        raise ValueError(f"policy must be one of {sorted(UNCERTAIN_POLICIES)}, got {policy!r}")
    path = Path(path)
    frame = read_strings(path)
    if "Path" in frame.columns:
        frame = convert_columns(path, frame, {"Path": "str"})
    elif set(STUDY_COLUMNS) <= set(frame.columns):
        frame = convert_columns(path, frame, dict.fromkeys(STUDY_COLUMNS, "int"))
    else:
        raise DataFormatError(path, f"no 'Path' column nor {list(STUDY_COLUMNS)} columns; found {list(frame.columns)}")
    missing = [c for c in classes if c not in frame.columns]
    if missing:
        raise DataFormatError(path, f"missing label column(s) {missing}")
    for name in classes:
        frame[name] = _labels(path, frame[name], name, {1.0: 1, 0.0: 0, -1.0: UNCERTAIN_POLICIES[policy]}, blank=True)
    return frame


def read_longtail_split(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """A MIMIC-CXR-LT split CSV (Holste et al. 2022) and its classes: every column not in ``LONGTAIL_METADATA``.

    Class columns must hold 0 or 1 (read as ``uint8``); an image column (``LONGTAIL_PATH_COLUMNS``)
    is required. Raises :class:`DataFormatError` naming the row and column of a bad value.
    """
    path = Path(path)
    frame = read_strings(path)
    if not any(c in frame.columns for c in LONGTAIL_PATH_COLUMNS):
        raise DataFormatError(
            path, f"no image column (one of {list(LONGTAIL_PATH_COLUMNS)}); found {list(frame.columns)}"
        )
    classes = [c for c in frame.columns if c not in LONGTAIL_METADATA]
    if not classes:
        raise DataFormatError(path, "no class columns (every column is metadata)")
    frame = convert_columns(path, frame, {c: "int" for c in STUDY_COLUMNS if c in frame.columns})
    for name in classes:
        frame[name] = _labels(path, frame[name], name, {1.0: 1, 0.0: 0}, blank=False,
                              hint=f" (every column but {list(LONGTAIL_METADATA)} is a 0/1 class)")  # fmt: skip
    return frame, classes


def _labels(path: Path, raw: pd.Series, name: str, mapping: dict[float, int], blank: bool, hint: str = "") -> pd.Series:
    """``raw`` strings as ``uint8`` through ``mapping`` of their numeric values; blank is 0 if ``blank`` else an error."""
    stripped = raw.str.strip()
    numbers = pd.to_numeric(stripped, errors="coerce")
    valid = numbers.isin(list(mapping)) | (blank & (stripped == ""))
    allowed = ", ".join(f"{v:g}" for v in mapping) + (" or blank" if blank else "")
    raise_at_first(path, ~valid, lambda i: f"column '{name}' value {stripped.iloc[i]!r} is not {allowed}{hint}")
    return numbers.map(mapping).fillna(0).astype(np.uint8)
