"""Feature-catalog benchmark: generating the site for a large registry, its page weight, and
how fast its search answers in a real browser.

    .venv/bin/python tests/benchmarks/bench_catalog.py              # 1,000 views x 20 features
    .venv/bin/python tests/benchmarks/bench_catalog.py --views 100 --no-browser   # quicker

The registry and the manifest are made in memory, in the shapes dbt-features and dbt write them
(each view a model with FEATURES windowed features over one upstream model, and its compiled
SQL; an exposure per 10 views, a training-set model per 50): what is timed is the catalog's own
work, from records to files, not a dbt parse of a thousand models. Prints:

* generation: ``build_catalog`` (lineage, locating every feature in its SQL) and ``write_site``
  (rendering and writing every page), against a raw baseline that writes the same number of
  files of the same total size (the file system's floor), and the ratio;
* page weight: what a browser loads for the index (HTML, stylesheet, script, search index) and
  for a feature page, and the whole site on disk;
* search (with Chromium, unless ``--no-browser``): opening the index from file:// until search
  is ready, and the time from a keystroke's input event to results on screen, median and
  worst of several queries.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from dbt_features.catalog import Site, build_catalog, write_site  # noqa: E402
from dbt_features.manifest import Manifest  # noqa: E402
from dbt_features.registry import (Column, Entity, Feature, FeatureView, Registry,  # noqa: E402
                                   now_iso)
from dbt_features.relation import Relation  # noqa: E402

QUERIES = ["amount", "v0500", "f7 30", "team3", "spend 14d", "zzz-no-match"]


def view_sql(i: int, n: int) -> str:
    features = ",\n".join(f"    avg(amount) over w{k % 5} as f{k}_{(k % 5 + 1) * 7}d"
                          for k in range(n))
    windows = ",\n".join(f"    w{k} as (partition by customer_id order by at range between "
                         f"interval '{(k + 1) * 7} days' preceding and current row)"
                         for k in range(5))
    return (f"-- view {i}\nselect\n    customer_id,\n    at as feature_at,\n{features}\n"
            f'from "bench"."main"."transactions"\nwindow\n{windows}\n')


def make_view(i: int, n: int) -> FeatureView:
    name = f"v{i:04d}"
    key = Column("customer_id", "int64", "bigint")
    features = tuple(Feature(f"f{k}_{(k % 5 + 1) * 7}d", "double", "double",
                             f"Mean spend amount over {(k % 5 + 1) * 7} days, window {k}.",
                             f"{i:08x}{k:08x}") for k in range(n))
    return FeatureView(
        name=name, unique_id=f"model.bench.{name}", package="bench",
        file=f"models/{name}.sql", yaml_file=None, relation=Relation("bench", "main", name),
        relation_name=f'"bench"."main"."{name}"', materialized="table",
        entity=Entity("customer", (key,)), timestamp=Column("feature_at", "timestamp", "timestamp"),
        created_timestamp=None, ttl_seconds=30 * 86400, online=i % 2 == 0, features=features,
        owner=f"team{i % 9}@example.com", tags=(f"domain{i % 4}",),
        description=f"Customer spend, variant {i}.", version=1, fingerprint=f"{i:016x}",
        compiled_sql=view_sql(i, n), consumers=())


def make_manifest(views: list[FeatureView]) -> Manifest:
    upstream = "model.bench.transactions"
    nodes = {upstream: {"name": "transactions", "resource_type": "model",
                        "original_file_path": "models/transactions.sql",
                        "relation_name": '"bench"."main"."transactions"', "depends_on": {}}}
    exposures, children = {}, {upstream: []}
    for i, v in enumerate(views):
        nodes[v.unique_id] = {"name": v.name, "resource_type": "model",
                              "depends_on": {"nodes": [upstream]}}
        children[upstream].append(v.unique_id)
        children[v.unique_id] = []
        if i % 10 == 0:
            uid = f"exposure.bench.model_{i}"
            exposures[uid] = {"name": f"model_{i}", "owner": {"email": "ml@example.com"},
                              "depends_on": {"nodes": [v.unique_id]}}
            children[v.unique_id].append(uid)
        if i % 50 == 0:
            uid = f"model.bench.training_{i}"
            nodes[uid] = {"name": f"training_{i}", "resource_type": "model",
                          "depends_on": {"nodes": [v.unique_id],
                                         "macros": ["macro.dbt_features.training_set"]}}
            children[v.unique_id].append(uid)
    data = {"metadata": {}, "nodes": nodes, "exposures": exposures, "child_map": children}
    return Manifest(Path("manifest.json"), data)


def raw_baseline(sizes: list[int], out: Path) -> float:
    started = time.perf_counter()
    for i, size in enumerate(sizes):
        folder = out / f"d{i // 1000}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"{i}.html").write_bytes(b"x" * size)
    return time.perf_counter() - started


def browser_search(site: Path) -> None:
    from browser import open_chromium  # Debian's Chromium, as the tests drive it

    import pytest

    try:
        driver = open_chromium(1280, 900)
    except pytest.skip.Exception as exc:
        print(f"search: not measured ({exc})")
        return
    try:
        started = time.perf_counter()
        driver.get(site.joinpath("index.html").as_uri())
        driver.execute_script("return document.getElementById('q').value")
        ready = time.perf_counter() - started
        timings = []
        for query in QUERIES * 3:
            timings.append(driver.execute_script(
                "const q = document.getElementById('q'); q.value = arguments[0];"
                "const t = performance.now(); q.dispatchEvent(new Event('input'));"
                "document.getElementById('results').getBoundingClientRect();"
                "return performance.now() - t;", query))
        shown = driver.execute_script("return document.getElementById('count').textContent")
        print(f"search: index ready in {ready:.2f} s from file://; a keystroke to results: "
              f"median {statistics.median(timings):.1f} ms, worst {max(timings):.1f} ms over "
              f"{len(timings)} queries (last: {shown!r})")
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--views", type=int, default=1000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--no-browser", action="store_true", help="skip the search timing")
    args = parser.parse_args()
    views = [make_view(i, args.features) for i in range(args.views)]
    registry = Registry("bench", "duckdb", "duckdb", "dev", "1.10", "", now_iso(), tuple(views))
    manifest = make_manifest(views)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        catalog = build_catalog(registry, manifest)
        built = time.perf_counter() - started
        written = write_site(Site(catalog), Path(tmp) / "site")
        site = Path(written.path)
        sizes = [p.stat().st_size for p in site.rglob("*") if p.is_file()]
        baseline = raw_baseline(sizes, Path(tmp) / "raw")
        total = built + written.seconds
        print(f"{args.views:,} views x {args.features} features: {written.files:,} files, "
              f"{written.bytes / 1e6:.1f} MB")
        print(f"generation: {total:.2f} s (build_catalog {built:.2f} s, write_site "
              f"{written.seconds:.2f} s); raw baseline writing the same files {baseline:.2f} s; "
              f"ratio {total / baseline:.1f}x")
        index = [site / "index.html", site / "assets/catalog.css", site / "assets/catalog.js",
                 site / "search-index.js"]
        feature = site / "features" / "v0500" / f"f7_{(7 % 5 + 1) * 7}d.html"
        parts = ", ".join(f"{p.name} {p.stat().st_size / 1e3:,.0f} kB" for p in index)
        print(f"page weight: index {sum(p.stat().st_size for p in index) / 1e6:.2f} MB "
              f"({parts}); a feature page {feature.stat().st_size / 1e3:.1f} kB "
              f"(+ {sum(p.stat().st_size for p in index[1:3]) / 1e3:.0f} kB of assets, cached)")
        if not args.no_browser:
            browser_search(site)
        shutil.rmtree(site)


if __name__ == "__main__":
    main()
