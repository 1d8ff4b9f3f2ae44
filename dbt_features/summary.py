"""The JSON shapes of feature views and features: ``dbt-features list --json``,
``describe --json``, and the feature server's ``GET /features``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .registry import Feature, FeatureView


def view_summary(view: FeatureView, *, detail: bool = False) -> dict[str, Any]:
    """The JSON shape of ``list`` (and, with detail, of ``describe VIEW``)."""
    out: dict[str, Any] = {
        "name": view.name,
        "entity": view.entity.name,
        "join_keys": [asdict(k) for k in view.entity.join_keys],
        "timestamp": view.timestamp.name if view.timestamp else None,
        "created_timestamp": view.created_timestamp.name if view.created_timestamp else None,
        "ttl": view.ttl,
        "ttl_seconds": view.ttl_seconds,
        "online": view.online,
        "owner": view.owner,
        "tags": list(view.tags),
        "description": view.description,
        "consumers": list(view.consumers),
        "features": [
            {"name": f.name, "dtype": f.dtype, "data_type": f.data_type,
             "description": f.description}
            | ({"fingerprint": f.fingerprint} if detail else {})
            for f in view.features
        ],
    }
    if detail:
        out |= {
            "unique_id": view.unique_id,
            "file": view.file,
            "yaml_file": view.yaml_file,
            "relation": str(view.relation),
            "materialized": view.materialized,
            "version": view.version,
            "fingerprint": view.fingerprint,
        }
    return out


def feature_summary(view: FeatureView, feature: Feature) -> dict[str, Any]:
    """The JSON shape of ``describe VIEW:FEATURE``."""
    return {
        "view": view.name,
        **asdict(feature),
        "entity": view.entity.name,
        "join_keys": list(view.entity.key_names),
        "timestamp": view.timestamp.name if view.timestamp else None,
        "ttl": view.ttl,
        "online": view.online,
        "owner": view.owner,
        "consumers": list(view.consumers),
        "file": view.file,
    }
