# The two commands of the README: `make book` (PROFILE=quick by default) and `make test`.
PYTHON ?= python3
PROFILE ?= quick
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: book test lint type benchmark gpu-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	$(VENV)/bin/pip download --quiet --no-deps musicnn==0.1.0 -d $(VENV)/wheels  # musicnn's checkpoints, read from the wheel
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/musicrl book --profile $(PROFILE)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

# ruff on the package, tests and scripts, and on every chapter's code (jupytext hands ruff its
# Python form; a chapter imports in its cells and ends cells with an expression to show it).
lint: $(STAMP)
	$(VENV)/bin/ruff check musicrl tests scripts
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/jupytext --check "ruff check --ignore E402,I001,E501,B018 {}" notebooks/*.md

# mypy as configured in pyproject.toml (the package); CI runs it beside lint.
type: $(STAMP)
	$(VENV)/bin/mypy

benchmark: $(STAMP)
	$(VENV)/bin/python scripts/benchmark.py
	$(VENV)/bin/python scripts/benchmark_tagger.py
	$(VENV)/bin/python scripts/benchmark_musicnn.py
	$(VENV)/bin/python scripts/benchmark_audio.py
	$(VENV)/bin/python scripts/benchmark_trainers.py
	$(VENV)/bin/python scripts/benchmark_serve.py --kill-after 12

# On a machine with a CUDA GPU (and a CUDA build of torch): the device, the GPU benchmark rows, and
# fig14-gru at the thesis's budget on the device path beside the published runs (a few minutes).
gpu-check: $(STAMP)
	$(VENV)/bin/python scripts/gpu_check.py

clean:
	rm -rf _build book/*.ipynb results
