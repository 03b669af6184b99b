"""The package alone, as Colab has it: the wheel in a fresh venv runs every chapter at ``smoke`` from an empty folder.

The chapters run under nbval (``--nbval-lax``): every cell must run, and cells marked ``NBVAL_CHECK_OUTPUT`` must
print what the smoke book printed in the repository's own environment. This is the suite's nbval pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from radgazegen.book import chapter_notebooks, execute_notebooks
from radgazegen.presets import get_preset

ROOT = Path(__file__).resolve().parents[1]
SMOKE_NOTEBOOKS = ROOT / "runs" / "smoke" / "notebooks"  # what `make test` executes first (the smoke book)
PARAMETERS = {"preset": "smoke", "data_dir": "", "images_dir": "", "run_dir": "", "interactive": False}
RUNNER = ["pytest>=8", "nbval>=0.11", "ipykernel>=6.29"]  # what runs the notebooks (Colab has its own kernel)


def _run(command: list[str], **kwargs) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    return time.perf_counter() - started


@pytest.mark.slow
def test_the_wheel_in_a_fresh_venv_runs_every_chapter_from_an_empty_folder(tmp_path: Path) -> None:
    import papermill

    chapters = chapter_notebooks(ROOT)
    execute_notebooks(ROOT, get_preset("smoke"), run_dir=SMOKE_NOTEBOOKS.parent, executed_dir=SMOKE_NOTEBOOKS,
                      progress=False)  # fmt: skip  (cached after `make test`'s smoke book)
    source = tmp_path / "source"  # the sources only: no run folders, caches or virtual environments
    shutil.copytree(ROOT / "radgazegen", source / "radgazegen", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    build_seconds = _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"),
                          str(source)])  # fmt: skip
    wheel = next((tmp_path / "dist").glob("radgazegen-*.whl"))
    venv = tmp_path / "venv"
    _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    install_seconds = _run([str(python), "-m", "pip", "install", "--quiet", "--no-compile", "torch==2.13.0", str(wheel),
                            *RUNNER])  # fmt: skip  (--no-compile: Python compiles what the chapters import anyway)
    probe = subprocess.run([str(python), "-c", "import importlib.util as u, radgazegen; print(radgazegen.__file__);"
                            "print(u.find_spec('jupyter_book') is None, u.find_spec('papermill') is None)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()  # fmt: skip
    assert Path(probe[0]).is_relative_to(venv), "the fresh venv must import its own installed copy"
    assert probe[1:] == ["True", "True"], "the book tools are an extra: installing the package alone leaves them out"

    work = tmp_path / "empty"
    work.mkdir()
    for name in chapters:  # the smoke book's outputs (for NBVAL_CHECK_OUTPUT), parameters reset to the defaults
        papermill.execute_notebook(str(SMOKE_NOTEBOOKS / f"{name}.ipynb"), str(work / f"{name}.ipynb"),
                                   parameters=PARAMETERS, prepare_only=True, progress_bar=False)  # fmt: skip
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    chapters_seconds = _run([str(python), "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
                             "-q", "--rootdir", str(work), *[f"{name}.ipynb" for name in chapters]],
                            cwd=work, env=environment)  # fmt: skip
    assert (work / "runs" / "smoke" / "dataset" / "phantom" / "manifest.json").is_file()  # made by the chapters here
    print(f"wheel built in {build_seconds:.0f} s; installed into a fresh venv in {install_seconds:.0f} s; "
          f"{len(chapters)} chapters at smoke from an empty folder in {chapters_seconds:.0f} s")
