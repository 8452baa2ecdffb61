# stanch: `make demo` runs the main job end to end; `make test` runs the suite.
# Both start from nothing but Python >= 3.11 and make, and install the exact
# versions (and hashes) of requirements/dev.lock: every machine tests the same code.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements/dev.lock

.PHONY: demo test lint lock dev bench chaos chromium azurite postgresql prometheus clean

# The lock pins pip and setuptools too, so stanch itself installs with no index
# and no build isolation: what builds it is what the lock says.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	$(BIN)/python requirements/check_lock.py
	touch $(STAMP)

# After a change to the dependencies in pyproject.toml: keeps every pin it can.
# `make lock LOCKFLAGS=--upgrade` moves everything to the newest allowed versions.
# Not `lock: $(STAMP)`: with a new dependency in pyproject.toml the install
# refuses the stale lock, which is what this target is for; pip-compile is in
# the venv by then.
lock:
	@test -x $(BIN)/pip-compile || $(MAKE) $(STAMP) || test -x $(BIN)/pip-compile
	$(BIN)/pip-compile --quiet --extra dev --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links $(LOCKFLAGS) -o $(LOCK) pyproject.toml

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/stanch demo

# Debian's chromium for the dashboard's browser tests (Playwright never downloads one).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

# Azurite, the Storage emulator of the Blob evidence tests, from the npm registry
# into ~/.cache/stanch/azurite (stanch.harness.azurite); Debian's nodejs and npm first.
azurite: $(STAMP)
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q nodejs npm; }
	$(BIN)/python -m stanch.harness.azurite

# Debian's PostgreSQL server for the shared stores' tests (each run starts its own
# throwaway cluster; none is left running), and iproute2 for the multi-host tests.
postgresql:
	@{ ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v ip >/dev/null; } || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q postgresql iproute2; }

# Debian's prometheus (with promtool) for the alerting rules' tests (tests/ops): each
# test starts its own server on a free port. No recommends: no node exporter daemon.
prometheus:
	@command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends prometheus; }

test: $(STAMP) chromium azurite postgresql prometheus
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -m "not soak" -n 2 --dist loadfile

# The same checks as .pre-commit-config.yaml, over the whole tree.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

# Not part of `make test`: numbers for docs/benchmarks.md (minutes, noisy machines: medians).
bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench

# The chaos suite with many trials (`make test` runs a few of each), and the
# soak tests (marker `soak`): the fleet's drills many times on one fleet (as root).
chaos: $(STAMP) azurite postgresql
	PATH="$(CURDIR)/$(BIN):$$PATH" STANCH_CHAOS_TRIALS=100 STANCH_FLEET_TRIALS=16 \
	  $(BIN)/python -m pytest -q -s -m "chaos or soak"

dev: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/stanch dev

clean:
	rm -rf $(VENV) .stanch-demo build *.egg-info .import_linter_cache
