"""Feast's own client reading from a dbt-features server (run in .venv-feast, not .venv).

Usage: feast_client.py SERVER_URL WORKDIR REQUEST_JSON

Builds a Feast repository in WORKDIR whose online store is ``remote`` (the server) and whose
registry mirrors the server's ``GET /features`` (entities, feature views with their typed fields
and ttl, feature services), applies it, then calls ``FeatureStore.get_online_features`` for
each request in REQUEST_JSON (a list of {"features": [...] | "feature_service": name,
"entity_rows": [...], "full_feature_names": bool}) and prints the ``to_dict()`` results as JSON.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float64, Int64, String, UnixTimestamp

DTYPES = {"int64": Int64, "double": Float64, "string": String, "bool": Bool,
          "timestamp": UnixTimestamp}
KEY_TYPES = {"int64": ValueType.INT64, "string": ValueType.STRING}


def main(url: str, workdir: str, requests: str) -> None:
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    registry = json.load(urllib.request.urlopen(f"{url}/features", timeout=30))
    (root / "feature_store.yaml").write_text(
        f"project: {registry['project']}\n"
        f"registry: {root / 'registry.db'}\n"
        "provider: local\n"
        f"online_store:\n  type: remote\n  path: {url}\n"
        "offline_store:\n  type: file\n"
        "entity_key_serialization_version: 3\n"
    )
    source_file = root / "source.parquet"  # never read: Feast wants a batch source per view
    objects: list = []
    views = {}
    entities = {}
    for view in registry["views"]:
        keys = view["join_keys"]
        if view["entity"] not in entities:
            entities[view["entity"]] = Entity(
                name=view["entity"], join_keys=[k["name"] for k in keys],
                value_type=KEY_TYPES[keys[0]["dtype"]])
        columns = {k["name"]: [] for k in keys} | {view["timestamp"]: []}
        pq.write_table(pa.table({c: pa.array([], pa.int64()) for c in columns}), source_file)
        views[view["name"]] = FeatureView(
            name=view["name"],
            entities=[entities[view["entity"]]],
            ttl=timedelta(seconds=view["ttl_seconds"] or 0),
            schema=[Field(name=f["name"], dtype=DTYPES[f["dtype"]]) for f in view["features"]],
            source=FileSource(path=str(source_file), timestamp_field=view["timestamp"]),
            online=True,
        )
    objects += list(entities.values()) + list(views.values())
    objects += [FeatureService(name=s["name"], features=[views[v] for v in s["views"]])
                for s in registry["feature_services"]]
    store = FeatureStore(repo_path=str(root))
    store.apply(objects)
    out = []
    for request in json.loads(requests):
        features = (store.get_feature_service(request["feature_service"])
                    if "feature_service" in request else request["features"])
        response = store.get_online_features(
            features=features, entity_rows=request["entity_rows"],
            full_feature_names=request.get("full_feature_names", False))
        out.append(response.to_dict())
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:])
