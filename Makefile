# Quick start: `make demo` and `make test`. Each sets up everything it needs from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE := sample_project
DBT_FEATURES := $(abspath $(BIN)/dbt-features)
DBT := $(abspath $(BIN)/dbt)

.PHONY: demo test test-spark unit lint services bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

services:
	@bash .ci/services

# Feast's own client (for the feature server's compatibility test), in a venv of its own: feast
# pins packages (pathspec) past what dbt-core accepts, so it must not enter .venv.
FEAST_VENV := .venv-feast
FEAST_STAMP := $(FEAST_VENV)/.installed
$(FEAST_STAMP): tests/adapter/feast_requirements.txt
	$(PYTHON) -m venv $(FEAST_VENV)
	$(FEAST_VENV)/bin/pip install --quiet -r tests/adapter/feast_requirements.txt
	touch $(FEAST_STAMP)

# Feast's redis and duckdb extras, for tests/benchmarks/bench_vs_feast.py (make bench only).
FEAST_BENCH_STAMP := $(FEAST_VENV)/.bench-installed
$(FEAST_BENCH_STAMP): $(FEAST_STAMP) tests/benchmarks/feast_bench_requirements.txt
	$(FEAST_VENV)/bin/pip install --quiet -r tests/benchmarks/feast_bench_requirements.txt
	touch $(FEAST_BENCH_STAMP)

# The sample data is generated to end today, so that the online store (ttl 30d and 2d) has live
# values to serve; the tests use the fixed default start date instead.
START_DATE = $(shell $(PYTHON) -c 'import datetime as d; print(d.date.today() - d.timedelta(days=121))')

demo: $(STAMP)
	cd $(SAMPLE) && $(DBT) deps --profiles-dir . --quiet
	cd $(SAMPLE) && $(DBT) run --profiles-dir . --quiet --vars "{start_date: '$(START_DATE)'}"
	cd $(SAMPLE) && $(DBT_FEATURES) validate
	cd $(SAMPLE) && $(DBT_FEATURES) list
	cd $(SAMPLE) && $(DBT_FEATURES) describe customer_spend:avg_amount_30d
	cd $(SAMPLE) && $(DBT_FEATURES) training-set --spine labels --spine-timestamp scored_at \
		--features 'customer_spend:avg_amount_30d,customer_spend:txn_count_7d,merchant_risk:*' \
		-o target/fraud_training_set.parquet
	cd $(SAMPLE) && $(DBT_FEATURES) sync
	cd $(SAMPLE) && $(DBT_FEATURES) get customer_spend merchant_risk:merchant_fraud_rate_30d \
		--entity customer_id=42,merchant_id=7
	cd $(SAMPLE) && $(DBT_FEATURES) verify --sample 200
	@echo "Built: $(SAMPLE)/target/sample.duckdb (offline store), $(SAMPLE)/target/feature_registry.json"
	@echo "       $(SAMPLE)/target/fraud_training_set.parquet, online store in $(SAMPLE)/.dbt_features/online_store/"

# The dependency direction (import-linter contracts in pyproject.toml), then the tests.
lint: $(STAMP)
	$(BIN)/python .ci/lint_imports.py

# Two workers; --dist loadscope keeps a module's tests (and its module-scoped fixtures: a built
# dbt project, a private Redis) on one worker.
test: lint $(FEAST_STAMP) services
	$(BIN)/pytest -q -n 2 --dist loadscope -m "not spark"

# Spark through dbt-spark's `session` method (a local Spark driver; Java 17), in a virtualenv of
# its own: pyspark is large and only these tests need it. `make test` leaves them out.
SPARK_VENV := .venv-spark
SPARK_STAMP := $(SPARK_VENV)/.installed
$(SPARK_STAMP): pyproject.toml tests/spark_requirements.txt
	$(PYTHON) -m venv $(SPARK_VENV)
	$(SPARK_VENV)/bin/pip install --quiet --upgrade pip
	$(SPARK_VENV)/bin/pip install --quiet -e '.[dev]' -r tests/spark_requirements.txt
	touch $(SPARK_STAMP)

test-spark: $(SPARK_STAMP) services
	$(SPARK_VENV)/bin/pytest -q -m spark -p no:xdist tests/test_dbt_connection_spark.py

# The fast tier: pure tests, no dbt, database, Redis or subprocess (under 10 s).
unit: $(STAMP)
	$(BIN)/pytest -q -m "not integration"

bench: $(STAMP) $(FEAST_BENCH_STAMP) services
	@for f in tests/benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) $(FEAST_VENV) $(SPARK_VENV) $(SAMPLE)/target $(SAMPLE)/logs $(SAMPLE)/dbt_packages
