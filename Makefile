# The two commands: `make run` and `make test`. Both bootstrap .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall when pyproject.toml changes; pip's own cache (~/.cache/pip) keeps re-runs offline-fast.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,office,postgres,kafka,embedders]'
	@rm -f $(VENV)/.installed-*
	@touch $@

run: $(STAMP)
	$(BIN)/ragline ingest deploy/samples
	$(BIN)/ragline search "How quickly must a severity 1 incident be acknowledged?" --k 3
	$(BIN)/ragline serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	deploy/dev/run-tests.sh $(PYTEST_ARGS)
	$(MAKE) --no-print-directory lint

lint: $(STAMP)
	$(BIN)/ruff check schemas ingest retrieval lineage services tests bench
	$(BIN)/mypy  # strict, over the packages pyproject.toml lists

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/chunkers.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py
	$(BIN)/python bench/lineage.py
	$(BIN)/python bench/extract_quality.py
	$(BIN)/python bench/pii.py

clean:
	rm -rf $(VENV) .ragline
