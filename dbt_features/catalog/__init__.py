"""The feature catalog: a static site where people find features (search, a page per view and
per feature, lineage, SQL, how to use each), made from the registry and dbt's manifest.

``model`` gathers what the pages show, ``pages`` and ``sections`` render HTML, ``site`` names
and writes the pages; ``dbt-features catalog`` writes the site and ``dbt-features serve``
serves it at ``/``.
"""

from .model import Catalog, OnlineInfo, VerifyInfo, build_catalog
from .site import Site, SiteWritten, write_site

__all__ = ["Catalog", "OnlineInfo", "Site", "SiteWritten", "VerifyInfo", "build_catalog",
           "write_site"]
