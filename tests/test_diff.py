"""`dbt-features diff --state`: real dbt builds of copies of the sample project, compared with the
artifacts of a "production" build in another DuckDB database and schema."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from helpers import add_prod_target, copy_sample, run_dbt
from dbt_features import FeatureStore
from dbt_features.cli import main
from dbt_features.diff import compare
from dbt_features.manifest import read_manifest
from dbt_features.registry import Column, Registry
from dbt_features.state import Side

SPEND = Path("models") / "features" / "customer_spend.sql"
SCHEMA = Path("models") / "schema.yml"


@pytest.fixture(scope="module")
def prod_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Production's artifacts: the sample built into database `prod`, schema `analytics`, with
    the registry dbt-features exported there; copied to a folder of their own, as CI would."""
    project = copy_sample(tmp_path_factory.mktemp("prod") / "sample_project")
    add_prod_target(project)
    run_dbt(project, "run", "--target", "prod")
    assert FeatureStore(str(project), target="prod").registry.target == "prod"
    state = project.parent / "prod_artifacts"
    state.mkdir()
    for name in ("manifest.json", "feature_registry.json"):
        shutil.copy(project / "target" / name, state / name)
    return state


def edit(project: Path, path: Path, old: str, new: str) -> None:
    text = (project / path).read_text()
    assert old in text, f"{old!r} not in {path}"
    (project / path).write_text(text.replace(old, new))


def diff(project: Path, state: Path | str, *args: str) -> Result:
    return CliRunner().invoke(
        main, ["diff", "--project-dir", str(project), "--state", str(state), *args]
    )


def as_json(result: Result) -> dict:
    return json.loads(result.stdout)


def test_same_logic_in_another_database_and_schema_is_no_difference(built_sample, prod_state):
    prod = read_manifest(prod_state / "manifest.json")
    assert '"prod"."analytics"' in prod.node("model.dbt_features_sample.customer_spend")["relation_name"]
    result = diff(built_sample, prod_state)
    assert result.exit_code == 0, result.output
    assert "No differences: 2 feature views compared." in result.stdout
    data = as_json(diff(built_sample, prod_state, "--json"))
    assert data["ok"] is True and data["views"] == [] and data["affected_services"] == []
    assert data["unchanged_views"] == ["customer_spend", "merchant_risk"]
    assert data["counts"] == {
        "views_added": 0, "views_removed": 0, "views_changed": 0, "views_unchanged": 2,
        "changes": 0, "breaking": 0, "blocking": 0,
    }
    assert (data["state"]["source"], data["state"]["target"]) == ("feature_registry.json", "prod")
    assert data["current"]["target"] == "dev" and data["notes"] == []
    assert data["definitions_not_compared"] == []


def test_thirty_day_window_made_seven_days_is_breaking_and_names_the_consumer(sample_copy, prod_state):
    edit(sample_copy, SPEND, "interval '30 days'", "interval '7 days'")
    run_dbt(sample_copy, "run")
    result = diff(sample_copy, prod_state)
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "customer_spend  [changed; consumers: fraud_model]" in out
    assert "~ avg_amount_30d: definition changed under the same name" in out
    assert "BREAKING" in out
    assert "-  range BETWEEN INTERVAL '30' DAYS" not in out  # frame keywords are normalised
    assert "-  RANGE BETWEEN INTERVAL '30' DAYS PRECEDING AND CURRENT ROW" in out
    assert "+  RANGE BETWEEN INTERVAL '7' DAYS PRECEDING AND CURRENT ROW" in out
    assert "raise config.meta.feature_store.version of customer_spend to 2" in out
    assert "fraud_model (Card fraud model; owner risk-ml@example.com) reads customer_spend" in out
    assert out.rstrip().splitlines()[-1].startswith("BREAKING: 1 change not acknowledged")
    for untouched in ("avg_amount_7d", "txn_count_7d", "merchant_risk  ["):
        assert untouched not in out

    data = as_json(diff(sample_copy, prod_state, "--json"))
    assert data["ok"] is False
    # The documented structure (diff_version 1): these keys, in this order.
    assert list(data) == [
        "diff_version", "ok", "summary", "current", "state", "counts", "views",
        "unchanged_views", "definitions_not_compared", "affected_services", "notes"]
    assert data["diff_version"] == 1
    assert list(data["state"]) == [
        "path", "source", "project", "target", "adapter_type", "manifest_invocation_id"]
    [view] = data["views"]
    assert list(view) == ["name", "status", "version_before", "version_after", "version_raised",
                          "blocking", "consumers", "changes"]
    assert list(view["changes"][0]) == ["kind", "feature", "before", "after", "breaking",
                                        "blocking", "message", "sql_diff", "upstream_changed"]
    assert (view["name"], view["status"], view["blocking"], view["consumers"]) == (
        "customer_spend", "changed", True, ["fraud_model"])
    [change] = view["changes"]
    assert (change["kind"], change["feature"], change["breaking"], change["blocking"]) == (
        "feature_definition", "avg_amount_30d", True, True)
    assert change["before"] != change["after"] and change["upstream_changed"] == []
    assert [a["name"] for a in data["affected_services"]] == ["fraud_model"]
    assert data["affected_services"][0]["views"] == ["customer_spend"]
    assert data["unchanged_views"] == ["merchant_risk"]


def test_reformatting_the_sql_flags_nothing(sample_copy, prod_state):
    text = (sample_copy / SPEND).read_text()
    config, _, query = text.partition("}}\n")
    query = " ".join(line for line in query.splitlines() if not line.lstrip().startswith("--"))
    query = " ".join(query.split()).replace("select", "SELECT").replace("customer_id", "Customer_ID")
    query = query.replace("range between", "RANGE BETWEEN").replace(", ", ",\n  -- reformatted\n  ")
    (sample_copy / SPEND).write_text(config + "}}\n/* formatted by a linter */\n" + query + "\n")
    edit(sample_copy, Path("models/staging/transactions.sql"), "    transaction_id,\n",
         "    TRANSACTION_ID, -- upstream, reformatted\n")
    run_dbt(sample_copy, "run")
    result = diff(sample_copy, prod_state)
    assert result.exit_code == 0, result.output
    assert "No differences: 2 feature views compared." in result.stdout


def test_raising_the_version_acknowledges_a_breaking_change(sample_copy, prod_state):
    edit(sample_copy, SPEND, "interval '30 days'", "interval '7 days'")
    edit(sample_copy, SPEND, "'ttl': '30d',", "'ttl': '30d', 'version': 2,")
    run_dbt(sample_copy, "run")
    result = diff(sample_copy, prod_state)
    assert result.exit_code == 0, result.output
    assert "(breaking, acknowledged by the version)" in result.stdout
    assert "~ version 1 -> 2" in result.stdout
    assert "OK: every breaking change is acknowledged by a raised version" in result.stdout
    data = as_json(diff(sample_copy, prod_state, "--json"))
    [view] = data["views"]
    assert view["version_raised"] is True and view["blocking"] is False
    assert data["counts"]["breaking"] == 1 and data["counts"]["blocking"] == 0
    assert [a["name"] for a in data["affected_services"]] == ["fraud_model"]


def test_removed_added_retyped_features_ttl_and_an_upstream_filter(sample_copy, prod_state):
    edit(sample_copy, SPEND, "'ttl': '30d'", "'ttl': '14d'")
    edit(sample_copy, SPEND, "    avg(amount) over last_7d as avg_amount_7d,\n", "")
    edit(sample_copy, SPEND, "count(*) over last_7d as txn_count_7d",
         "cast(count(*) over last_7d as double) as txn_count_7d,\n"
         "    max(amount) over last_7d as max_amount_7d")
    edit(sample_copy, SCHEMA, "name: txn_count_7d\n        data_type: bigint",
         "name: txn_count_7d\n        data_type: double")
    edit(sample_copy, SCHEMA, "          ttl: 2d\n", "          ttl: 2d\n          version: 2\n")
    (sample_copy / "models/staging/transactions.sql").write_text(
        (sample_copy / "models/staging/transactions.sql").read_text() + "where amount > 2\n")
    run_dbt(sample_copy, "run")
    result = diff(sample_copy, prod_state, "--json")
    assert result.exit_code == 1, result.output
    views = {v["name"]: v for v in as_json(result)["views"]}
    spend = {(c["kind"], c["feature"]): c for c in views["customer_spend"]["changes"]}
    assert set(spend) == {
        ("ttl", None), ("feature_removed", "avg_amount_7d"), ("feature_added", "max_amount_7d"),
        ("feature_type", "txn_count_7d"), ("feature_definition", "txn_count_7d"),
        ("feature_definition", "avg_amount_30d"),
    }
    assert (spend["ttl", None]["before"], spend["ttl", None]["after"]) == (2592000, 1209600)
    assert spend["feature_type", "txn_count_7d"]["before"] == "int64"
    assert spend["feature_type", "txn_count_7d"]["after"] == "double"
    assert spend["feature_added", "max_amount_7d"]["breaking"] is False
    # The filter is upstream: the feature's own SQL did not change, transactions' did.
    avg30 = spend["feature_definition", "avg_amount_30d"]
    assert avg30["sql_diff"] == []
    assert avg30["upstream_changed"] == ["model.dbt_features_sample.transactions"]
    risk = views["merchant_risk"]
    assert risk["version_raised"] is True and risk["blocking"] is False
    assert {c["kind"] for c in risk["changes"]} == {"feature_definition", "version"}
    text = diff(sample_copy, prod_state).stdout
    assert "~ ttl 30d -> 2w  BREAKING" in text
    assert "- avg_amount_7d: feature removed  BREAKING" in text
    assert "+ max_amount_7d: feature added (double)\n" in text
    assert "~ txn_count_7d: type int64 (bigint) -> double (double)  BREAKING" in text
    assert "upstream SQL changed: model.dbt_features_sample.transactions" in text
    assert "BREAKING: 5 changes not acknowledged by a version raise in customer_spend" in text


def test_a_view_removed_and_one_added(sample_copy, prod_state):
    edit(sample_copy, SCHEMA, "        feature_store:\n", "        not_a_feature_store:\n")
    training_set = sample_copy / "models/training/fraud_training_set.sql"
    if training_set.exists():  # it reads merchant_risk as a feature view: not any more
        training_set.write_text("select * from {{ ref('labels') }}\n")
    (sample_copy / "models/training/labels.sql").write_text(
        "{{ config(meta={'feature_store': {'entity': 'transaction_id', 'timestamp': 'scored_at'}}) }}\n"
        + (sample_copy / "models/training/labels.sql").read_text()
    )
    run_dbt(sample_copy, "run")
    result = diff(sample_copy, prod_state)
    assert result.exit_code == 1, result.output
    assert "merchant_risk  [removed; consumers: fraud_model]" in result.stdout
    assert ("- view removed, 3 features: merchant_txn_count_30d, merchant_fraud_rate_30d, "
            "merchant_category  BREAKING") in result.stdout
    assert "labels  [added]" in result.stdout
    assert "+ view added, 4 features: customer_id, merchant_id, amount, is_fraud\n" in result.stdout
    assert "fraud_model (Card fraud model; owner risk-ml@example.com) reads merchant_risk" in result.stdout
    views = {v["name"]: v for v in as_json(diff(sample_copy, prod_state, "--json"))["views"]}
    assert views["merchant_risk"]["changes"][0]["kind"] == "view_removed"
    assert views["labels"]["blocking"] is False and views["labels"]["version_before"] is None


def test_state_manifest_alone_reports_unknown_types_instead_of_guessing(built_sample, prod_state, tmp_path):
    shutil.copy(prod_state / "manifest.json", tmp_path / "manifest.json")
    result = diff(built_sample, tmp_path, "--json")
    assert result.exit_code == 0, result.output
    data = as_json(result)
    assert data["state"]["source"] == "manifest.json" and data["state"]["target"] is None
    assert data["views"] == []
    [note] = data["notes"]
    # customer_spend declares its types in YAML; merchant_risk's come from the warehouse only.
    assert "merchant_risk: merchant_id, feature_at, computed_at, merchant_txn_count_30d" in note
    assert "customer_spend" not in note
    # A registry exported from another manifest is not trusted, and the diff says so.
    shutil.copy(built_sample / "target" / "feature_registry.json", tmp_path / "feature_registry.json")
    data = as_json(diff(built_sample, tmp_path, "--json"))
    assert data["state"]["source"] == "manifest.json"
    assert "was made from another manifest" in data["notes"][0]


def test_state_manifest_without_compiled_sql_says_definitions_were_not_compared(
    built_sample, prod_state, tmp_path
):
    manifest = json.loads((prod_state / "manifest.json").read_text())
    for node in manifest["nodes"].values():
        node.pop("compiled_code", None)  # as `dbt parse` leaves it
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    result = diff(built_sample, tmp_path)
    assert result.exit_code == 0, result.output
    assert "holds no compiled SQL for customer_spend, merchant_risk" in result.stdout
    assert "their definitions are not compared" in result.stdout
    assert result.stdout.rstrip().endswith(
        "No differences in columns and settings of 2 feature views (definitions of "
        "customer_spend, merchant_risk not compared: see the notes).")
    data = as_json(diff(built_sample, tmp_path, "--json"))
    assert data["definitions_not_compared"] == ["customer_spend", "merchant_risk"]


@pytest.mark.postgres
def test_a_postgresql_state_against_duckdb_says_the_sql_differs(built_sample, tmp_path):
    """The same sample compiled for PostgreSQL: its data generator dispatches other macros
    (generate_series, not range), so definitions differ, and the diff says why."""
    project = copy_sample(tmp_path / "sample_project")
    run_dbt(project, "compile", "--target", "postgres", "--target-path", "pg_target",
            "--select", "+customer_spend", "+merchant_risk",
            env={"DBT_FEATURES_PG_SCHEMA": "dbt_features_diff_never_built"})
    result = diff(built_sample, project / "pg_target", "--json")
    assert result.exit_code == 1, result.output
    data = as_json(result)
    assert data["state"]["adapter_type"] == "postgres"
    assert any("the state was built for postgres and this project for duckdb" in n
               for n in data["notes"])
    changes = [c for v in data["views"] for c in v["changes"]]
    assert {c["kind"] for c in changes} == {"feature_definition"}
    assert changes and all("model.dbt_features_sample.transactions" in c["upstream_changed"]
                           for c in changes)


def _manifest_of_version(state: Path, version: int) -> None:
    data = json.loads((state / "manifest.json").read_text())
    data["metadata"]["dbt_schema_version"] = f"https://schemas.getdbt.com/dbt/manifest/v{version}.json"
    (state / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda s: shutil.rmtree(s), "no such folder; point --state at the other environment's dbt artifacts"),
        (lambda s: (s / "manifest.json").unlink(), "the folder holds no manifest.json; point --state at"),
        (lambda s: _manifest_of_version(s, 20),
         "manifest.json has manifest schema https://schemas.getdbt.com/dbt/manifest/v20.json, which "
         "dbt-features does not read (it reads v12"),
        (lambda s: (s / "manifest.json").write_text('{"metadata": '),
         "manifest.json is not a readable dbt manifest (Expecting value"),
        (lambda s: (s / "feature_registry.json").write_text("not json"),
         "feature_registry.json is not a feature registry: Expecting value: line 1 column 1 (char 0); "
         "re-export it with `dbt-features list` in that environment, or remove it"),
        (lambda s: (s / "feature_registry.json").write_text('{"registry_version": 99}'),
         "feature registry version 99 is not 1"),
    ],
    ids=["missing-folder", "no-manifest", "schema-version", "bad-manifest", "bad-registry", "registry-version"],
)
def test_bad_state_is_a_clear_message_and_exit_2(built_sample, prod_state, tmp_path, setup, message):
    state = tmp_path / "state"
    shutil.copytree(prod_state, state)
    setup(state)
    result = diff(built_sample, state)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: --state {state}: ")
    assert message in result.stderr
    assert "Traceback" not in result.output
    data = as_json(diff(built_sample, state, "--json"))
    assert message in data["error"]


def test_state_is_required_and_may_come_from_dbt_state(built_sample, prod_state):
    result = CliRunner().invoke(main, ["diff", "--project-dir", str(built_sample)])
    assert result.exit_code == 2 and "Missing option '--state'" in result.stderr
    result = CliRunner().invoke(main, ["diff", "--project-dir", str(built_sample)],
                                env={"DBT_STATE": str(prod_state)})
    assert result.exit_code == 0 and "No differences" in result.stdout


# Pure comparisons of hand-edited registries: the rules, one by one.

@pytest.fixture(scope="module")
def prod_registry(prod_state) -> tuple[Registry, object]:
    return Registry.load(prod_state / "feature_registry.json"), read_manifest(prod_state / "manifest.json")


def _compare(prod_registry, change_view) -> list[tuple[str, str | None, bool]]:
    registry, manifest = prod_registry
    views = tuple(change_view(v) if v.name == "customer_spend" else v for v in registry.views)
    old = Side(registry, manifest, "feature_registry.json", "prod")
    new = Side(replace(registry, views=views), manifest, "feature_registry.json", "dev")
    result = compare(old, new)
    return [(c.kind, c.feature, c.breaking) for v in result.views for c in v.changes]


def test_rules_online_entity_timestamp_and_case(prod_registry):
    assert _compare(prod_registry, lambda v: replace(v, online=False)) == [("online", None, True)]
    offline = lambda v: replace(v, online=False)  # noqa: E731
    registry, manifest = prod_registry
    old = replace(registry, views=tuple(offline(v) for v in registry.views))
    back_online = compare(Side(old, manifest, "x", "prod"), Side(registry, manifest, "x", "dev"))
    assert [(c.kind, c.breaking) for v in back_online.views for c in v.changes] == [
        ("online", False), ("online", False)]
    renamed_key = lambda v: replace(v, entity=replace(v.entity, join_keys=(Column("cust_id", "int64", "bigint"),)))  # noqa: E731
    assert _compare(prod_registry, renamed_key) == [("entity", None, True)]
    assert _compare(prod_registry, lambda v: replace(v, timestamp=Column("feature_at", "date", "date"))) == [
        ("timestamp", None, True)]
    upper = lambda v: replace(v, features=tuple(replace(f, name=f.name.upper()) for f in v.features))  # noqa: E731
    assert _compare(prod_registry, upper) == []


def test_rules_unknown_types_are_not_compared_and_a_lowered_version_acknowledges_nothing(prod_registry):
    unknown = lambda v: replace(v, features=tuple(replace(f, dtype="unknown", data_type="") for f in v.features))  # noqa: E731
    assert _compare(prod_registry, unknown) == []
    registry, manifest = prod_registry
    raised = tuple(replace(v, version=3) if v.name == "customer_spend" else v for v in registry.views)
    old = Side(replace(registry, views=raised), manifest, "x", "prod")
    new_views = tuple(replace(v, version=2, ttl_seconds=60) if v.name == "customer_spend" else v
                      for v in registry.views)
    result = compare(old, Side(replace(registry, views=new_views), manifest, "x", "dev"))
    [view] = result.views
    assert not view.version_raised and result.exit_code == 1
    assert [c.message for c in view.changes] == ["ttl 30d -> 1m", "version 3 -> 2 (lowered: acknowledges nothing)"]
