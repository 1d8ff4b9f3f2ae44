"""Definition fingerprints: what counts as a change of a feature's logic, and what does not.

Unit tests run the fingerprinter on small hand-written manifests (pure functions over JSON); the
end-to-end tests compile copies of the sample project with real dbt.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import add_prod_target, run_dbt
from dbt_features.fingerprint import Fingerprinter
from dbt_features.manifest import Manifest, read_manifest

CUSTOMER_SPEND = """
-- How a customer spends, as of each of their payments.
select
    customer_id,
    transaction_at as feature_at,
    avg(amount) over last_30d as avg_amount_30d,
    avg(amount) over last_7d as avg_amount_7d,
    count(*) over last_7d as txn_count_7d
from {{transactions}}
window
    last_30d as (
        partition by customer_id order by transaction_at
        range between interval '30 days' preceding and current row
    ),
    last_7d as (
        partition by customer_id order by transaction_at
        range between interval '7 days' preceding and current row
    )
"""
TRANSACTIONS = "select transaction_id, customer_id, amount, transaction_at from {{raw_payments}}"
RAW = "select * from range(10) as s(i)"
KEEP = ["customer_id", "feature_at"]
FEATURES = ["avg_amount_30d", "avg_amount_7d", "txn_count_7d"]
VIEW = "model.shop.customer_spend"


def make_manifest(models: dict[str, str], *, database: str = "dev", schema: str = "main") -> Manifest:
    """A minimal manifest: each ``{{name}}`` in a model's SQL becomes that model's relation name
    in ``database.schema``, as dbt compiles ``ref('name')``, and a dependency."""
    nodes = {}
    for name, sql in models.items():
        refs = re.findall(r"\{\{(\w+)\}\}", sql)
        compiled = re.sub(r"\{\{(\w+)\}\}", lambda m: f'"{database}"."{schema}"."{m.group(1)}"', sql)
        nodes[f"model.shop.{name}"] = {
            "unique_id": f"model.shop.{name}", "resource_type": "model", "name": name,
            "database": database, "schema": schema, "alias": name, "compiled_code": compiled,
            "depends_on": {"nodes": [f"model.shop.{r}" for r in refs]},
        }
    data = {"metadata": {"adapter_type": "duckdb"}, "nodes": nodes, "sources": {}}
    return Manifest(path=Path("manifest.json"), data=data)


def prints(
    view_sql: str = CUSTOMER_SPEND,
    *,
    models: dict[str, str] | None = None,
    database: str = "dev",
    schema: str = "main",
) -> dict[str, str]:
    """Fingerprints of the customer_spend view and its features (plus ``model`` for the view)."""
    every = {"raw_payments": RAW, "transactions": TRANSACTIONS, "customer_spend": view_sql}
    manifest = make_manifest({**every, **(models or {})}, database=database, schema=schema)
    fingerprinter = Fingerprinter(manifest, "duckdb")
    return {"model": fingerprinter.model(VIEW), **fingerprinter.features(VIEW, KEEP, FEATURES)}


def changed(a: dict[str, str], b: dict[str, str]) -> set[str]:
    return {k for k in a if a[k] != b[k]}


BASE = prints()


def test_changing_one_window_changes_only_the_features_that_use_it() -> None:
    after = prints(CUSTOMER_SPEND.replace("'30 days'", "'7 days'"))
    assert changed(BASE, after) == {"model", "avg_amount_30d"}


def test_the_seven_day_window_is_shared_by_two_features() -> None:
    after = prints(CUSTOMER_SPEND.replace("'7 days'", "'14 days'"))
    assert changed(BASE, after) == {"model", "avg_amount_7d", "txn_count_7d"}


def test_an_aggregate_change_is_a_change() -> None:
    after = prints(CUSTOMER_SPEND.replace("avg(amount) over last_30d", "median(amount) over last_30d"))
    assert changed(BASE, after) == {"model", "avg_amount_30d"}


def test_a_filter_changes_every_feature() -> None:
    after = prints(CUSTOMER_SPEND.replace("window\n", "where amount > 10\nwindow\n"))
    assert changed(BASE, after) == {"model", *FEATURES}


def test_reading_another_source_changes_every_feature() -> None:
    after = prints(
        CUSTOMER_SPEND.replace("{{transactions}}", "{{refunds}}"),
        models={"refunds": TRANSACTIONS},
    )
    assert changed(BASE, after) == {"model", *FEATURES}


def test_an_upstream_filter_changes_every_feature_downstream() -> None:
    after = prints(models={"transactions": TRANSACTIONS + " where amount > 0"})
    assert changed(BASE, after) == {"model", *FEATURES}
    two_up = prints(models={"raw_payments": "select * from range(20) as s(i)"})
    assert changed(BASE, two_up) == {"model", *FEATURES}


def test_whitespace_comments_and_keyword_case_do_not_count() -> None:
    body = "\n".join(line for line in CUSTOMER_SPEND.splitlines() if not line.startswith("--"))
    one_line = " ".join(body.split())
    assert prints(one_line) == BASE
    assert prints(CUSTOMER_SPEND + "\n-- trailing comment\n/* and a block */") == BASE
    assert prints(one_line.upper().replace("'30 DAYS'", "'30 days'").replace("'7 DAYS'", "'7 days'")
                  .replace("{{TRANSACTIONS}}", "{{transactions}}")) == BASE


def test_identifier_case_does_not_count_here_or_upstream() -> None:
    assert prints(CUSTOMER_SPEND.replace("customer_id", "Customer_ID")) == BASE
    upper_upstream = TRANSACTIONS.replace("transaction_id", "TRANSACTION_ID")
    assert prints(models={"transactions": upper_upstream}) == BASE


def test_another_database_and_schema_give_the_same_fingerprints() -> None:
    assert prints(database="prod", schema="analytics") == BASE


def test_a_cte_named_like_a_model_reads_the_cte() -> None:
    """A one-part name that is a CTE must not be taken for the model of that name: a change of
    that (unrelated) model must not change this view's fingerprint."""
    sql = "with daily as (select * from {{transactions}}) select customer_id, amount from daily"
    base = make_manifest({"transactions": TRANSACTIONS, "daily": "select 1 as x", "v": sql})
    other = make_manifest({"transactions": TRANSACTIONS, "daily": "select 2 as x", "v": sql})
    assert Fingerprinter(base, "duckdb").model("model.shop.v") == Fingerprinter(other, "duckdb").model("model.shop.v")


def test_feature_sql_is_the_pruned_query() -> None:
    fingerprinter = Fingerprinter(make_manifest({"transactions": TRANSACTIONS, "customer_spend": CUSTOMER_SPEND}), "duckdb")
    sql = fingerprinter.feature_sql("model.shop.customer_spend", KEEP, "avg_amount_30d")
    assert "avg_amount_30d" in sql and "'30' DAYS" in sql
    assert "txn_count_7d" not in sql and "last_7d" not in sql
    assert '"model.shop.transactions"' in sql  # relation names as dbt identities
    assert fingerprinter.upstream("model.shop.customer_spend") == {
        "model.shop.transactions": fingerprinter.model("model.shop.transactions")
    }


_TOKEN = re.compile(r"'[^']*'|\S+")


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_layout_and_case_gives_the_same_fingerprints(data: st.DataObject) -> None:
    body = "\n".join(line for line in CUSTOMER_SPEND.splitlines() if not line.startswith("--"))
    out = []
    for token in _TOKEN.findall(body):
        if "'" not in token and "{{" not in token:
            token = data.draw(st.sampled_from([token, token.upper(), token.lower(), token.title()]))
        space = [" ", "\n", "\t", "  \n    "]
        if token.endswith(","):  # (sqlglot cannot parse a comment inside `partition by`)
            space += [" /* note */ ", " -- note\n"]
        out.append(token + data.draw(st.sampled_from(space)))
    assert prints("".join(out)) == BASE


# End to end: real dbt on copies of the sample project.



def compiled(project: Path, target_path: str, *args: str) -> Manifest:
    (project / "target").mkdir(exist_ok=True)  # where the dev DuckDB file goes
    # Only the feature views and their parents: other models may need a built warehouse.
    run_dbt(project, "compile", "--target-path", target_path,
            "--select", "+customer_spend", "+merchant_risk", *args)
    return read_manifest(project / target_path / "manifest.json")


def sample_prints(manifest: Manifest) -> dict[str, str]:
    fingerprinter = Fingerprinter(manifest, "duckdb")
    out = {}
    for view, keep, features in (
        ("customer_spend", ["customer_id", "feature_at"], FEATURES),
        ("merchant_risk", ["merchant_id", "feature_at", "computed_at"],
         ["merchant_txn_count_30d", "merchant_fraud_rate_30d", "merchant_category"]),
    ):
        uid = f"model.dbt_features_sample.{view}"
        out[view] = fingerprinter.model(uid)
        out |= {f"{view}:{k}": v for k, v in fingerprinter.features(uid, keep, features).items()}
    return out


def test_sample_project_dev_and_another_database_and_schema_agree(sample_copy: Path) -> None:
    add_prod_target(sample_copy)
    dev = compiled(sample_copy, "target_dev")
    prod = compiled(sample_copy, "target_prod", "--target", "prod")
    relation = "model.dbt_features_sample.customer_spend"
    assert dev.node(relation)["relation_name"] != prod.node(relation)["relation_name"]
    assert '"analytics"' in prod.node(relation)["compiled_code"]
    assert sample_prints(dev) == sample_prints(prod)


def test_sample_project_window_change_is_per_feature(sample_copy: Path) -> None:
    before = sample_prints(compiled(sample_copy, "target_before"))
    model = sample_copy / "models" / "features" / "customer_spend.sql"
    text = model.read_text()
    assert text.count("interval '30 days'") == 1
    model.write_text(text.replace("interval '30 days'", "interval '7 days'"))
    after = sample_prints(compiled(sample_copy, "target_after"))
    assert {k for k in before if before[k] != after[k]} == {
        "customer_spend", "customer_spend:avg_amount_30d"
    }
