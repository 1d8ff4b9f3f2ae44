"""The Feast side of ``bench_vs_feast.py``; runs in ``.venv-feast`` (Feast 0.67 cannot be
imported into ``.venv``: its pins conflict with dbt-core).

    feast_worker.py init REPO PROJECT PARQUET REDIS_CONNECTION   # write the feature repo
    feast_worker.py serve REPO SPINE                             # the worker (protocol.py)

The repo: one entity (``entity_id``, int64), one feature view of 10 double features on a
parquet ``FileSource``, ttl 30 days; offline store ``duckdb`` (ibis), online store ``redis``,
every other setting Feast's default. The orchestrator runs ``feast apply`` on it.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from protocol import column_checksums, read_round, serve, timed

STORE_YAML = """project: {project}
registry: {repo}/registry.db
provider: local
offline_store:
  type: duckdb
online_store:
  type: redis
  connection_string: "{redis}"
entity_key_serialization_version: 3
"""

REPO_PY = """from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

entity = Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64)
source = FileSource(name="bench_source", path={parquet!r}, timestamp_field="event_timestamp")
bench_features = FeatureView(
    name="bench_features",
    entities=[entity],
    ttl=timedelta(days=30),
    schema=[Field(name="entity_id", dtype=Int64)]
    + [Field(name=f"f{{k}}", dtype=Float64) for k in range({features})],
    online=True,
    source=source,
)
"""


def init(repo: str, project: str, parquet: str, redis: str, features: int = 10) -> None:
    path = Path(repo)
    path.mkdir(parents=True, exist_ok=True)
    (path / "feature_store.yaml").write_text(
        STORE_YAML.format(project=project, repo=path, redis=redis))
    (path / "repo.py").write_text(REPO_PY.format(parquet=parquet, features=features))


def worker(repo: str, spine_path: str) -> None:
    import pandas as pd
    from feast import FeatureStore

    store = FeatureStore(repo_path=repo)
    store.list_feature_views()  # the registry is loaded before anything is timed
    spine = pd.read_parquet(spine_path)

    def training(cmd: dict) -> dict:
        seconds, table = timed(lambda: store.get_historical_features(
            entity_df=spine, features=cmd["features"]).to_arrow())
        names = [ref.split(":")[1] for ref in cmd["features"]]
        return {"seconds": seconds, "rows": table.num_rows,
                "checksums": column_checksums({n: table.column(n).to_pylist() for n in names})}

    def materialize(cmd: dict) -> dict:
        start = datetime.fromisoformat(cmd["start"]).replace(tzinfo=timezone.utc)
        end = datetime.fromisoformat(cmd["end"]).replace(tzinfo=timezone.utc)
        seconds, _ = timed(lambda: store.materialize(start_date=start, end_date=end))
        return {"seconds": seconds}

    def reads(cmd: dict) -> dict:
        features = cmd["features"]
        return read_round(
            lambda rows: store.get_online_features(features=features,
                                                   entity_rows=rows).to_dict(),
            cmd["requests"], "entity_id")

    def lookup(cmd: dict) -> dict:
        got = store.get_online_features(
            features=cmd["features"], entity_rows=[{"entity_id": i} for i in cmd["ids"]]
        ).to_dict()
        return {"values": {ref.split(":")[1]: got[ref.split(":")[1]] for ref in cmd["features"]}}

    serve({"training": training, "materialize": materialize, "reads": reads, "lookup": lookup})


if __name__ == "__main__":
    if sys.argv[1] == "init":
        init(*sys.argv[2:6])
    else:
        worker(sys.argv[2], sys.argv[3])
