# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test check fmt bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,postgres]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gexbot demo

# Everything: the fast tests on two workers, then the slow end-to-end runs one at a time (they
# time real processes, so they do not share the two cores with other tests).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -m "not slow" -n 2 -q
	$(PY) -m pytest -m slow

# The edit loop: lint, types and the tests not marked slow (the slow end-to-end runs stay in
# `make test`, which CI runs).
check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -m "not slow" -n 2 -q

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) bench/bundle_vs_single.py
	$(PY) bench/evaluate.py
	$(PY) bench/store.py
	$(PY) bench/fanout.py
	$(PY) bench/staleness.py
	$(PY) bench/commands.py
	$(PY) bench/replay.py
	$(PY) bench/charts.py
	$(PY) bench/startup.py
	$(PY) bench/personal_alerts.py
	$(PY) bench/preview.py
	$(PY) bench/console.py
	$(PY) bench/chains.py

clean:
	rm -rf $(VENV)
