"""Exceptions raised on bad input (each names the file, the row and the problem) and argument checks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from numbers import Integral
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


class MissingWeightsError(FileNotFoundError):
    """A model folder or weight file is missing or unreadable; the message names the folder and the file."""


class ChecksumError(MissingWeightsError):
    """A file is missing, unlisted or differs from the SHA-256 (or size) its manifest records."""


@contextlib.contextmanager
def loading(path: str | Path) -> Iterator[None]:
    """Re-raise what a weight loader raises on a truncated or corrupt file as a :class:`MissingWeightsError`
    naming ``path`` (a folder or file), instead of a library traceback that may name neither."""
    try:
        yield
    except MissingWeightsError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, EOFError) as err:
        problem = " ".join(str(err).split()) or type(err).__name__
        raise MissingWeightsError(f"{path}: cannot be loaded ({problem}); a file is truncated or corrupt") from err


class ControlError(ValueError):
    """A control given to the generator is unknown, not trained, or of the wrong shape or range."""


def check_shape(shape: Sequence[int], name: str) -> tuple[int, int]:
    """``shape`` as a (height, width) pair of positive integers, else a ``ValueError`` naming it."""
    if len(shape) != 2 or not all(isinstance(n, Integral) and n > 0 for n in shape):
        raise ValueError(f"{name} must be (height, width) with two positive integers, got {tuple(shape)!r}")
    return int(shape[0]), int(shape[1])
