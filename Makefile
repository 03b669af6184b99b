# Two commands on a fresh machine: `make book` (the book at PRESET=cpu) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PRESET ?= cpu
BIN := $(VENV)/bin

.PHONY: install book test benchmark clean

install: $(VENV)/.installed

# CPU torch is pinned first so that nothing pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[book,dev]"
	touch $@

book: install
	$(BIN)/radgazegen book --preset $(PRESET)

# The smoke book (notebooks executed at the smoke preset, HTML in runs/smoke/book/_build/html), then the tests:
# among them the built book in headless Chromium, the live widgets, and the nbval pass, which runs every chapter
# at smoke from an empty folder with the wheel installed in a fresh venv (tests/test_wheel.py).
test: install
	$(BIN)/radgazegen book --preset smoke --run-dir runs/smoke --executed-dir runs/smoke/notebooks
	$(BIN)/python -m pytest tests

benchmark: install
	$(BIN)/python -m pip install --quiet -e ".[book,dev,bench]"
	$(BIN)/python benchmarks/gaze_heatmaps.py
	$(BIN)/python benchmarks/radiomic_maps.py
	$(BIN)/python benchmarks/sampling.py
	$(BIN)/python benchmarks/sampling_budget.py
	$(BIN)/python benchmarks/adherence.py
	$(BIN)/python benchmarks/privacy.py
	$(BIN)/python benchmarks/bad_input.py
	$(BIN)/python benchmarks/kill_resume.py
	$(BIN)/python benchmarks/paper_scale.py
	$(BIN)/python benchmarks/install_time.py

clean:
	rm -rf _build runs book/chapters
