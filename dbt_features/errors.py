"""The one exception hierarchy of dbt-features.

Library code raises these (wrapping dbt, sqlglot, DuckDB, PostgreSQL and Redis errors where they
enter with ``raise ... from exc``); only the CLI turns them into a message and an exit code.
"""

from __future__ import annotations


class DbtFeaturesError(Exception):
    """Root of every error dbt-features raises on purpose. ``exit_code`` is what the CLI returns."""

    exit_code = 1

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems or [])

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return "\n".join([self.message, *(f"  - {p}" for p in self.problems)])


class UsageError(DbtFeaturesError):
    """A bad option, argument or reference given by the user (CLI flag or API argument)."""

    exit_code = 2


class ProjectError(DbtFeaturesError):
    """The dbt project, its profile or its manifest cannot be used."""

    exit_code = 2


class DefinitionError(DbtFeaturesError):
    """One or more feature definitions (``config.meta.feature_store``) are wrong."""

    exit_code = 2


class WarehouseError(DbtFeaturesError):
    """The warehouse (DuckDB, PostgreSQL, ...) could not be reached or refused a query."""

    exit_code = 1


class OnlineStoreError(DbtFeaturesError):
    """The online store (Redis) could not be reached or refused an operation."""

    exit_code = 1


class WarehouseValueError(WarehouseError):
    """The warehouse returned a value Python cannot hold (an infinite timestamp, ...), in one of
    ``columns`` of the query (callers that know which view those columns are name it)."""

    def __init__(self, message: str, *, columns: list[str] | None = None) -> None:
        super().__init__(message)
        self.columns = list(columns or [])
