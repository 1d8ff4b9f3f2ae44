"""dbt-duckdb's default profile (``keep_open: true``) and a user's own DuckDB connection in the
same process: every command works, with dbt run in this process and DuckDB opened after it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner

from helpers import DBT_FEATURES, copy_sample, run_dbt
from dbt_features import FeatureStore
from dbt_features.cli import main
from dbt_features.errors import ProjectError

FEATURES = "customer_spend:avg_amount_30d,merchant_risk:*"


def profile_with(project: Path, keep_open: str | None) -> Path:
    """The sample's profile as a user writes it: keep_open set to ``keep_open``, or absent."""
    profiles = project / "profiles.yml"
    line = "      keep_open: false\n"
    text = profiles.read_text()
    assert line in text
    profiles.write_text(text.replace(line, f"      keep_open: {keep_open}\n" if keep_open else ""))
    return project


@pytest.fixture
def spine(tmp_path: Path) -> Path:
    import pyarrow.parquet as pq

    path = tmp_path / "spine.parquet"
    pq.write_table(pa.table({"customer_id": [1, 2, 3], "merchant_id": [1, 2, 3],
                             "event_timestamp": pa.array([1_775_000_000_000_000] * 3,
                                                         pa.timestamp("us"))}), path)
    return path


def touch_models(project: Path) -> None:
    """Make the manifest stale, so that the next command runs dbt in its own process."""
    later = time.time() + 1
    for model in (project / "models" / "features").glob("*.sql"):
        os.utime(model, (later, later))


@pytest.mark.slow
@pytest.mark.parametrize("keep_open", ["true", None], ids=["keep_open_true", "no_keep_open"])
def test_every_command_after_dbt_run_with_default_profile(tmp_path, monkeypatch, spine,
                                                          keep_open):
    project = profile_with(copy_sample(tmp_path / "sample_project"), keep_open)
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(project / "target" / "sample.duckdb"))
    out = tmp_path / "train.parquet"
    commands = [
        ["validate"],
        ["list"],
        ["describe", "customer_spend"],
        ["training-set", "--spine", str(spine), "-f", FEATURES, "-o", str(out)],
        ["sql", "--spine", "labels", "--spine-timestamp", "scored_at", "-f", FEATURES],
    ]
    run_dbt(project, "seed")
    # Round 0 reads the manifest dbt run wrote; round 1 finds it stale, so dbt parses and
    # compiles inside dbt-features. Each round starts with dbt run on the file the commands
    # before it opened.
    for round_ in range(2):
        run_dbt(project, "run")
        if round_:
            touch_models(project)
        for args in commands:
            done = subprocess.run([DBT_FEATURES, *args], cwd=project, capture_output=True,
                                  text=True)
            assert done.returncode == 0, (round_, args, done.stderr)
            assert "Traceback" not in done.stderr


def test_in_process_dbt_then_duckdb_many_times(tmp_path, monkeypatch, spine):
    """dbt runs in this process (refresh: parse and compile) with dbt-duckdb's default
    keep_open; the warehouse is opened right after, again and again."""
    project = profile_with(copy_sample(tmp_path / "sample_project"), None)
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(project / "target" / "sample.duckdb"))
    run_dbt(project, "run")
    for _ in range(3):
        store = FeatureStore(str(project))
        assert len(store.refresh().views) == 2
        assert store.get_training_set(spine, FEATURES).num_rows == 3
        result = CliRunner().invoke(main, ["validate", "--project-dir", str(project)])
        assert result.exit_code == 0, result.output
        touch_models(project)


@pytest.fixture
def built_default_profile(tmp_path, monkeypatch) -> Path:
    project = profile_with(copy_sample(tmp_path / "sample_project"), None)
    monkeypatch.setenv("DBT_FEATURES_SAMPLE_DUCKDB", str(project / "target" / "sample.duckdb"))
    run_dbt(project, "run")
    return project


@pytest.mark.parametrize("read_only", [False, True], ids=["read_write", "read_only"])
def test_users_own_connection_held_during_api_calls(built_default_profile, spine, read_only):
    project = built_default_profile
    mine = duckdb.connect(str(project / "target" / "sample.duckdb"), read_only=read_only)
    try:
        before = mine.sql("select current_setting('TimeZone')").fetchall()
        store = FeatureStore(str(project))
        assert len(store.validate().views) == 2
        table = store.get_training_set(spine, FEATURES)
        assert table.num_rows == 3 and table.column_names[-1] == "merchant_category"
        assert store.training_sql("labels", FEATURES, spine_timestamp="scored_at")
        # The user's connection is untouched and still works.
        assert mine.sql("select count(*) from main.customer_spend").fetchall()[0][0] > 0
        assert mine.sql("select current_setting('TimeZone')").fetchall() == before
    finally:
        mine.close()


def test_users_read_write_connection_while_dbt_runs_in_process(built_default_profile, spine):
    project = built_default_profile
    mine = duckdb.connect(str(project / "target" / "sample.duckdb"))
    try:
        touch_models(project)
        store = FeatureStore(str(project))
        assert len(store.refresh().views) == 2
        assert store.get_training_set(spine, FEATURES).num_rows == 3
    finally:
        mine.close()


def test_users_read_only_connection_when_dbt_must_run(built_default_profile):
    """dbt opens the file read-write: impossible while this process holds it read-only. One
    clear line says so (when the project is unchanged dbt does not run: see above)."""
    project = built_default_profile
    mine = duckdb.connect(str(project / "target" / "sample.duckdb"), read_only=True)
    try:
        touch_models(project)
        with pytest.raises(ProjectError) as caught:
            FeatureStore(str(project)).validate()
    finally:
        mine.close()
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.endswith(
        "this process already has the DuckDB file open with other settings (a read-only "
        "connection of yours?), so dbt cannot open it: close that connection while dbt runs "
        "(dbt-features runs dbt only when the project changed).")
