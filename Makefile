# Two set-up commands (README): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: demo test reliability install lint typecheck clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo
	$(VENV)/bin/nasforge search configs/demo.yaml --run-dir runs/demo
	$(VENV)/bin/nasforge plot runs/demo --out runs/demo/history.png

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

reliability: $(STAMP)  # the reliability group alone (also part of `make test`)
	$(PY) -m pytest -q -p no:cacheprovider tests/reliability

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -p no:cacheprovider tests/test_layers.py

clean:
	rm -rf $(VENV) runs
