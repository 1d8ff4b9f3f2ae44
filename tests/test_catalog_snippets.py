"""The "how to use it" snippets of a feature page, run as a reader would paste them, on the
sample project with recent data: each really returns that feature. And ``serve``'s catalog:
``/``, a feature page, the live status, the token."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from http_support import Server
from helpers import DBT_FEATURES, run_dbt
from dbt_features import FeatureStore

SNIPPET = re.compile(r'<pre id="snippet-\d+" data-snippet="(\w+)"(?: data-file="([^"]+)")?>'
                     r"<code>(.*?)</code></pre>", re.DOTALL)
PAGE = "features/customer_spend/avg_amount_30d.html"


def snippets(site: Path) -> dict[str, list[tuple[str | None, str]]]:
    found: dict[str, list[tuple[str | None, str]]] = {}
    for kind, file, code in SNIPPET.findall((site / PAGE).read_text()):
        found.setdefault(kind, []).append((html.unescape(file) or None, html.unescape(code)))
    return found


def fetch(url: str, auth: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def synced_site(duck_project: Path, tmp_path: Path) -> Path:
    store = FeatureStore(str(duck_project))
    store.sync()
    assert store.verify(sample=20).exit_code == 0  # kept for the catalog
    site = tmp_path / "site"
    subprocess.run([DBT_FEATURES, "catalog", "--online-status", "-o", str(site)],
                   cwd=duck_project, check=True, capture_output=True)
    return site


def test_every_snippet_returns_the_feature(synced_site: Path, duck_project: Path,
                                           tmp_path: Path):
    found = snippets(synced_site)
    assert sorted(found) == ["curl", "python", "sh", "sql"]
    (python,), (shell,) = found["python"], found["sh"]
    ran = subprocess.run([sys.executable, "-c", python[1]], cwd=duck_project,
                         capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert isinstance(json.loads(ran.stdout)[0], float)  # customer 1 has paid in 30 days

    work = tmp_path / "work"
    shutil.copytree(duck_project, work, ignore=shutil.ignore_patterns("logs", ".dbt_features"))
    env = {**os.environ, "PATH": f"{Path(DBT_FEATURES).parent}{os.pathsep}{os.environ['PATH']}",
           "DBT_FEATURES_SAMPLE_DUCKDB": str(work / "target" / "sample.duckdb")}
    ran = subprocess.run(["bash", "-ec", shell[1]], cwd=work, env=env, capture_output=True,
                         text=True)
    assert ran.returncode == 0, ran.stderr
    table = pq.read_table(work / "target" / "customer_spend__training.parquet")
    assert table.column_names == ["customer_id", "event_timestamp", "avg_amount_30d"]
    assert table.column("avg_amount_30d").to_pylist()[0] is not None

    files = found["sql"]
    for file, code in files:
        (work / file).write_text(code)
    names = [Path(file).stem for file, _ in files]
    run_dbt(work, "run", "--select", *names, env=env)
    with duckdb.connect(str(work / "target" / "sample.duckdb"), read_only=True) as con:
        rows = con.sql(f"select avg_amount_30d from main.{names[-1]}").fetchall()
    assert len(rows) == 1 and rows[0][0] is not None

    (curl,) = found["curl"]
    server = Server(duck_project, start_timeout=120)
    try:
        command = curl[1].replace("localhost:6566", f"127.0.0.1:{server.port}")
        ran = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    finally:
        server.stop()
    answer = json.loads(ran.stdout)
    assert answer["metadata"]["feature_names"] == ["customer_id", "avg_amount_30d"]
    assert answer["results"][1]["statuses"] == ["PRESENT"]


def test_serve_has_the_catalog_at_the_root_behind_the_token(synced_site: Path,
                                                            duck_project: Path):
    server = Server(duck_project, "--token-env", "CATALOG_TOKEN",
                    env={"CATALOG_TOKEN": "s3cret"}, start_timeout=120)
    try:
        status, headers, _ = fetch(f"{server.url}/")
        assert status == 401 and headers["www-authenticate"].startswith("Basic")
        basic = "Basic " + base64.b64encode(b"me:s3cret").decode()
        wrong = "Basic " + base64.b64encode(b"me:nope").decode()
        assert fetch(f"{server.url}/", wrong)[0] == 401
        status, headers, body = fetch(f"{server.url}/", basic)
        assert status == 200 and headers["content-type"].startswith("text/html")
        when = re.compile(rb"made [-+:T\d]+\.")  # written and served differ only there
        assert when.sub(b"", body) == when.sub(b"", (synced_site / "index.html").read_bytes())
        status, _, page = fetch(f"{server.url}/{PAGE}", "Bearer s3cret")
        assert status == 200 and b"<mark>avg(amount) over last_30d" in page
        written = (synced_site / PAGE).read_text()
        for shown in ("<h2>Last verify</h2>", "no skew", "<dt>Keys</dt><dd>", "ago)",
                      "As read when this catalog was made"):
            assert shown in written
        status, headers, css = fetch(f"{server.url}/assets/catalog.css", basic)
        assert status == 200 and headers["content-type"].startswith("text/css") and css
        status, _, live = fetch(f"{server.url}/catalog/status.json", basic)
        views = json.loads(live)["views"]
        assert status == 200 and sorted(views) == ["customer_spend", "merchant_risk"]
        assert "Last sync" in views["customer_spend"] and "As read live" in views["customer_spend"]
        status, _, missing = fetch(f"{server.url}/views/nope.html", basic)
        assert status == 404 and b"no page /views/nope.html" in missing
        assert fetch(f"{server.url}/../etc/passwd", basic)[0] == 404
        assert fetch(f"{server.url}/metrics", basic)[0] == 200  # GETs take the browser's form
    finally:
        server.stop()
