# Quick start: `make demo` and `make test`. Each sets up everything it needs from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE := sample_project
DBT_FEATURES := $(abspath $(BIN)/dbt-features)
DBT := $(abspath $(BIN)/dbt)

.PHONY: demo test services bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

services:
	@bash .ci/services

demo: $(STAMP)
	cd $(SAMPLE) && $(DBT) deps --profiles-dir . --quiet
	cd $(SAMPLE) && $(DBT) run --profiles-dir . --quiet
	cd $(SAMPLE) && $(DBT_FEATURES) validate
	cd $(SAMPLE) && $(DBT_FEATURES) list
	cd $(SAMPLE) && $(DBT_FEATURES) describe customer_spend:avg_amount_30d
	cd $(SAMPLE) && $(DBT_FEATURES) training-set --spine labels --spine-timestamp scored_at \
		--features 'customer_spend:avg_amount_30d,customer_spend:txn_count_7d,merchant_risk:*' \
		-o target/fraud_training_set.parquet
	@echo "Registry written to $(SAMPLE)/target/feature_registry.json"

test: $(STAMP) services
	$(BIN)/pytest -q

bench: $(STAMP) services
	@for f in tests/benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) $(SAMPLE)/target $(SAMPLE)/logs $(SAMPLE)/dbt_packages
