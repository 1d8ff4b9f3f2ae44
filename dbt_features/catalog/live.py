"""What ``dbt-features serve`` sends a catalog page to refresh its online status live: each
online view's status (``ViewStatus.to_dict()``) as the HTML the page shows for it."""

from __future__ import annotations

import json
from typing import Any

from ..registry import Registry
from .model import OnlineInfo
from .sections import online_facts


def live_status_json(registry: Registry, statuses: list[dict[str, Any]]) -> bytes:
    views = {v.name: v for v in registry.views}
    html = {s["view"]: online_facts(views[s["view"]], OnlineInfo.from_status(s), live=True)
            for s in statuses if s["view"] in views}
    return json.dumps({"views": html}).encode()
