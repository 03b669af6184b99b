"""Validated CSV reading: every problem is reported with the file, the row and the column."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from radgazegen.errors import DataFormatError

ColumnKind = Literal["float", "int", "str", "bool"]

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def read_table(path: str | Path, columns: Mapping[str, ColumnKind], *, allow_empty: bool = False) -> pd.DataFrame:
    """Read a CSV file and check that ``columns`` are present and hold values of their kind.

    Extra columns are kept as read (strings). Numeric columns come back as float64 / int64,
    ``bool`` columns as booleans. Raises :class:`DataFormatError` naming the file, row (1-based,
    header not counted) and column of the first bad value.
    """
    return convert_columns(path, read_strings(path, allow_empty=allow_empty), columns)


def read_strings(path: str | Path, *, allow_empty: bool = False) -> pd.DataFrame:
    """Read a CSV file with every value as a string (header names stripped).

    Every row has at most as many fields as the header (a short row's missing fields are empty) and no
    column name repeats; else :class:`DataFormatError`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    try:  # header=None: a row with more fields than the header is an error, not a shifted index column
        table = pd.read_csv(path, dtype=str, header=None, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataFormatError(path, "file is empty (no header line)") from None
    except (pd.errors.ParserError, UnicodeError, ValueError, OverflowError) as err:
        raise DataFormatError(path, f"not a readable CSV file ({' '.join(str(err).split())})") from None
    names = [str(c).strip() for c in table.iloc[0]]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataFormatError(path, f"column(s) {repeated} appear more than once in the header")
    frame = table.iloc[1:].reset_index(drop=True)
    frame.columns = names
    if frame.empty and not allow_empty:
        raise DataFormatError(path, "no data rows")
    return frame


def convert_columns(path: str | Path, frame: pd.DataFrame, columns: Mapping[str, ColumnKind]) -> pd.DataFrame:
    """Check that ``columns`` exist in a string table read from ``path`` and convert them to their kind."""
    path = Path(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataFormatError(path, f"missing column(s) {missing}; found {list(frame.columns)}")
    frame = frame.copy()
    for name, kind in columns.items():
        frame[name] = _convert(path, frame[name], name, kind)
    return frame


def _convert(path: Path, values: pd.Series, name: str, kind: ColumnKind) -> pd.Series:
    stripped = values.str.strip()
    if kind == "str":
        return stripped
    if kind == "bool":
        lowered = stripped.str.lower()
        bad = ~lowered.isin(_TRUE | _FALSE)
        _raise_first(path, bad, stripped, name, "is not a boolean (True/False)")
        return lowered.isin(_TRUE)
    numbers = pd.to_numeric(stripped, errors="coerce")
    _raise_first(path, numbers.isna() & (stripped != ""), stripped, name, "is not a number")
    _raise_first(path, stripped == "", stripped, name, "is empty")
    _raise_first(path, ~np.isfinite(numbers.to_numpy(dtype=float)), stripped, name, "is not finite")
    if kind == "int":
        _raise_first(path, numbers != np.round(numbers), stripped, name, "is not an integer")
        return numbers.astype(np.int64)
    return numbers.astype(np.float64)


def raise_at_first(path: Path, bad: pd.Series | np.ndarray, problem: Callable[[int], str]) -> None:
    """Raise :class:`DataFormatError` at the first row where ``bad`` is true; ``problem(i)`` words it."""
    flags = np.asarray(bad, dtype=bool)
    if flags.any():
        position = int(np.flatnonzero(flags)[0])
        raise DataFormatError(path, problem(position), row=position + 1)


def _raise_first(path: Path, bad: pd.Series | np.ndarray, raw: pd.Series, name: str, problem: str) -> None:
    raise_at_first(path, bad, lambda i: f"column '{name}' value {raw.iloc[i]!r} {problem}")


def check_order(path: Path, frame: pd.DataFrame, start: str, end: str) -> None:
    """Raise if any row has ``frame[end] < frame[start]`` (an interval that ends before it starts)."""
    raise_at_first(
        path,
        frame[end] < frame[start],
        lambda i: f"'{end}' ({frame[end].iloc[i]}) is before '{start}' ({frame[start].iloc[i]})",
    )
