# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv (CPython 3.11, torch==2.13.0 CPU) on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

.PHONY: demo test bench install
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) examples/demo.py

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 -p no:cacheprovider tests

bench: $(VENV)/.installed
	$(PY) bench/bench_core.py
