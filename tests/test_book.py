"""The book pipeline: papermill execution in _toc.yml order, cache, failures, run info, HTML build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from radgazegen.book import (
    COLAB_CELL,
    NotebookFailed,
    build_book,
    build_html,
    chapter_notebooks,
    execute_notebooks,
    repository_url,
)
from radgazegen.presets import get_preset

ROOT = Path(__file__).resolve().parents[1]


def _notebook(path: Path, body: str) -> None:
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell(
        'preset = "cpu"\ndata_dir = ""\nimages_dir = ""\nrun_dir = ""\ninteractive = True'
    )
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), parameters, nbformat.v4.new_code_cell(body)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)


@pytest.fixture
def book_root(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copytree(ROOT / "book" / "_ext", tmp_path / "book" / "_ext")  # the config's local Sphinx extension
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: Chapters\n    chapters:\n"
        "      - file: book/chapters/02_second\n      - file: book/chapters/01_first\n"
    )
    (tmp_path / "book" / "intro.md").write_text("# Intro\n\nHello.\n")
    _notebook(
        tmp_path / "notebooks" / "01_first.ipynb",
        "print('first', preset)\nimport pathlib; pathlib.Path(run_dir, 'order.txt').open('a').write('1')",
    )
    _notebook(
        tmp_path / "notebooks" / "02_second.ipynb",
        "print('second', preset)\nimport pathlib; pathlib.Path(run_dir).mkdir(parents=True, exist_ok=True); pathlib.Path(run_dir, 'order.txt').open('a').write('2')",
    )
    return tmp_path


def test_chapters_come_from_the_real_toc() -> None:
    assert chapter_notebooks(ROOT)[0] == "01_gaze_heatmaps"
    for name in chapter_notebooks(ROOT):
        assert (ROOT / "notebooks" / f"{name}.ipynb").is_file()


def test_executes_in_toc_order_caches_and_records(book_root: Path) -> None:
    smoke = get_preset("smoke")
    status = execute_notebooks(book_root, smoke, run_dir="runs/smoke", progress=False)
    assert status == {"02_second": "executed", "01_first": "executed"}
    run_dir = book_root / "runs" / "smoke"
    assert (run_dir / "order.txt").read_text() == "21"
    executed = nbformat.read(book_root / "book" / "chapters" / "01_first.ipynb", as_version=4)
    assert "first smoke" in "".join(
        o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs
    )
    assert executed.cells[1].cell_type == "markdown" and "preset **smoke**" in executed.cells[1].source
    colab = "https://colab.research.google.com/github/radgazegen/radgazegen/blob/main/notebooks/01_first.ipynb"
    assert f"[Run this chapter in Colab]({colab})" in executed.cells[1].source
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert set(manifest["notebooks"]) == {"01_first", "02_second"}
    assert (
        manifest["notebooks"]["01_first"]["seed"] == smoke.seed
        and manifest["notebooks"]["01_first"]["versions"]["torch"]
    )
    source = nbformat.read(book_root / "notebooks" / "01_first.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in source.cells if c.cell_type == "code"), "sources stay output-free"

    assert execute_notebooks(book_root, smoke, run_dir="runs/smoke", progress=False) == {
        "02_second": "cached",
        "01_first": "cached",
    }
    assert (run_dir / "order.txt").read_text() == "21"
    _notebook(book_root / "notebooks" / "01_first.ipynb", "print('changed')")
    assert execute_notebooks(book_root, smoke, run_dir="runs/smoke", progress=False)["01_first"] == "executed"
    assert execute_notebooks(book_root, smoke, run_dir="runs/other", progress=False, only=["01_first"]) == {
        "01_first": "executed"
    }  # another run directory is another parameter set
    with pytest.raises(ValueError, match=r"not chapters of .*_toc.yml: \['03_missing'\]"):
        execute_notebooks(book_root, smoke, run_dir="runs/other", progress=False, only=["03_missing"])


def test_failure_names_notebook_and_cell_and_keeps_the_good_copy(book_root: Path) -> None:
    smoke = get_preset("smoke")
    execute_notebooks(book_root, smoke, run_dir="runs/smoke", progress=False)
    good = (book_root / "book" / "chapters" / "02_second.ipynb").read_text()
    _notebook(book_root / "notebooks" / "02_second.ipynb", "raise RuntimeError('boom in chapter two')")
    with pytest.raises(NotebookFailed, match=r"02_second.ipynb failed at cell \d+: RuntimeError: boom in chapter two"):
        execute_notebooks(book_root, smoke, run_dir="runs/smoke", progress=False)
    assert (book_root / "book" / "chapters" / "02_second.ipynb").read_text() == good
    assert (book_root / "runs" / "smoke" / "failed" / "02_second.ipynb").is_file()
    assert not [p for p in (book_root / "book" / "chapters").iterdir() if p.name.startswith(".")]


def test_builds_html_from_the_executed_chapters(book_root: Path) -> None:
    execute_notebooks(book_root, get_preset("smoke"), run_dir="runs/smoke", progress=False)
    html = build_html(book_root)
    page = (html / "book" / "chapters" / "01_first.html").read_text()
    assert "first smoke" in page and "Run information" in page
    assert (html / "index.html").is_file()


def test_a_run_other_than_the_published_one_builds_from_a_staged_copy(book_root: Path) -> None:
    smoke = get_preset("smoke")
    execute_notebooks(book_root, smoke, run_dir="runs/smoke", executed_dir="runs/smoke/notebooks", progress=False)
    (book_root / "book" / "results.md").write_text(
        "# Results\n\n## Tables\n\n```{include} chapters/results_tables.md\n```\n"
    )
    toc = book_root / "_toc.yml"
    toc.write_text(toc.read_text() + "      - file: book/results\n")
    html = build_book(book_root, smoke, run_dir="runs/smoke", executed_dir="runs/smoke/notebooks")
    assert html == book_root / "runs" / "smoke" / "book" / "_build" / "html"
    assert "first smoke" in (html / "book" / "chapters" / "01_first.html").read_text()
    assert "Not computed yet" in (html / "book" / "results.html").read_text()  # this run's (empty) metrics
    assert not (book_root / "book" / "chapters").exists(), "the published chapters are not touched"
    (book_root / "runs" / "smoke" / "notebooks" / "02_second.ipynb").unlink()
    with pytest.raises(FileNotFoundError, match="02_second.ipynb: not executed yet"):
        build_book(book_root, smoke, run_dir="runs/smoke", executed_dir="runs/smoke/notebooks")


def test_every_chapter_starts_with_the_colab_cell_and_the_auto_preset() -> None:
    from IPython.core.inputtransformer2 import TransformerManager

    expected = COLAB_CELL.format(repository=repository_url(ROOT))
    assert expected.count("git+https://github.com/") == 1
    compile(TransformerManager().transform_cell(expected), "colab-cell", "exec")  # valid IPython (the %pip line)
    for name in chapter_notebooks(ROOT):
        cells = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4).cells
        code = [c for c in cells if c.cell_type == "code"]
        assert code[0].source == expected and "remove-cell" in code[0].metadata["tags"], name
        assert "parameters" in code[1].metadata["tags"] and code[1].source.startswith('preset = "auto"'), name


def test_auto_preset_is_gpu_with_a_cuda_gpu_else_cpu() -> None:
    import torch

    assert get_preset("auto") is get_preset("gpu" if torch.cuda.is_available() else "cpu")
    with pytest.raises(KeyError, match="or 'auto'"):
        get_preset("automatic")
