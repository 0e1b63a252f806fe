# The two commands of the README: `make book` (PROFILE=quick by default) and `make test`.
PYTHON ?= python3
PROFILE ?= quick
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: book test benchmark clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/musicrl book --profile $(PROFILE)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

benchmark: $(STAMP)
	$(VENV)/bin/python scripts/benchmark.py
	$(VENV)/bin/python scripts/benchmark_tagger.py
	$(VENV)/bin/python scripts/benchmark_audio.py

clean:
	rm -rf _build book/*.ipynb results
