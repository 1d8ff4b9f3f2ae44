"""The client-side search index: one record per view and per feature, written as a script
(``search-index.js``) rather than JSON because a page opened from ``file://`` may not fetch
files. Records are arrays (field order in ``FIELDS``) to keep the file small at scale."""

from __future__ import annotations

import json

from .layout import feature_path, view_path
from .model import Catalog

FIELDS = ("kind", "name", "view", "entity", "owner", "tags", "online", "type", "description",
          "url")
_DESCRIPTION_CHARS = 240


def search_index(catalog: Catalog) -> str:
    records = []
    for entry in catalog.views:
        v = entry.view
        common = [v.entity.name, v.owner or "", list(v.tags), 1 if v.online else 0]
        records.append(["view", v.name, v.name, *common, f"{len(v.features)} features",
                        (v.description or "")[:_DESCRIPTION_CHARS], view_path(v.name)])
        for f in v.features:
            records.append(["feature", f.name, v.name, *common, f.dtype,
                            (f.description or "")[:_DESCRIPTION_CHARS],
                            feature_path(v.name, f.name)])
    data = {"fields": FIELDS, "records": records}
    # "</" never appears, so the data cannot close a script element if inlined one day.
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    return f"window.CATALOG_INDEX = {text};\n"
