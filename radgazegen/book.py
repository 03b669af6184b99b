"""Execute the book's notebooks with papermill for a preset, then build the HTML book.

Sources in ``notebooks/`` stay output-free; executed copies go where ``_toc.yml`` points
(``book/chapters/<name>.ipynb``). A notebook is re-executed only when its cache key changes:
the hash of its source, its parameters and the package (version and source files).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import yaml
from tqdm.auto import tqdm

from radgazegen import __version__
from radgazegen.io import atomic_path, remove_leftovers
from radgazegen.presets import Preset
from radgazegen.runs import hardware, prepare_dataset, record, run_dir_for, versions

CHAPTERS_DIR = Path("book") / "chapters"
NOTEBOOKS_DIR = Path("notebooks")
_PACKAGE_DIR = Path(__file__).resolve().parent


COLAB_CELL = """\
# In Colab: install radgazegen from its repository and let the widgets render (elsewhere: nothing to do).
import sys

if "google.colab" in sys.modules:
    %pip install --quiet "radgazegen @ git+{repository}"
    from google.colab import output

    output.enable_custom_widget_manager()"""
"""The first code cell of every chapter (before ``parameters``), ``{repository}`` from ``_config.yml``."""


class NotebookFailed(RuntimeError):
    """A notebook raised while executing; the message names the notebook, the cell and the error."""


def repository_url(root: str | Path) -> str:
    """The book's repository (``repository.url`` of ``_config.yml``)."""
    return yaml.safe_load((Path(root) / "_config.yml").read_text())["repository"]["url"].rstrip("/")


def colab_url(root: str | Path, name: str) -> str:
    """Where Colab opens chapter ``name``: its output-free source in ``notebooks/`` on the main branch."""
    repository = repository_url(root).removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repository}/blob/main/{NOTEBOOKS_DIR.as_posix()}/{name}.ipynb"


def chapter_notebooks(root: str | Path) -> list[str]:
    """Names (stems) of the executed chapters that ``_toc.yml`` lists under ``book/chapters/``, in order."""
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    names: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            target = node.get("file")
            if isinstance(target, str) and Path(target).parent == CHAPTERS_DIR:
                names.append(Path(target).stem)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return names


def package_fingerprint() -> str:
    """Hash of the installed package's version and source files (so code changes re-execute)."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(_PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(_PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(source: Path, parameters: dict) -> str:
    digest = hashlib.sha256(source.read_bytes())
    digest.update(json.dumps(parameters, sort_keys=True).encode())
    digest.update(package_fingerprint().encode())
    return digest.hexdigest()


def notebook_parameters(preset: Preset, data_dir: str | None, images_dir: str | None, run_dir: Path) -> dict:
    """The papermill parameters every chapter takes."""
    return {
        "preset": preset.name,
        "data_dir": str(Path(data_dir).resolve()) if data_dir else "",
        "images_dir": str(Path(images_dir).resolve()) if images_dir else "",
        "run_dir": str(run_dir.resolve()),
        "interactive": False,  # live ipywidgets can stall nbclient (jupyter/nbclient#312); the book shows static frames
    }


def shipped_weights(preset: Preset) -> dict[str, str] | None:
    """The SHA-256 of every file of the preset's shipped pipeline, verified (:class:`ChecksumError` if one differs)."""
    from radgazegen.models.shipped import MANIFEST, pipeline_folder, verify

    folder = pipeline_folder(preset)
    return verify(folder)["sha256"] if folder is not None and (folder / MANIFEST).is_file() else None


def execute_notebooks(
    root: str | Path,
    preset: Preset,
    *,
    data_dir: str | None = None,
    images_dir: str | None = None,
    run_dir: str | Path | None = None,
    executed_dir: str | Path | None = None,
    force: bool = False,
    only: list[str] | None = None,
    progress: bool = True,
) -> dict[str, str]:
    """Execute every chapter of ``_toc.yml`` in order; returns ``{name: "executed" | "cached"}``.

    Stops at the first failing notebook with :class:`NotebookFailed`; its partly executed copy is
    kept in ``<run_dir>/failed/`` for inspection and the previous good copy is left in place. The preset's
    shipped pipeline is verified against its SHA-256 first; a chapter is cached per weights.
    """
    import papermill

    root = Path(root).resolve()
    run_dir = run_dir_for(preset, run_dir)
    if not run_dir.is_absolute():
        run_dir = root / run_dir
    executed_dir = root / (executed_dir or CHAPTERS_DIR)
    for folder in (run_dir, executed_dir):  # what an interrupted build left (before any notebook writes there)
        if folder.is_dir():
            remove_leftovers(folder)
    parameters = notebook_parameters(preset, data_dir, images_dir, run_dir)
    prepare_dataset(preset, data_dir, run_dir, images_dir)  # generate the phantom / validate real data once, up front
    weights = shipped_weights(preset)
    names = chapter_notebooks(root)
    if only is not None:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ValueError(f"not chapters of {root / '_toc.yml'}: {unknown}; chapters are {names}")
        names = [n for n in names if n in only]
    status: dict[str, str] = {}
    bar = tqdm(names, desc=f"notebooks ({preset.name})", unit="nb", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        source = root / NOTEBOOKS_DIR / f"{name}.ipynb"
        if not source.is_file():
            raise FileNotFoundError(f"_toc.yml lists {CHAPTERS_DIR / name} but {source} does not exist")
        target = executed_dir / f"{name}.ipynb"
        key = cache_key(source, {**parameters, "shipped weights": weights})
        if not force and _cached_key(target) == key:
            status[name] = "cached"
            continue
        started = time.perf_counter()
        with atomic_path(target) as tmp:
            try:
                papermill.execute_notebook(
                    str(source), str(tmp), parameters=parameters, kernel_name="python3",
                    cwd=str(root), progress_bar=False, log_output=False,
                )  # fmt: skip
            except Exception as err:
                failed = run_dir / "failed" / f"{name}.ipynb"
                failed.parent.mkdir(parents=True, exist_ok=True)
                if tmp.is_file():
                    tmp.replace(failed)
                cell = getattr(err, "exec_count", None) or getattr(err, "cell_index", "?")
                detail = f"{getattr(err, 'ename', type(err).__name__)}: {getattr(err, 'evalue', err)}"
                raise NotebookFailed(
                    f"notebook {source} failed at cell {cell}: {detail} (executed copy: {failed})"
                ) from err
            seconds = time.perf_counter() - started
            entry = {
                "preset": preset.name,
                "seed": preset.seed,
                "parameters": parameters,
                "wall_seconds": round(seconds, 2),
                "executed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "versions": versions(),
                "hardware": hardware(),
                "cache_key": key,
            }
            _stamp(tmp, entry, colab_url(root, name))
        record(run_dir, "notebooks", name, entry)
        status[name] = "executed"
    return status


def _cached_key(executed: Path) -> str | None:
    if not executed.is_file():
        return None
    try:
        return nbformat.read(executed, as_version=4).metadata.get("radgazegen", {}).get("cache_key")
    except (OSError, ValueError, json.JSONDecodeError):
        return None


def _stamp(path: Path, entry: dict, colab: str) -> None:
    """Store the run entry in the notebook metadata and show it, with a link to run the chapter in Colab,
    under the chapter title."""
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata["radgazegen"] = entry
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if {"parameters", "injected-parameters"} & set(tags) and "hide-input" not in tags:
            cell.metadata["tags"] = [*tags, "hide-input"]
    shown = entry["versions"]
    info = (
        ":::{admonition} Run information\n:class: note\n"
        f"Executed {entry['executed_at']} with preset **{entry['preset']}**, seed {entry['seed']}, "
        f"in {entry['wall_seconds']:.1f} s. "
        f"radgazegen {shown.get('radgazegen', '?')}, torch {shown.get('torch', '?')}, numpy {shown.get('numpy', '?')}, "
        f"Python {shown['python']} on {shown['platform']}, {entry['hardware']['cpus']} CPUs"
        f"{', ' + entry['hardware']['gpu'] if 'gpu' in entry['hardware'] else ''}. "
        f"[Run this chapter in Colab]({colab}) (the `gpu` preset on a GPU runtime).\n:::"
    )
    cell = nbformat.v4.new_markdown_cell(info)
    cell.metadata["tags"] = ["run-info"]
    position = 1 if notebook.cells and notebook.cells[0].cell_type == "markdown" else 0
    notebook.cells.insert(position, cell)
    nbformat.write(notebook, path)


def stage_book(root: str | Path, executed_dir: str | Path, staging: str | Path) -> Path:
    """A copy of the book's sources (``_config.yml``, ``_toc.yml``, ``book/``) in ``staging`` whose chapters are
    the executed notebooks of ``executed_dir`` (e.g. the ``smoke`` run's), so a run other than the published
    one builds without touching ``book/chapters``. Files keep their times, so re-builds stay incremental."""
    root, staging = Path(root).resolve(), Path(staging).resolve()
    executed_dir = root / executed_dir
    staging.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, staging / name)
    shutil.copytree(root / "book", staging / "book", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("chapters", ".*"))  # fmt: skip
    chapters = staging / CHAPTERS_DIR
    chapters.mkdir(parents=True, exist_ok=True)
    for name in chapter_notebooks(root):
        executed = executed_dir / f"{name}.ipynb"
        if not executed.is_file():
            raise FileNotFoundError(f"{executed}: not executed yet (run `radgazegen book` with this --executed-dir)")
        shutil.copy2(executed, chapters / executed.name)
    return staging


def build_book(
    root: str | Path, preset: Preset, *, run_dir: str | Path | None = None, executed_dir: str | Path | None = None
) -> Path:
    """Render the results tables of the run and build the HTML book; returns the HTML folder.

    The chapters in ``book/chapters`` build in place (``_build/html``); any other ``executed_dir``
    builds from a staged copy in ``<run_dir>/book`` (``<run_dir>/book/_build/html``).
    """
    from radgazegen.evaluation.results import write_results_tables

    root = Path(root).resolve()
    run_dir = run_dir_for(preset, run_dir)
    run_dir = run_dir if run_dir.is_absolute() else root / run_dir
    in_place = executed_dir is None or (root / executed_dir).resolve() == (root / CHAPTERS_DIR).resolve()
    source = root if in_place else stage_book(root, executed_dir, run_dir / "book")
    write_results_tables(source, run_dir)
    return build_html(source)


def build_html(root: str | Path, *, output: str | Path | None = None) -> Path:
    """Run ``jupyter-book build`` on ``root``; returns the HTML folder."""
    root = Path(root).resolve()
    command = [
        str(Path(sys.executable).with_name("jupyter-book")),
        "build",
        str(root),
        "--warningiserror",
        "--keep-going",
    ]
    if output is not None:
        command += ["--path-output", str(output)]
    subprocess.run(command, check=True)
    return Path(output or root) / "_build" / "html"
