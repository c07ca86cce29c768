# Safehold: `make run` serves API + console on 127.0.0.1:8080; `make test` runs the whole suite.
# Both install what they need first: `make run` what serving needs, `make test` that plus the test tools
# (Debian packages, .venv, Python packages, the compiled hashing and matching kernels).

PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
HOST   ?= 127.0.0.1
PORT   ?= 8080
PYTEST_ARGS ?=
# Test processes (pytest-xdist): most tests wait on PostgreSQL, a browser or a server subprocess, so two
# processes on two cores halve the suite's wall time.
TEST_WORKERS ?= 2
export PYTHON

.PHONY: run test install install-test bench lint wheel clean

install: $(STAMP)
install-test: $(TEST_STAMP)

$(STAMP): pyproject.toml scripts/install-system-packages
	@echo "== 1/3 Debian packages serving needs (ffmpeg, the libav headers vpdq builds against)"
	@bash scripts/install-system-packages serve
	@echo "== 2/3 Python packages into $(VENV) (about a minute the first time)"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --upgrade pip
	@$(VENV)/bin/python -m pip install --quiet -e .
	@echo "== 3/3 hashing and matching kernels"
	@$(VENV)/bin/python -m safehold.warmup
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	@echo "== test tools: Chromium and jemalloc from Debian, pytest, Playwright, Meta's pdqhash and threatexchange"
	@bash scripts/install-system-packages test
	@$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	@touch $(TEST_STAMP)

run: $(STAMP)
	@$(VENV)/bin/safehold serve --host $(HOST) --port $(PORT)

test: $(TEST_STAMP)
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# lint-imports checks the layers of docs/architecture.md (the contracts are in pyproject.toml).
lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests bench
	PYTHONPATH=src $(VENV)/bin/lint-imports --no-cache

wheel: $(STAMP)
	$(VENV)/bin/python -m pip wheel --quiet --no-deps --wheel-dir dist .

bench: $(TEST_STAMP)
	$(VENV)/bin/python bench/hash.py
	$(VENV)/bin/python bench/match.py
	$(VENV)/bin/python bench/webhooks.py
	$(VENV)/bin/python bench/review.py
	$(VENV)/bin/python bench/reporting.py --out bench/results/reporting.json
	$(VENV)/bin/python bench/text.py
	$(VENV)/bin/python bench/text_service.py --postgres postgresql://postgres@127.0.0.1:5432/postgres
	$(VENV)/bin/python bench/cli_startup.py
	$(VENV)/bin/python bench/hostile.py

clean:
	rm -rf $(VENV) .pytest_cache dist build
