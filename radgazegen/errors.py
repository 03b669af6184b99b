"""Exceptions raised on bad input: each names the file, the row (when there is one) and the problem."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A data file is missing, malformed or inconsistent.

    The message always starts with the file's path, then the 1-based data row (header excluded)
    when the problem is in one row, then what is wrong.
    """

    def __init__(self, path: str | Path, problem: str, row: int | None = None) -> None:
        self.path = Path(path)
        self.row = row
        self.problem = problem
        where = f"{self.path}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {problem}")
