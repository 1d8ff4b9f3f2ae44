# Quick start: `make demo` and `make test`. Each sets up everything it needs from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE := sample_project
DBT_FEATURES := $(abspath $(BIN)/dbt-features)
DBT := $(abspath $(BIN)/dbt)

.PHONY: demo demo-cluster test test-slow test-spark unit lint services bench bench-spark clean

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

# The sample profile's target for `make demo`: dev (DuckDB), postgres or spark (dbt-spark's
# session, from .venv-spark).
TARGET ?= dev
SPARK_VENV := .venv-spark
SPARK_STAMP := $(SPARK_VENV)/.installed
ifeq ($(TARGET),spark)
DEMO_STAMP := $(SPARK_STAMP)
DEMO_DBT := $(abspath $(SPARK_VENV)/bin/dbt)
DEMO_FS := $(abspath $(SPARK_VENV)/bin/dbt-features)
DEMO_OFFLINE := $(SAMPLE)/target/spark/
else
DEMO_STAMP := $(STAMP)
DEMO_DBT := $(DBT)
DEMO_FS := $(DBT_FEATURES)
DEMO_OFFLINE := $(if $(filter postgres,$(TARGET)),PostgreSQL schema dbt_features_sample,$(SAMPLE)/target/sample.duckdb)
endif
DEMO_SERVICES := $(if $(filter postgres,$(TARGET)),services)
DEMO_SET := target/fraud_training_set$(if $(filter-out dev,$(TARGET)),.$(TARGET)).parquet

# The sample data is generated to end today, so that the online store (ttl 30d and 2d) has live
# values to serve; the tests use the fixed default start date instead.
START_DATE = $(shell $(PYTHON) -c 'import datetime as d; print(d.date.today() - d.timedelta(days=121))')

demo: $(DEMO_STAMP) $(DEMO_SERVICES)
	cd $(SAMPLE) && $(DEMO_DBT) deps --profiles-dir . --quiet
	cd $(SAMPLE) && $(DEMO_DBT) run --profiles-dir . --target $(TARGET) --quiet --vars "{start_date: '$(START_DATE)'}"
	cd $(SAMPLE) && $(DEMO_FS) validate --target $(TARGET)
	cd $(SAMPLE) && $(DEMO_FS) list --target $(TARGET)
	cd $(SAMPLE) && $(DEMO_FS) describe customer_spend:avg_amount_30d --target $(TARGET)
	cd $(SAMPLE) && $(DEMO_FS) training-set --target $(TARGET) --spine labels --spine-timestamp scored_at \
		--features 'customer_spend:avg_amount_30d,customer_spend:txn_count_7d,merchant_risk:*' \
		-o $(DEMO_SET)
	cd $(SAMPLE) && $(DEMO_FS) sync --target $(TARGET)
	cd $(SAMPLE) && $(DEMO_FS) get customer_spend merchant_risk:merchant_fraud_rate_30d \
		--entity customer_id=42,merchant_id=7 --target $(TARGET)
	cd $(SAMPLE) && $(DEMO_FS) verify --sample 200 --target $(TARGET)
	@echo "Built: $(DEMO_OFFLINE) (offline store), $(SAMPLE)/target/feature_registry.json"
	@echo "       $(SAMPLE)/$(DEMO_SET), online store in $(SAMPLE)/.dbt_features/online_store/"

# The demo with its online store on a Redis Cluster of its own (three masters with a replica
# each, on free loopback ports), stopped by its pids afterwards, whatever happened.
CLUSTER_DIR := $(abspath $(SAMPLE)/.dbt_features/cluster)
demo-cluster: $(STAMP)
	@url=$$($(BIN)/python tests/adapter/redis_cluster.py start $(CLUSTER_DIR)) && \
	  trap '$(BIN)/python tests/adapter/redis_cluster.py stop $(CLUSTER_DIR)' EXIT && \
	  echo "Redis Cluster: $$url" && \
	  DBT_FEATURES_REDIS_URL=$$url $(MAKE) --no-print-directory demo TARGET=$(TARGET)

# The dependency direction (import-linter contracts in pyproject.toml), then the tests.
lint: $(STAMP)
	$(BIN)/python .ci/lint_imports.py

# Two workers; --dist loadscope keeps a module's tests (and its module-scoped fixtures: a built
# dbt project, a private Redis) on one worker.
test: lint $(FEAST_STAMP) services
	$(BIN)/pytest -q -n 2 --dist loadscope -m "not spark and not slow"

# Fault, soak and scale tests and the docs walk-throughs (tens of seconds each), kept out of
# `make test` so that it stays a quick check; CI runs both.
test-slow: $(FEAST_STAMP) services
	$(BIN)/pytest -q -n 2 --dist loadscope -m "slow and not spark"

# Spark through dbt-spark's `session` method (a local Spark driver; Java 17), in a virtualenv of
# its own: pyspark is large and only these tests need it. `make test` leaves them out.
$(SPARK_STAMP): pyproject.toml tests/spark_requirements.txt
	$(PYTHON) -m venv $(SPARK_VENV)
	$(SPARK_VENV)/bin/pip install --quiet --upgrade pip
	$(SPARK_VENV)/bin/pip install --quiet -e '.[dev]' -r tests/spark_requirements.txt
	touch $(SPARK_STAMP)

test-spark: $(SPARK_STAMP) services
	$(SPARK_VENV)/bin/pytest -q -m spark -p no:xdist tests/test_dbt_connection_spark.py \
		tests/test_sample_spark.py

# The fast tier: pure tests, no dbt, database, Redis or subprocess (under 10 s).
unit: $(STAMP)
	$(BIN)/pytest -q -m "not integration"

bench: $(STAMP) $(FEAST_BENCH_STAMP) services
	@for f in $(filter-out $(SPARK_BENCH),$(wildcard tests/benchmarks/bench_*.py)); do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# Spark local mode (in .venv-spark): training sets and sync against raw Spark, at the issue's
# size by default (minutes); e.g. BENCH_ARGS='--rows 1000000 --entities 10000 --spine 100000'.
SPARK_BENCH := tests/benchmarks/bench_spark.py
bench-spark: $(SPARK_STAMP) services
	$(SPARK_VENV)/bin/python $(SPARK_BENCH) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(FEAST_VENV) $(SPARK_VENV) $(SAMPLE)/target $(SAMPLE)/logs $(SAMPLE)/dbt_packages
