"""The dbt package (dbt_package/): `dbt_features.training_set` as a dbt model gives the same rows
as the Python path and as the brute-force reference, on random data, on DuckDB and PostgreSQL.

The macro is a second implementation of dbt_features/pit.py (dbt macros cannot call Python), so
this differential test is what keeps the two equal. The package's layout (one public macro per
file, each dispatching) is checked on the macro files themselves."""

from __future__ import annotations

import random
import re
import subprocess
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pytest

from helpers import DBT, PG_DSN, REPO, own_pg_schema, run_dbt
from dbt_features import FeatureStore
from training_support import BASE, ViewData, reference, write_duckdb, write_postgres

FEATURES = ["fa:*", "fb:fb_str", "fb:fb_flag"]

MODELS = {
    "models/fa.sql": """
{{ config(meta={'feature_store': {'entity': 'a_id', 'timestamp': 'a_ts',
    'created_timestamp': 'a_created', 'ttl': '2h', 'features': ['fa_int', 'fa_dbl']}}) }}
select * from {{ source('raw', 'fa') }}
""",
    "models/fb.sql": """
{{ config(meta={'feature_store': {'entity': 'b_key', 'timestamp': 'b_ts'}}) }}
select * from {{ source('raw', 'fb') }}
""",
    "models/spine.sql": "select * from {{ source('raw', 'spine') }}\n",
    "models/training.sql": """
select * from {{ dbt_features.training_set(ref('spine'), ['fa:*', 'fb:fb_str', 'fb:fb_flag']) }}
""",
    "models/training_known.sql": """
select * from {{ dbt_features.training_set(ref('spine'), ['fa:*', 'fb:fb_str', 'fb:fb_flag'],
                                           as_known_at=true) }}
""",
    "models/sources.yml": """
version: 2
sources:
  - name: raw
    schema: "{{ target.schema }}"
    tables: [{name: fa}, {name: fb}, {name: spine}]
""",
}


def random_tables(seed: int, aware_spine: bool, ties: bool = True,
                  late: bool = False) -> dict[str, pa.Table]:
    """Random views and spine; without ``ties``, no two rows of a view share key and time; with
    ``late``, fa's rows are created up to 6 hours after their event time (often after the spine
    times that would pick them), else in the first 2 hours."""
    rng = random.Random(seed)

    def maybe(value: Any, p: float = 0.1) -> Any:
        return None if rng.random() < p else value

    def hours(n: int) -> Any:
        return BASE + timedelta(hours=n)

    fa = []
    for _ in range(300):
        event = rng.randint(0, 20)
        created = event + rng.randint(-1, 6) if late else rng.randint(0, 2)
        fa.append({"a_id": maybe(rng.randint(0, 5), 0.05), "a_ts": maybe(hours(event), 0.05),
                   "a_created": maybe(hours(created), 0.3), "fa_int": maybe(rng.randint(-3, 3)),
                   "fa_dbl": rng.choice([0.5, 1.5, -1.0, None])})
    fb = [{"b_key": rng.choice(["x", "y", "é", "", None]),
           "b_ts": maybe(hours(rng.randint(0, 20)).replace(tzinfo=timezone.utc), 0.05),
           "fb_str": rng.choice(["a", "B", "b", "é", "", None]),
           "fb_flag": rng.choice([True, False, None])} for _ in range(200)]
    if not ties:
        fa = list({(r["a_id"], r["a_ts"]): r for r in fa}.values())
        fb = list({(r["b_key"], r["b_ts"]): r for r in fb}.values())
    spine = []
    for _ in range(150):
        at = maybe(BASE + timedelta(minutes=30 * rng.randint(0, 44)), 0.05)
        if at is not None and aware_spine:
            at = at.replace(tzinfo=timezone.utc)
        spine.append({"a_id": maybe(rng.randint(0, 6)), "b_key": rng.choice(["x", "é", "w", None]),
                      "label": rng.randint(0, 1), "event_timestamp": at})
    spine += spine[:10]  # duplicates
    ts = pa.timestamp("us", tz="UTC") if aware_spine else pa.timestamp("us")
    return {
        "fa": pa.Table.from_pylist(fa, schema=pa.schema([
            ("a_id", pa.int64()), ("a_ts", pa.timestamp("us")), ("a_created", pa.timestamp("us")),
            ("fa_int", pa.int64()), ("fa_dbl", pa.float64())])),
        "fb": pa.Table.from_pylist(fb, schema=pa.schema([
            ("b_key", pa.string()), ("b_ts", pa.timestamp("us", tz="UTC")),
            ("fb_str", pa.string()), ("fb_flag", pa.bool_())])),
        "spine": pa.Table.from_pylist(spine, schema=pa.schema([
            ("a_id", pa.int64()), ("b_key", pa.string()), ("label", pa.int64()),
            ("event_timestamp", ts)])),
    }


def unordered(rows: list[dict[str, Any]]) -> list[str]:
    def norm(v: Any) -> Any:
        return v.astimezone(timezone.utc) if getattr(v, "tzinfo", None) else v

    return sorted(repr(sorted((k, norm(v)) for k, v in r.items())) for r in rows)


@pytest.fixture(scope="module")
def package_schema() -> Iterator[str]:
    with own_pg_schema("dbt_features_pkg") as schema:
        yield schema


# Where a CTE may be computed once per reader (BigQuery, Trino, Spark, Redshift), the macro keys
# each view's CTE by join keys and spine timestamp instead of the spine row number: these
# overrides (found first through the project's dispatch config) make DuckDB and PostgreSQL take
# that path, so that it is checked against the reference too.
KEYED = {
    "macros/keyed.sql": """
{% macro duckdb___ctes_computed_once() %}{{ return(false) }}{% endmacro %}
{% macro postgres___ctes_computed_once() %}{{ return(false) }}{% endmacro %}
""",
}
KEYED_DISPATCH = (
    "dispatch:\n  - macro_namespace: dbt_features\n    search_order: ['pit_diff', 'dbt_features']\n")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, package_schema: str) -> Path:
    return package_project(tmp_path_factory.mktemp("pkg") / "pit_diff", package_schema)


@pytest.fixture(scope="module")
def keyed_schema() -> Iterator[str]:
    with own_pg_schema("dbt_features_pkg_keyed") as schema:
        yield schema


@pytest.fixture(scope="module")
def keyed_project(tmp_path_factory: pytest.TempPathFactory, keyed_schema: str) -> Path:
    return package_project(tmp_path_factory.mktemp("pkg_keyed") / "pit_diff", keyed_schema,
                           extra=KEYED, dispatch=KEYED_DISPATCH)


def package_project(root: Path, package_schema: str, *, extra: dict[str, str] | None = None,
                    dispatch: str = "") -> Path:
    for name, text in {**MODELS, **(extra or {})}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "dbt_project.yml").write_text(
        "name: pit_diff\nversion: '1.0'\nconfig-version: 2\nprofile: pit_diff\n"
        "models:\n  pit_diff:\n    +materialized: table\n" + dispatch)
    (root / "packages.yml").write_text(f"packages:\n  - local: {REPO / 'dbt_package'}\n")
    (root / "profiles.yml").write_text(
        "pit_diff:\n  target: dev\n  outputs:\n"
        f"    dev:\n      type: duckdb\n      path: '{root / 'diff.duckdb'}'\n"
        "      keep_open: false\n      threads: 1\n"
        "    postgres:\n      type: postgres\n      host: 127.0.0.1\n      port: 5432\n"
        "      user: postgres\n      password: ''\n      dbname: test\n"
        f"      schema: {package_schema}\n      threads: 1\n")
    run_dbt(root, "deps")
    return root


def check(project: Path, target: str | None, tables: dict[str, pa.Table], dialect: str) -> None:
    """The macro's models (default and as known at), the single statement ``sql`` prints, the
    Python path on the spine model and on the Arrow spine, and the reference: the same rows."""
    run_dbt(project, "run", *(["--target", target] if target else []))
    store = FeatureStore(project_dir=str(project), target=target)
    registry = store.registry
    va, vb = registry.view("fa"), registry.view("fb")
    views = [ViewData(va, tables["fa"].to_pylist(), tables["fa"].schema),
             ViewData(vb, tables["fb"].to_pylist(), tables["fb"].schema)]
    for model, known in (("training", False), ("training_known", True)):
        expected = reference(tables["spine"].to_pylist(), "event_timestamp", views,
                             [[("fa_int", "fa_int"), ("fa_dbl", "fa_dbl")],
                              [("fb_str", "fb_str"), ("fb_flag", "fb_flag")]], as_known_at=known)
        relation = store.manifest.node(f"model.pit_diff.{model}")
        with store.warehouse() as wh:
            assert wh.dialect == dialect
            schema = relation["schema"]
            from_macro = wh.arrow(f'select * from "{schema}"."{model}"')
            printed = wh.arrow(store.training_sql("spine", FEATURES, as_known_at=known))
        from_python = store.get_training_set("spine", FEATURES, as_known_at=known)
        assert from_macro.column_names == from_python.column_names == printed.column_names
        assert unordered(from_macro.to_pylist()) == unordered(expected), model
        assert unordered(from_python.to_pylist()) == unordered(expected), model
        assert printed.to_pylist() == expected, model
        from_arrow = store.get_training_set(tables["spine"], FEATURES, as_known_at=known)
        assert from_arrow.to_pylist() == expected, model


@pytest.mark.parametrize(("seed", "ties"), [(1, True), (2, True), (7, False)])
def test_macro_equals_python_on_duckdb(project: Path, seed: int, ties: bool) -> None:
    """With and without rows sharing key and time: DuckDB ranks them only when there are."""
    tables = random_tables(seed, aware_spine=seed % 2 == 0, ties=ties)
    write_duckdb(project / "diff.duckdb", tables)
    check(project, None, tables, "duckdb")
    # DuckDB computes a materialized CTE once: views are keyed by the spine row number.
    assert "__dbt_features_spine as materialized (" in compiled(project)
    assert 'partition by x."__dbt_features_row"' in compiled_view_ctes(project)


def test_macro_as_known_at_equals_python_on_duckdb(project: Path) -> None:
    """Rows created after the spine times that would pick them: as known at, the macro and the
    Python path skip them alike; fa (created_timestamp) is matched on its rows' known times."""
    tables = random_tables(8, aware_spine=True, late=True)
    write_duckdb(project / "diff.duckdb", tables)
    check(project, None, tables, "duckdb")
    known = compiled(project, "training_known")
    assert known.count("asof left join") == 2 and known.count("__dbt_features_known") > 1
    assert '"a_created" is null)' in known
    assert '"a_created" is null' not in compiled(project)


@pytest.mark.postgres
@pytest.mark.parametrize(("seed", "late"), [(3, False), (4, False), (9, True)])
def test_macro_equals_python_on_postgres(project: Path, package_schema: str, seed: int,
                                         late: bool) -> None:
    tables = random_tables(seed, aware_spine=seed % 2 == 0, late=late)
    write_postgres(PG_DSN, package_schema, tables)
    check(project, "postgres", tables, "postgres")
    assert "__dbt_features_spine as materialized (" in compiled(project)
    assert 'partition by p."__dbt_features_row"' in compiled_view_ctes(project)


def test_macro_keyed_by_join_keys_equals_python_on_duckdb(keyed_project: Path) -> None:
    tables = random_tables(5, aware_spine=True, late=True)
    write_duckdb(keyed_project / "diff.duckdb", tables)
    check(keyed_project, None, tables, "duckdb")
    assert "__dbt_features_row" not in compiled_view_ctes(keyed_project)


@pytest.mark.postgres
def test_macro_keyed_by_join_keys_equals_python_on_postgres(keyed_project: Path,
                                                            keyed_schema: str) -> None:
    tables = random_tables(6, aware_spine=False, late=True)
    write_postgres(PG_DSN, keyed_schema, tables)
    check(keyed_project, "postgres", tables, "postgres")
    assert "__dbt_features_row" not in compiled_view_ctes(keyed_project)


def compiled(project: Path, model: str = "training") -> str:
    return (project / "target" / "compiled" / "pit_diff" / "models" / f"{model}.sql").read_text()


def compiled_view_ctes(project: Path) -> str:
    """The compiled per-view CTEs: from the first after the spine's to the final select."""
    text = compiled(project)
    return text[text.index("\n, __dbt_features_"):text.rindex("\nselect")]


def test_sample_project_uses_the_package(built_sample: Path) -> None:
    """The sample's fraud_training_set model (the macro) equals the CLI's training set."""
    store = FeatureStore(project_dir=str(built_sample))
    with store.warehouse() as wh:
        model = wh.arrow("select * from main.fraud_training_set")
    python = store.get_training_set(
        "labels", ["customer_spend:avg_amount_30d", "customer_spend:txn_count_7d",
                   "merchant_risk:*"], spine_timestamp="scored_at")
    key = lambda r: r["transaction_id"]  # noqa: E731
    assert sorted(model.to_pylist(), key=key) == sorted(python.to_pylist(), key=key)
    assert "fraud_model" in [s.name for s in store.registry.services]


def failed_model(project: Path, models: dict[str, str], select: str) -> str:
    """dbt's output for `dbt run --select select` with extra models, which must fail."""
    for name, text in models.items():
        (project / "models" / f"{name}.sql").write_text(text)
    try:
        done = subprocess.run([DBT, "run", "--select", select, "--project-dir", str(project),
                               "--profiles-dir", str(project)], capture_output=True, text=True)
    finally:
        for name in models:
            (project / "models" / f"{name}.sql").unlink()
    assert done.returncode != 0
    return done.stdout


@pytest.fixture(scope="module")
def built_project(project: Path) -> Path:
    """The project with its views built on DuckDB, whichever test ran before on this worker."""
    write_duckdb(project / "diff.duckdb", random_tables(1, aware_spine=False))
    run_dbt(project, "run", "--select", "fa", "fb", "spine")
    return project


def test_macro_error_names_the_missing_key(built_project: Path) -> None:
    out = failed_model(built_project, {"bad": (
        "select * from {{ dbt_features.training_set(ref('fa'), ['fb:fb_str'], "
        "spine_timestamp='a_ts') }}\n")}, "bad")
    assert "has no column 'b_key', the join key of feature view 'fb'" in out


def test_macro_error_names_a_bad_as_known_at(built_project: Path) -> None:
    out = failed_model(built_project, {"bad": (
        "select * from {{ dbt_features.training_set(ref('spine'), ['fa:*'], "
        "as_known_at='yes') }}\n")}, "bad")
    assert "dbt_features.training_set: as_known_at must be true or false, not 'yes'" in out


def test_macro_error_names_an_unbuilt_view(project: Path) -> None:
    out = failed_model(project, {
        "spine_now": "select 1 as a_id, timestamp '2024-01-01' as event_timestamp\n",
        "unbuilt": "{{ config(meta={'feature_store': {'entity': 'a_id', 'timestamp': 'a_ts'}}) }}\n"
                   "select 1 as a_id, timestamp '2024-01-01' as a_ts, 2 as x\n",
        "bad": "select * from {{ dbt_features.training_set(ref('spine_now'), ['unbuilt:*']) }}\n",
    }, "spine_now bad")
    assert "dbt_features.training_set: feature view 'unbuilt' (" in out
    assert ") has no columns; is it built?" in out


# -- the package's layout ------------------------------------------------------------------------

MACROS = REPO / "dbt_package" / "macros"
MACRO = re.compile(r"\{%-?\s*macro\s+(\w+)\s*\(")
CALL = re.compile(r"\bdbt_features\.(\w+)\s*\(")


def dispatch_parts(name: str) -> tuple[str | None, str]:
    """'duckdb___pit_join' -> ('duckdb', '_pit_join'); an entry macro -> (None, its name)."""
    adapter, sep, base = name.partition("__")
    return (adapter, base) if sep and adapter else (None, name)


def macro_files() -> dict[Path, list[str]]:
    return {path: MACRO.findall(path.read_text()) for path in sorted(MACROS.rglob("*.sql"))}


def test_each_file_holds_one_macro_and_its_dispatched_versions() -> None:
    """macros/x.sql: the public macro x; macros/helpers/_y.sql: the private macro _y. A public
    macro, or a private one with adapter versions, is a dispatch entry defined first, then its
    default__ version, then the adapters'."""
    files = macro_files()
    assert MACROS / "training_set.sql" in files
    for path, names in files.items():
        where = path.relative_to(MACROS)
        assert path.parent in (MACROS, MACROS / "helpers"), f"{where}: macros/ or macros/helpers/"
        entry = path.stem
        assert names and names[0] == entry, f"{where}: defines {names}, {entry} first"
        assert entry.startswith("_") == (path.parent.name == "helpers"), (
            f"{where}: public macros in macros/, private (_name) ones in macros/helpers/")
        versions = names[1:]
        assert all(dispatch_parts(v)[1] == entry for v in versions), f"{where}: {names}"
        text = path.read_text()
        if versions or not entry.startswith("_"):
            assert f"adapter.dispatch('{entry}', 'dbt_features')" in text, f"{where}: dispatch"
            assert versions[:1] == [f"default__{entry}"], f"{where}: default__{entry} second"


def test_macros_call_only_package_macros_and_fail_in_one_place() -> None:
    files = macro_files()
    entries = {names[0] for names in files.values()}
    for path in files:
        text = path.read_text()
        unknown = set(CALL.findall(text)) - entries
        assert not unknown, f"{path.name} calls dbt_features.{sorted(unknown)}, not entry macros"
        if path.stem != "_fail":
            assert "raise_compiler_error" not in text, f"{path.name}: use dbt_features._fail"
