"""Where a model lives in the warehouse: a record light enough for every command to import
(the registry holds one per view; reading the registry needs neither sqlglot nor pyarrow)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Relation:
    """Where a model lives in the warehouse (as in the manifest)."""

    database: str | None
    schema: str | None
    identifier: str

    def parts(self) -> list[str]:
        return [p for p in (self.database, self.schema, self.identifier) if p]

    def __str__(self) -> str:
        return ".".join(self.parts())
