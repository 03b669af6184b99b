"""The install files agree with each other and with the README's two commands."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_lists_the_same_packages_as_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = set(project["dependencies"]) | set(extras["book"]) | set(extras["dev"])
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


def test_book_tools_are_an_extra_that_make_installs_and_the_chapters_do_not_need() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = lambda specs: {re.split(r"[<>=!~ ,]", d)[0] for d in specs}  # noqa: E731
    book = names(project["optional-dependencies"]["book"])
    assert {"jupyter-book", "papermill", "sphinx-mathjax-offline"} <= book
    assert not book & names(project["dependencies"]), "the book tools stay out of what Colab installs"
    assert "nbval" not in names(project["dependencies"])
    assert re.search(r'pip install --quiet -e "\.\[book,dev\]"', (ROOT / "Makefile").read_text())


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


def test_pages_workflow_builds_what_make_book_builds() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    runs = [step["run"].strip() for step in build["steps"] if "run" in step]
    assert runs == ["make book"], "the workflow builds with the README's command and nothing else"
    upload = next(step for step in build["steps"] if step.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"  # where `make book` (build_html on the repository) writes
    assert re.search(r"^PRESET \?= cpu$", (ROOT / "Makefile").read_text(), re.M)
    assert deploy["needs"] == "build" and deploy["steps"][0]["uses"].startswith("actions/deploy-pages")
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    assert workflow[True]["push"]["branches"] == ["main"]  # YAML 1.1 reads the key `on` as True


def test_api_reference_lists_every_module_of_the_package() -> None:
    import pkgutil

    import radgazegen

    modules = {m.name for m in pkgutil.walk_packages(radgazegen.__path__, "radgazegen.")}
    page = (ROOT / "book" / "api.md").read_text()
    documented = set(re.findall(r"^\.\. automodule:: (\S+)$", page, re.M))
    assert documented == modules
    assert "book/api" in (ROOT / "_toc.yml").read_text()
