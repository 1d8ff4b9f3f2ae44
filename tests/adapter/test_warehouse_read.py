"""The settings a sync puts on an in-process engine hold for the block only: the values the
connection had (a user's own, in a shared database) come back, even when the block fails."""

from __future__ import annotations

import duckdb
import pytest

from dbt_features.serving.warehouse_read import IN_PROCESS_SETTINGS, engine_settings


def _setting(con: duckdb.DuckDBPyConnection, name: str) -> str:
    return str(con.execute("SELECT current_setting(?)", [name]).fetchall()[0][0])


@pytest.mark.parametrize("fails", [False, True])
@pytest.mark.parametrize("users", [(), ("SET memory_limit = '2GiB'",),
                                   ("SET memory_limit = '1.5 GiB'",
                                    "SET preserve_insertion_order = false")])
def test_engine_settings_are_restored_to_the_users_values(fails: bool, users: tuple[str, ...]) -> None:
    """The default comes back as the default; a value of the user's as DuckDB shows it."""
    con = duckdb.connect()
    for statement in users:
        con.execute(statement)
    before = {name: _setting(con, name) for name in IN_PROCESS_SETTINGS["duckdb"]}
    with pytest.raises(RuntimeError) if fails else _nothing():
        with engine_settings(con, IN_PROCESS_SETTINGS["duckdb"]):
            assert _setting(con, "memory_limit") == "61.0 MiB"  # 64 MB as DuckDB shows it
            assert _setting(con, "preserve_insertion_order") == "False"
            if fails:
                raise RuntimeError("the sync failed")
    assert {name: _setting(con, name) for name in IN_PROCESS_SETTINGS["duckdb"]} == before


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_shard_that_runs_out_of_memory_is_read_again_in_halves(tmp_path, monkeypatch,
                                                                  redis_prefix: str) -> None:
    """Under a memory bound too small for one pass (16 MB here, for 300k entities with a string
    feature), the sync still serves every entity, its latest row: the read was split until
    each part fitted."""
    from dataclasses import replace

    from dbt_features.serving import warehouse_read
    from dbt_features.serving.config import OnlineConfig
    from dbt_features.serving.online import OnlineStore
    from dbt_features.serving.sync import SyncOptions, sync_view
    from helpers import REDIS_URL
    from training_support import duckdb_warehouse, make_registry, make_view

    path = tmp_path / "features.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create table main.events as select i % 300000 as id, now()::timestamp - "
                "to_seconds(i // 300000 * 60 + 60) as ts, 'label_' || (i * 7919 % 100000)::varchar"
                " || repeat('x', 30) as s from range(1200000) r(i)")
    con.close()
    view = replace(make_view("events", "main", keys=[("id", "int64", "bigint")],
                             timestamp=("ts", "timestamp"), created=None, ttl=None,
                             features=[("s", "string", "varchar")]), online=True)
    monkeypatch.setitem(warehouse_read.IN_PROCESS_SETTINGS, "duckdb",
                        {"memory_limit": "16MB", "preserve_insertion_order": "false"})
    config = OnlineConfig(REDIS_URL, redis_prefix, "a test", tmp_path / "unused")
    online = OnlineStore.open(make_registry([view], "duckdb"), config)
    try:
        with duckdb_warehouse(path) as warehouse:
            result = sync_view(online, view, warehouse, SyncOptions(full_refresh=True))
        assert result.entities == 300_000
        ids = [0, 1, 7, 299_999, 123_456]
        got = online.get_online_features(["events:s"], [{"id": i} for i in ids]).values[0]
        assert got == tuple(f"label_{i * 7919 % 100000}" + "x" * 30 for i in ids)
    finally:
        online.close()
