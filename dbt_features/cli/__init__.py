"""The ``dbt-features`` command line: ``main`` is the entry point (see ``cli.main``)."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
