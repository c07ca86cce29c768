# Safehold: `make run` serves API + console on 127.0.0.1:8080; `make test` runs the whole suite.
# Both install everything they need first (Debian packages, .venv, Python packages).

PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080
PYTEST_ARGS ?=

.PHONY: run test install bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install-system-packages
	bash scripts/install-system-packages
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/safehold db upgrade
	$(VENV)/bin/safehold serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

bench: $(STAMP)
	$(VENV)/bin/python bench/hash.py
	$(VENV)/bin/python bench/match.py
	$(VENV)/bin/python bench/webhooks.py
	$(VENV)/bin/python bench/review.py
	$(VENV)/bin/python bench/reporting.py --out bench/results/reporting.json
	$(VENV)/bin/python bench/text.py
	$(VENV)/bin/python bench/text_service.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

clean:
	rm -rf $(VENV) .pytest_cache
