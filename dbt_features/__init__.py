"""dbt-features: a SQL-first feature store inside dbt.

``FeatureStore`` is the Python API (the ``dbt-features`` command runs on it); the registry's
records and the error classes are exported with it. The serving side (online store, sync,
HTTP server) is ``dbt_features.serving``, reached through ``FeatureStore``.
"""

from .errors import (
    DbtFeaturesError,
    DefinitionError,
    OnlineStoreError,
    ProjectError,
    UsageError,
    WarehouseError,
    WarehouseValueError,
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
    "WarehouseValueError",
]
