"""What a view needs to be synced and served: light to import, as every online read checks it."""

from __future__ import annotations

from dbt_features.errors import DefinitionError, UsageError
from dbt_features.registry import FeatureView


def check_servable(view: FeatureView) -> None:
    """A view can be synced and read only if it is online and has an event timestamp."""
    if not view.online:
        raise UsageError(
            f"feature view {view.name!r} ({view.file}) is not online: set `online: true` in its "
            "config.meta.feature_store to serve it."
        )
    if view.timestamp is None:
        raise DefinitionError(
            f"feature view {view.name!r} ({view.file}) has no timestamp: the online store "
            "serves the latest row per entity, so set config.meta.feature_store.timestamp to "
            "its event-time column."
        )
