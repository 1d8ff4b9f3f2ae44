"""dbt-features: a SQL-first feature store inside dbt."""

from __future__ import annotations

from .errors import (
    DbtFeaturesError,
    DefinitionError,
    OnlineStoreError,
    ProjectError,
    UsageError,
    WarehouseError,
)
from .registry import Entity, Feature, FeatureRef, FeatureService, FeatureView, Registry
from .store import FeatureStore

__all__ = [
    "DbtFeaturesError",
    "DefinitionError",
    "Entity",
    "Feature",
    "FeatureRef",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "OnlineStoreError",
    "ProjectError",
    "Registry",
    "UsageError",
    "WarehouseError",
]
