"""Reader for EGD-CXR (Karargyris et al., 2021): eye-gaze fixations on MIMIC-CXR images.

``fixations.csv`` has one row per fixation of a session; the columns used here are ``DICOM_ID``,
``FPOGS`` (fixation start, s), ``FPOGD`` (fixation duration, s) and ``X_ORIGINAL`` /
``Y_ORIGINAL`` (the fixation in original image pixels). ``master_sheet.csv`` has one row per
image (``dicom_id``) with its diagnosis labels.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from radgazegen.data.tables import ColumnKind, raise_at_first, read_table

EGD_FIXATION_COLUMNS: dict[str, ColumnKind] = {
    "DICOM_ID": "str",
    "FPOGS": "float",
    "FPOGD": "float",
    "X_ORIGINAL": "float",
    "Y_ORIGINAL": "float",
}
MASTER_SHEET_COLUMNS: dict[str, ColumnKind] = {"dicom_id": "str"}


def read_egd_fixations(path: str | Path) -> pd.DataFrame:
    """Read EGD-CXR ``fixations.csv`` (all images), validated; negative durations are an error."""
    path = Path(path)
    fixations = read_table(path, EGD_FIXATION_COLUMNS)
    raise_at_first(path, fixations["FPOGD"] < 0, lambda i: "'FPOGD' (fixation duration) is negative")
    return fixations


def egd_fixations_for(fixations: pd.DataFrame, dicom_id: str, *, source: str = "fixations.csv") -> pd.DataFrame:
    """The fixations of one image, sorted by start time; raises ``KeyError`` for an unknown id."""
    selected = fixations[fixations["DICOM_ID"] == dicom_id]
    if selected.empty:
        raise KeyError(f"unknown EGD-CXR DICOM_ID {dicom_id!r} in {source}")
    return selected.sort_values("FPOGS", kind="stable").reset_index(drop=True)


def read_master_sheet(path: str | Path) -> pd.DataFrame:
    """Read EGD-CXR ``master_sheet.csv``: one row per ``dicom_id`` with its label and report columns."""
    return read_table(Path(path), MASTER_SHEET_COLUMNS)
