# Quick start: `make demo` and `make test`. Both create or reuse .venv by themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench

CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo test lint browser java serve bench-setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/firs demo

serve: setup  # the web page on the demo catalogue (run `make demo` first)
	$(BIN)/firs serve --index demo/index

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# The web page's tests drive Debian's Chromium (no browser download by Playwright).
browser:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium for the browser tests"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# The Spark engine's tests need a Java runtime (Spark 4 runs on Java 17).
java:
	@command -v java >/dev/null || { echo "installing Debian's Java 17 runtime for the Spark engine's tests"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openjdk-17-jre-headless; }

test: lint browser java
	$(BIN)/python -m pytest

$(BENCH_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $@

bench-setup: $(BENCH_STAMP)

clean:
	rm -rf $(VENV) demo test-artifacts .pytest_cache .ruff_cache src/*.egg-info
