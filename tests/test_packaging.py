"""The install files agree with each other and with the README's two commands."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_lists_the_same_packages_as_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    listed = {p for p in pip_section if p != "-e ."}
    assert listed == declared


def test_pyradiomics_comes_from_the_maintained_distribution() -> None:
    names = {
        re.split(r"[<>=!~ ]", d)[0]
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    assert "pyradiomics-bhklab" in names and "pyradiomics" not in names
    assert any(
        d.startswith("jupyter-book>=1.0.4,<2")
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    )


def test_readme_setup_is_exactly_two_commands_that_the_makefile_defines() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Set-up\n.*?```bash\n(.*?)```", readme, re.S)
    assert block is not None, "README needs a '## Set-up' section with a bash block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.split("#")[0].strip()]
    assert commands == ["make book", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^book:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "torch==2.13.0" in makefile
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")


def test_notebooks_are_committed_without_outputs() -> None:
    import nbformat

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path.name
        assert any("parameters" in c.metadata.get("tags", []) for c in code), f"{path.name} has no parameters cell"
