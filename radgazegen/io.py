"""Atomic file writing: a reader never sees a half-written file, an interrupted writer leaves none."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from radgazegen.errors import ChecksumError, DataFormatError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, else delete it.

    Anything that writes to a path (``DataFrame.to_csv``, ``PIL.Image.save``, ``papermill``) can be
    made atomic with ``with atomic_path(p) as tmp: writer(tmp)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a staging folder next to ``path``; on success it replaces ``path``, else it is deleted.

    A reader sees the old folder or the complete new one, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield staging
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object from ``path``; a missing file, invalid JSON, another type or a missing ``required`` key is a
    :class:`~radgazegen.errors.DataFormatError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFormatError(path, f"not valid JSON ({err}); the file is truncated or damaged") from None
    if not isinstance(data, dict):
        raise DataFormatError(path, f"expected a JSON object, found {type(data).__name__}")
    missing = [key for key in required if key not in data]
    if missing:
        raise DataFormatError(path, f"missing key(s) {missing}")
    return data


def sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digests(folder: str | Path, *, exclude: str = "manifest.json") -> dict[str, str]:
    """SHA-256 of every file under ``folder`` but those named ``exclude``, by POSIX path relative to it."""
    folder = Path(folder)
    return {path.relative_to(folder).as_posix(): sha256(path) for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != exclude}  # fmt: skip


def verify_digests(folder: str | Path, listed: dict[str, str], manifest: str | Path, *, exclude: str = "manifest.json"
                   ) -> None:  # fmt: skip
    """Raise :class:`~radgazegen.errors.ChecksumError` naming the first file under ``folder`` that is missing,
    not ``listed`` in ``manifest`` or whose SHA-256 differs."""
    folder = Path(folder)
    found = file_digests(folder, exclude=exclude)
    for name in sorted(set(listed) | set(found)):
        file = folder / name
        if name not in listed:
            raise ChecksumError(f"{file}: not listed in {manifest} (a file it was not written with)")
        if name not in found:
            raise ChecksumError(f"{file}: missing (listed in {manifest})")
        if found[name] != listed[name]:
            raise ChecksumError(f"{file}: SHA-256 differs from {manifest} (a changed, truncated or corrupt file)")
