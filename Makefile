# stanch: `make demo` runs the main job end to end; `make test` runs the suite.
# Both start from nothing but Python >= 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint dev bench chaos chromium clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/stanch demo

# Debian's chromium for the dashboard's browser tests (Playwright never downloads one).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

test: $(STAMP) chromium
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Not part of `make test`: numbers for docs/benchmarks.md (minutes, noisy machines: medians).
bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench

# The chaos suite with many trials (`make test` runs a few of each).
chaos: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" STANCH_CHAOS_TRIALS=100 $(BIN)/python -m pytest -q -s -m chaos

dev: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/stanch dev

clean:
	rm -rf $(VENV) .stanch-demo build *.egg-info
