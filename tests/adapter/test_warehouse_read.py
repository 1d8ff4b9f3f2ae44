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
