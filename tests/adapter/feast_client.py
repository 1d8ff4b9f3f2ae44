"""Feast's own client reading from a dbt-features server (run in .venv-feast, not .venv).

Usage: feast_client.py SERVER_URL WORKDIR REQUEST_JSON [GOLDEN_JSON]

Builds a Feast repository in WORKDIR whose online store is ``remote`` (the server) and whose
registry mirrors the server's ``GET /features`` (entities, feature views with their typed fields
and ttl, feature services), applies it, then calls ``FeatureStore.get_online_features`` for
each request in REQUEST_JSON (a list of {"features": [...] | "feature_service": name,
"entity_rows": [...], "full_feature_names": bool}) and prints the ``to_dict()`` results as JSON.

With GOLDEN_JSON (a list of server requests with the server's raw responses), it also writes
the values and event times of those responses into a second Feast repository with a sqlite
online store, asks Feast for the same features, and serializes Feast's response with the
function Feast's feature server uses (``feast.feature_server_utils.convert_response_to_dict``):
the reference our server's JSON must equal, field for field.
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


def main(url: str, workdir: str, requests: str, golden: str | None = None) -> None:
    registry = json.load(urllib.request.urlopen(f"{url}/features", timeout=30))
    store, views = repository(Path(workdir) / "remote", registry,
                              f"online_store:\n  type: remote\n  path: {url}\n")
    out = []
    for request in json.loads(requests):
        features = (store.get_feature_service(request["feature_service"])
                    if "feature_service" in request else request["features"])
        response = store.get_online_features(
            features=features, entity_rows=request["entity_rows"],
            full_feature_names=request.get("full_feature_names", False))
        out.append(response.to_dict())
    print(json.dumps(out, default=str))
    if golden is not None:
        print(json.dumps(reference(Path(workdir) / "sqlite", registry, json.loads(golden))))


def reference(root: Path, registry: dict, cases: list) -> list:
    """Feast's own server JSON for each case's request, over the values our server sent."""
    import pandas as pd

    from feast.feature_server_utils import convert_response_to_dict  # what its server sends

    store, views = repository(root, registry, f"online_store:\n  type: sqlite\n  path: "
                                              f"{root / 'online.db'}\n")
    by_name = {v["name"]: v for v in registry["views"]}
    out = []
    for case in cases:
        request, response = case["request"], case["response"]
        names = response["metadata"]["feature_names"]
        columns = dict(zip(names, response["results"]))
        for name in dict.fromkeys(ref.split(":")[0] for ref in request["features"]):
            view = by_name[name]  # the request names every feature of its views
            key = view["join_keys"][0]["name"]
            features = [f["name"] for f in view["features"]]
            first = columns[features[0]]
            found = [i for i, s in enumerate(first["statuses"]) if s == "PRESENT"]
            frame = pd.DataFrame({
                key: [columns[key]["values"][i] for i in found],
                **{f: [columns[f]["values"][i] for i in found] for f in features},
                view["timestamp"]: pd.to_datetime(
                    [first["event_timestamps"][i] for i in found], utc=True),
            })
            store.write_to_online_store(view["name"], frame)
        feast_response = store.get_online_features(
            features=request["features"], entity_rows=[
                dict(zip(request["entities"], values))
                for values in zip(*request["entities"].values())])
        out.append(convert_response_to_dict(feast_response.proto))
    return out


def repository(root: Path, registry: dict, online_store: str) -> tuple[FeatureStore, dict]:
    """A Feast repository in ``root`` mirroring the server's registry, applied."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "feature_store.yaml").write_text(
        f"project: {registry['project']}\n"
        f"registry: {root / 'registry.db'}\n"
        "provider: local\n"
        f"{online_store}"
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
    return store, views


if __name__ == "__main__":
    main(*sys.argv[1:])
