"""The feature catalog (dbt_features/catalog/): what its pages say, that every link leads to a
page, that project text is escaped, bad inputs, ``--state``, and a project of hundreds of views.
The browser test is test_catalog_browser.py; the snippets run in test_catalog_snippets.py."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner

from http_support import Server
from helpers import REPO, make_project
from dbt_features import FeatureStore
from dbt_features.catalog.layout import slug
from dbt_features.catalog.sql_span import locate_projections
from dbt_features.cli import main

SQL = """-- a comment
select
    customer_id,
    t.at as feature_at,
    avg(amount) over last_30d as avg_amount_30d,
    count(*) over (partition by customer_id) "N_All"
from t
window
    last_30d as (partition by customer_id order by at
        range between interval '30 days' preceding and current row)
"""
HREF = re.compile(r'(?:href|src)="([^"#?]+)')


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


# -- pure parts --------------------------------------------------------------------------------

def test_the_feature_and_the_windows_it_uses_are_located():
    found = locate_projections(SQL, "duckdb")
    assert set(found) == {"customer_id", "feature_at", "avg_amount_30d", "n_all"}
    spans = [SQL[s.start:s.end] for s in found["avg_amount_30d"].spans]
    assert spans[0] == "avg(amount) over last_30d as avg_amount_30d"
    assert spans[1].startswith("last_30d as (partition by") and spans[1].endswith("current row)")
    assert [SQL[s.start:s.end] for s in found["n_all"].spans] == [
        'count(*) over (partition by customer_id) "N_All"']
    assert found["feature_at"].name == "feature_at"


@pytest.mark.parametrize("sql", ["select * from t", "select (((", "", "not sql at all ' "])
def test_sql_without_named_projections_marks_nothing(sql):
    found = locate_projections(sql, "duckdb")
    assert "avg_amount_30d" not in found


def test_file_names_are_safe_and_distinct():
    assert slug("customer_spend") == "customer_spend"
    assert slug("a/b") != slug("a_b") and "/" not in slug("a/b")
    assert slug("../x") == "~2E.~2Fx"
    assert slug("é") == "~C3~A9"


def test_the_wheel_carries_every_asset():
    """tests/test_packaging.py builds the wheel and checks its modules; these are data files,
    included by pyproject.toml's package-data globs."""
    import fnmatch
    import tomllib

    from dbt_features.catalog.site import ASSETS, asset

    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["dbt_features.catalog"]
    files = sorted(p.name for p in (REPO / "dbt_features/catalog/assets").iterdir())
    assert files == sorted(ASSETS)
    for name in files:
        assert any(fnmatch.fnmatch(f"assets/{name}", g) for g in globs), name
        assert asset(name)


# -- the sample project --------------------------------------------------------------------------

def site_links(site: Path) -> list[tuple[Path, Path]]:
    """(page, file it links to) for every relative link and script of every page."""
    found = []
    for page in site.rglob("*.html"):
        for target in HREF.findall(page.read_text()):
            if not target.startswith(("http://", "https://", "mailto:", "data:")):
                found.append((page, (page.parent / unquote(target)).resolve()))
    return found


def assert_links_resolve(site: Path) -> int:
    links = site_links(site)
    broken = [f"{p.relative_to(site)} -> {t}" for p, t in links if not t.is_file()]
    assert not broken, broken[:10]
    return len(links)


@pytest.fixture(scope="module")
def sample_site(built_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("catalog") / "site"
    result = invoke("catalog", "--project-dir", str(built_sample), "--output", str(out), "--json")
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert written["path"] == str(out) and written["views"] == 2 and written["features"] == 6
    assert written["files"] == len(list(out.rglob("*.*")))
    assert written["bytes"] == sum(p.stat().st_size for p in out.rglob("*.*"))
    return out


def test_index_lists_every_view_without_javascript(sample_site: Path):
    index = (sample_site / "index.html").read_text()
    assert '<input id="q" type="search"' in index
    table = index.split('id="all-views"', 1)[1]
    for view in ("customer_spend", "merchant_risk"):
        assert f'href="views/{view}.html">{view}</a>' in table
    assert "risk-features@example.com" in table and '<option value="risk">' in index
    data = (sample_site / "search-index.js").read_text()
    records = json.loads(data.split("=", 1)[1].rstrip(";\n"))["records"]
    assert len(records) == 8
    assert ["feature", "avg_amount_30d", "customer_spend"] == records[1][:3]


def test_feature_page_says_what_the_feature_is_and_where_it_comes_from(
        sample_site: Path, built_sample: Path):
    page = (sample_site / "features/customer_spend/avg_amount_30d.html").read_text()
    feature = FeatureStore(str(built_sample)).registry.view("customer_spend").feature(
        "avg_amount_30d")
    assert "Mean payment amount over the 30 days up to and including this payment." in page
    assert "<code>double</code>" in page and "<code>customer_id</code> int64" in page
    assert "<code>feature_at</code>" in page and "30d" in page
    assert f"<code>{feature.fingerprint}</code>" in page
    assert "<mark>avg(amount) over last_30d as avg_amount_30d</mark>" in page
    assert "<mark>avg(amount) over last_7d" not in page
    lineage = page.split('id="lineage"', 1)[1].split("</section>", 1)[0]
    assert 'href="../../nodes/model.dbt_features_sample.transactions.html">transactions</a>' \
        in lineage
    assert 'nodes/exposure.dbt_features_sample.fraud_model.html">fraud_model</a>' in lineage
    assert "fraud_training_set</a> <span class=\"kind\">model</span> " \
           '<span class="badge ts">training set</span>' in lineage
    use = page.split('id="use"', 1)[1]
    assert "get_training_set(spine, [&#x27;customer_spend:avg_amount_30d&#x27;])" in use
    assert "dbt_features.training_set(" in use and "/get-online-features" in use
    assert "Status not read when this catalog was made" in page


def test_every_link_leads_to_a_page(sample_site: Path):
    assert assert_links_resolve(sample_site) > 50
    node = (sample_site / "nodes/model.dbt_features_sample.transactions.html").read_text()
    assert 'href="../views/customer_spend.html">customer_spend</a>' in node


def test_state_shows_what_changed_as_diff_does(built_sample: Path, tmp_path: Path):
    state = tmp_path / "prod"
    state.mkdir()
    manifest = json.loads((built_sample / "target" / "manifest.json").read_text())
    node = next(n for n in manifest["nodes"].values() if n["name"] == "customer_spend")
    node["compiled_code"] = node["compiled_code"].replace("'30 days'", "'14 days'")
    (state / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "site"
    result = invoke("catalog", "--project-dir", str(built_sample), "--state", str(state),
                    "-o", str(out))
    assert result.exit_code == 0, result.output
    diff = invoke("diff", "--project-dir", str(built_sample), "--state", str(state), "--json")
    changed = [c for v in json.loads(diff.stdout)["views"] for c in v["changes"]
               if c["kind"] == "feature_definition"]
    assert [c["feature"] for c in changed] == ["avg_amount_30d"]
    page = (out / "features/customer_spend/avg_amount_30d.html").read_text()
    assert "avg_amount_30d: definition changed under the same name" in page
    assert "INTERVAL &#x27;14&#x27; DAYS" in page
    assert '<span class="badge warn">breaking</span>' in page
    other = (out / "features/customer_spend/txn_count_7d.html").read_text()
    assert "No change against" in other
    assert "1 changed" in (out / "index.html").read_text()


def test_bad_state_and_unwritable_output_are_clear_errors(built_sample: Path, tmp_path: Path):
    missing = tmp_path / "nowhere"
    result = invoke("catalog", "--project-dir", str(built_sample), "--state", str(missing))
    assert result.exit_code == 2
    assert str(missing) in result.stderr and "Traceback" not in result.stderr
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "site"):
        result = invoke("catalog", "--project-dir", str(built_sample), "-o", str(out), "--json")
        assert result.exit_code == 2, result.output
        message = f"Error: cannot write the feature catalog to {out} ("
        assert result.stderr.startswith(message) and "--output" in result.stderr
        assert json.loads(result.stdout)["error"].startswith(message[len("Error: "):])
    assert blocker.read_text() == "not a folder"


# -- hundreds of views ----------------------------------------------------------------------------

N_VIEWS = 300
HOSTILE = 'Spend <script>alert("x")</script> & "quotes"'


def many_views() -> dict[str, str]:
    files = {}
    yaml = ["version: 2", "models:"]
    for i in range(N_VIEWS):
        entity = f"e{i % 7}_id"
        files[f"models/v{i:03d}.sql"] = (
            "{{ config(meta={'feature_store': {'entity': '%s', 'timestamp': 'ts', "
            "'owner': 'team%d@example.com', 'tags': ['t%d'], 'online': %s}}) }}\n"
            "select 1::bigint as %s, now()::timestamp as ts, 1.5::double as f_a, "
            "2::bigint as f_b, 'x' as f_c\n" % (entity, i % 5, i % 3, "true" if i % 2 else "false",
                                                entity))
        yaml += [f"  - name: v{i:03d}", f"    description: '{HOSTILE if i == 7 else 'View'}'",
                 "    columns:", f"      - {{name: {entity}, data_type: bigint}}",
                 "      - {name: ts, data_type: timestamp}",
                 "      - {name: f_a, data_type: double}", "      - {name: f_b, data_type: bigint}",
                 "      - {name: f_c, data_type: varchar}"]
    files["models/schema.yml"] = "\n".join(yaml) + "\n"
    return files


@pytest.mark.slow
def test_a_project_of_hundreds_of_views(tmp_path: Path, redis_prefix: str):
    project = make_project(tmp_path / "many", many_views(), build=False)
    result = invoke("catalog", "--project-dir", str(project), "--json")
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    site = project / "target" / "feature_catalog"
    assert written["path"] == str(site)
    assert (written["views"], written["features"]) == (N_VIEWS, 3 * N_VIEWS)
    assert len(list((site / "features").rglob("*.html"))) == 3 * N_VIEWS
    page = (site / "views/v007.html").read_text()
    assert "<script>alert" not in page
    assert ("Spend &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; "
            "&quot;quotes&quot;") in page
    index = (site / "search-index.js").read_text()
    assert "</script>" not in index and "<\\/script>" in index
    assert assert_links_resolve(site) > 10 * N_VIEWS
    again = invoke("catalog", "--project-dir", str(project))  # replaces the previous one whole
    assert again.exit_code == 0 and "Wrote the feature catalog: 300 views" in again.stdout
    assert not [p for p in site.parent.iterdir() if p.name.startswith(".feature_catalog")]
    shutil.rmtree(site)
    server = Server(project, start_timeout=120)  # and from the feature server, rendered as asked for
    try:
        for path, shown in (("/", b"300 feature views, 900 features"),
                            ("/views/v150.html", b"<h1>v150 <span"),
                            ("/features/v151/f_b.html", b"<span class=\"view-name\">v151:")):
            with urllib.request.urlopen(server.url + path, timeout=30) as response:
                assert response.status == 200 and shown in response.read(), path
    finally:
        server.stop()
