"""Definition fingerprints: what a feature *computes*, independent of how the SQL is written.

A fingerprint is a hash of the model's compiled SQL after sqlglot has parsed and re-rendered it
(so formatting, comments and identifier case do not count), with the names of the relations it
reads replaced by their dbt identities (so ``dev`` and ``prod`` schemas agree), combined with the
fingerprints of the models it reads from (so a changed upstream filter counts too).

Per feature, the query is first pruned to that feature's column (plus keys and timestamps) with
sqlglot's projection pushdown: changing the 30-day window of ``avg_amount_30d`` changes its
fingerprint but not that of ``txn_count_7d``, computed in the same model.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.pushdown_projections import pushdown_projections
from sqlglot.optimizer.qualify import qualify

from .manifest import Manifest
from .registry import FINGERPRINT_VERSION



def _digest(*parts: str) -> str:
    h = hashlib.sha256(FINGERPRINT_VERSION.encode())
    for part in parts:
        h.update(b"\x00")
        h.update(part.encode())
    return h.hexdigest()[:16]


class Fingerprinter:
    """Computes fingerprints over one manifest, caching upstream models' fingerprints."""

    def __init__(self, manifest: Manifest, dialect: str) -> None:
        self.manifest = manifest
        self.dialect = dialect
        self._models: dict[str, str] = {}
        # Each model is parsed and qualified once; callers copy a tree before changing it.
        self._trees: dict[str, exp.Expression | None] = {}
        self._qualified: dict[str, exp.Expression | None] = {}
        self._relations = self._relation_identities(manifest)

    @staticmethod
    def _relation_identities(manifest: Manifest) -> dict[tuple[str, ...], str]:
        identities: dict[tuple[str, ...], str] = {}
        nodes = [*manifest.data["nodes"].values(), *manifest.data.get("sources", {}).values()]
        for node in nodes:
            identifier = node.get("alias") or node.get("identifier") or node.get("name")
            if not identifier or node.get("resource_type") not in ("model", "seed", "snapshot", "source"):
                continue
            full = [node.get("database"), node.get("schema"), identifier]
            parts = [str(p).lower() for p in full if p]
            # Compiled SQL may name a relation with 3, 2 or 1 parts.
            for n in range(1, len(parts) + 1):
                identities.setdefault(tuple(parts[-n:]), node["unique_id"])
        return identities

    def _parse(self, sql: str) -> exp.Expression:
        tree = sqlglot.parse_one(sql, dialect=self.dialect)
        # A one-part name that is a CTE of the query reads the CTE, not a relation of that name.
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        for table in list(tree.find_all(exp.Table)):
            parts = tuple(p.name.lower() for p in table.parts)
            if len(parts) == 1 and parts[0] in ctes:
                continue
            uid = self._relations.get(parts)
            if uid is not None:
                alias = table.alias or table.name
                table.replace(exp.table_(exp.to_identifier(uid, quoted=True), alias=alias))
        # Identifier case does not count (where the dialect says it does not), nor keyword case.
        normalize_identifiers(tree, dialect=self.dialect)  # in place
        _normalise_keywords(tree)
        return tree

    def _upstream(self, node: dict[str, Any]) -> list[str]:
        parts = []
        for uid in sorted(node.get("depends_on", {}).get("nodes", [])):
            upstream = self.manifest.node(uid)
            if upstream is None:
                continue
            kind = upstream.get("resource_type")
            if kind in ("model", "snapshot"):
                parts.append(f"{uid}={self.model(uid)}")
            elif kind == "seed":
                parts.append(f"{uid}={upstream.get('checksum', {}).get('checksum', '')}")
            else:
                parts.append(uid)
        return parts

    def _text(self, node: dict[str, Any]) -> str:
        return node.get("compiled_code") or node.get("raw_code") or ""

    def _tree(self, unique_id: str) -> exp.Expression | None:
        """The model's parsed SQL (see ``_parse``), or None where sqlglot cannot parse it."""
        if unique_id not in self._trees:
            try:
                tree = self._parse(self._text(self.manifest.node(unique_id) or {}))
            except SqlglotError:
                tree = None
            self._trees[unique_id] = tree
        return self._trees[unique_id]

    def _qualified_tree(self, unique_id: str) -> exp.Expression | None:
        if unique_id not in self._qualified:
            tree = self._tree(unique_id)
            try:
                self._qualified[unique_id] = None if tree is None else qualify(
                    tree.copy(), dialect=self.dialect, validate_qualify_columns=False
                )
            except SqlglotError:
                self._qualified[unique_id] = None
        return self._qualified[unique_id]

    def sql(self, unique_id: str, *, pretty: bool = False) -> str:
        """A model's SQL as it is fingerprinted: relation names replaced by dbt identities,
        identifiers normalised, comments dropped (collapsed text where sqlglot cannot parse)."""
        tree = self._tree(unique_id)
        try:
            if tree is not None:
                return tree.sql(dialect=self.dialect, comments=False, pretty=pretty)
        except SqlglotError:
            pass
        return " ".join(self._text(self.manifest.node(unique_id) or {}).split())

    def upstream(self, unique_id: str) -> dict[str, str]:
        """What a model reads: each parent's unique_id and its fingerprint (a seed's checksum,
        an empty string for a source): what ``model`` folds in besides the model's own SQL."""
        parts = self._upstream(self.manifest.node(unique_id) or {})
        return {uid: fingerprint for uid, _, fingerprint in (p.partition("=") for p in parts)}

    def model(self, unique_id: str) -> str:
        """Fingerprint of a whole model: its normalised SQL and its upstream fingerprints."""
        if unique_id not in self._models:
            node = self.manifest.node(unique_id) or {}
            self._models[unique_id] = "pending"  # guards against cycles in a broken manifest
            self._models[unique_id] = _digest(self.sql(unique_id), *self._upstream(node))
        return self._models[unique_id]

    def features(self, unique_id: str, keep: Iterable[str], features: Iterable[str]) -> dict[str, str]:
        """Per-feature fingerprints; each feature's query keeps only its column and ``keep``.

        Falls back to the whole model's fingerprint where the SQL cannot be pruned (``select *``
        over an unknown schema, SQL sqlglot cannot parse): safe, only less precise.
        """
        node = self.manifest.node(unique_id) or {}
        whole = self.model(unique_id)
        upstream = self._upstream(node)
        keep = [k.lower() for k in keep]
        out: dict[str, str] = {}
        for feature in features:
            pruned = self._pruned(unique_id, keep + [feature.lower()])
            out[feature] = whole if pruned is None else _digest(pruned, *upstream)
        return out

    def feature_sql(
        self, unique_id: str, keep: Iterable[str], feature: str, *, pretty: bool = True
    ) -> str:
        """The query a feature's fingerprint is computed from, for people to compare: the model
        pruned to the feature (and ``keep``), or the whole model where it cannot be pruned."""
        columns = [k.lower() for k in keep] + [feature.lower()]
        pruned = self._pruned(unique_id, columns, pretty=pretty)
        return self.sql(unique_id, pretty=pretty) if pruned is None else pruned

    def _pruned(self, unique_id: str, columns: list[str], *, pretty: bool = False) -> str | None:
        qualified = self._qualified_tree(unique_id)
        if not isinstance(qualified, exp.Select):
            return None
        every = list(qualified.expressions)
        if any(isinstance(p, exp.Star) or isinstance(p.this, exp.Star) for p in every):
            return None
        projections = [p for p in every if p.alias_or_name.lower() in columns]
        if len(projections) != len(columns):
            return None
        # Copy the cached tree with only these projections (copying is the costly part).
        qualified.set("expressions", projections)
        try:
            tree = qualified.copy()
        finally:
            qualified.set("expressions", every)
        try:
            tree = pushdown_projections(tree)
            _drop_unused_windows(tree)
            return tree.sql(dialect=self.dialect, comments=False, pretty=pretty)
        except SqlglotError:
            return None


def _normalise_keywords(tree: exp.Expression) -> None:
    """sqlglot keeps some keywords as written: window frames (``range ... preceding``) and
    keyword-like names (``Var``, e.g. interval units). Upper-case them so case does not count."""
    for node in tree.find_all(exp.WindowSpec, exp.Var):
        if isinstance(node, exp.Var):
            node.set("this", node.name.upper())
            continue
        for key, value in list(node.args.items()):
            if isinstance(value, str):
                node.set(key, value.upper())


def _drop_unused_windows(tree: exp.Expression) -> None:
    """Projection pushdown keeps named windows (``WINDOW w AS (...)``) nobody uses any more."""
    for select in tree.find_all(exp.Select):
        windows = select.args.get("windows") or []
        if not windows:
            continue
        definitions = {id(w) for w in windows}
        used = {
            w.args["alias"].name.lower()
            for w in select.find_all(exp.Window)
            if id(w) not in definitions and isinstance(w.args.get("alias"), exp.Identifier)
        }
        select.set("windows", [w for w in windows if w.this.name.lower() in used] or None)
