"""Atomic writing: a reader never sees a half-written file or folder, an interrupted writer leaves none.

A file is written to a hidden temporary sibling (``.<name>.<random>.tmp<suffix>``), a folder to a hidden
staging sibling (``.<name>.<random>.staging``); each is flushed to disk (``fsync``, with its directory)
before it is renamed into place. A folder being replaced is first renamed aside (``.<name>.<random>.old``),
then the new one in, then the old one deleted: at no moment does ``<name>`` hold a mixture. What a killed
writer leaves behind is hidden and named so; :func:`remove_leftovers` deletes it on the next start.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from radgazegen.errors import ChecksumError, DataFormatError

LEFTOVER = re.compile(r"\..+\.(tmp(\.[^.]*)?|staging|old)")
"""Names of what an interrupted atomic write leaves: temporary files, staging and set-aside folders."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success flush it and rename it onto ``path``, else delete it.

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
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a staging folder next to ``path``; on success it replaces ``path``, else it is deleted.

    A reader sees the old folder, the complete new one or (after a kill between the two renames) none,
    never a half-written or mixed one. What a killed earlier writer of ``path`` left beside it is deleted first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*"):  # an earlier writer of this folder was killed
        if stale.is_dir() and LEFTOVER.fullmatch(stale.name):
            shutil.rmtree(stale)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".staging", dir=path.parent))
    try:
        yield staging
        replace_dir(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def replace_dir(staging: str | Path, path: str | Path) -> None:
    """Put the complete folder ``staging`` at ``path``: flush it, rename an existing ``path`` aside
    (``.<name>.<random>.old``), rename ``staging`` in, delete the old one last."""
    staging, path = Path(staging), Path(path)
    for folder, _, files in os.walk(staging):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))
    aside = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.old"
    if path.exists():
        path.rename(aside)
    staging.rename(path)
    _fsync(path.parent)
    if aside.exists():
        shutil.rmtree(aside)


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Delete what interrupted atomic writes left anywhere under ``folder`` (:data:`LEFTOVER` names); returns them.

    Call it where a command starts on a folder it owns (no other writer running there).
    """
    removed = []
    for parent, folders, files in os.walk(folder):
        for name in [*folders, *files]:
            if LEFTOVER.fullmatch(name):
                target = Path(parent) / name
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
                removed.append(target)
        folders[:] = [name for name in folders if not LEFTOVER.fullmatch(name)]
    return removed


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's entries to disk (folders: where the platform allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # e.g. a directory on a file system that cannot fsync one
    finally:
        os.close(fd)


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


BYTECODE_CACHE = "__pycache__"
"""Python's bytecode caches (pip writes one beside a folder's ``.py`` file when it installs it): never digested."""


def file_digests(folder: str | Path, *, exclude: str = "manifest.json") -> dict[str, str]:
    """SHA-256 of every file under ``folder`` but those named ``exclude`` and Python's bytecode caches, by POSIX
    path relative to it."""
    folder = Path(folder)
    return {path.relative_to(folder).as_posix(): sha256(path) for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != exclude
            and BYTECODE_CACHE not in path.relative_to(folder).parts}  # fmt: skip


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
