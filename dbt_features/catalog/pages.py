"""The catalog's pages: the index (search, filters, and every view listed for readers without
JavaScript), one page per feature view, per feature, and per dbt node on a view's lineage."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Feature
from .layout import (code, esc, facts, link, online_badge, page, tags,
                     text_or_none, view_path)
from .lineage import Node
from .model import Catalog, ViewEntry
from .sql_span import Projection
from .sections import (changes_section, features_table, lineage_section, online_section,
                       snippets_section, sql_block, verify_section)
from .snippets import snippets


def index_page(catalog: Catalog) -> str:
    views = catalog.views
    entities = sorted({e.view.entity.name for e in views})
    owners = sorted({e.view.owner for e in views if e.view.owner})
    all_tags = sorted({t for e in views for t in e.view.tags})
    body = (
        f"<h1>Feature catalog</h1><p class=\"lead\">{len(views):,} feature views, "
        f"{catalog.n_features:,} features in dbt project <code>{esc(catalog.project)}</code> "
        f"(target <code>{esc(catalog.target)}</code>), made {esc(catalog.generated_at)}.</p>"
        + _diff_note(catalog) +
        '<div class="search" role="search"><label for="q">Search views, features, entities, '
        'owners, tags and descriptions</label>'
        '<input id="q" type="search" autocomplete="off" spellcheck="false" '
        'aria-controls="results" aria-describedby="count" placeholder="e.g. amount 30d">'
        '<div class="filters">'
        + _select("entity", "Entity", entities) + _select("owner", "Owner", owners)
        + _select("tag", "Tag", all_tags)
        + _select("online", "Serving", ["online", "offline"])
        + '</div><p id="count" aria-live="polite"></p>'
        '<ol id="results" class="results" hidden></ol></div>'
        + _views_table(catalog)
    )
    return page("Search", body, root="", project=catalog.project, scripts=("search-index.js",))


def _diff_note(catalog: Catalog) -> str:
    if catalog.state is None:
        return ""
    removed = (f" Removed there: {esc(', '.join(catalog.removed_views))}."
               if catalog.removed_views else "")
    return (f'<p class="diff-summary">Against <code>{esc(catalog.state)}</code>: '
            f"{esc(catalog.diff_summary)}{removed}</p>")


def _select(name: str, label: str, values: list[str]) -> str:
    options = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
    return (f'<label>{esc(label)} <select id="filter-{name}" data-filter="{name}">'
            f'<option value="">any</option>{options}</select></label>')


def _views_table(catalog: Catalog) -> str:
    rows = []
    for entry in catalog.views:
        v = entry.view
        desc = (v.description or "")[:200]
        changed = f' <span class="badge warn">{esc(entry.diff_status)}</span>' \
            if entry.diff_status else ""
        rows.append(
            f"<tr><td>{link('', view_path(v.name), v.name)}{changed}</td>"
            f"<td>{esc(v.entity.name)}</td><td>{len(v.features)}</td>"
            f"<td>{online_badge(v.online)}</td><td>{esc(v.owner or '')}</td>"
            f"<td>{tags(v.tags) if v.tags else ''}</td><td>{esc(desc)}</td></tr>")
    return ('<section id="all-views"><h2>All feature views</h2><div class="scroll"><table>'
            "<thead><tr><th>View</th><th>Entity</th><th>Features</th><th>Serving</th>"
            "<th>Owner</th><th>Tags</th><th>Description</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div></section>")


@dataclass(frozen=True)
class ViewParts:
    """What a view's page and all its features' pages share, rendered once per view."""

    rows: tuple[tuple[str, str], ...]
    """The view's facts (entity to version), as (label, HTML)."""
    lineage: str
    """For a feature's page (two folders down); ``view_lineage`` for the view's (one)."""
    view_lineage: str
    online: str
    verify: str
    projections: dict[str, Projection]


def view_parts(catalog: Catalog, entry: ViewEntry, views_by_id: dict[str, str],
               projections: dict[str, Projection]) -> ViewParts:
    v = entry.view
    keys = ", ".join(f"<code>{esc(k.name)}</code> {esc(k.dtype)}" for k in v.entity.join_keys)
    rows = [("Entity", f"{esc(v.entity.name)} (join keys: {keys})"),
        ("Timestamp", code(v.timestamp.name if v.timestamp else None)),
        ("Created timestamp", code(v.created_timestamp.name if v.created_timestamp else None)),
        ("TTL", text_or_none(v.ttl)),
        ("Serving", online_badge(v.online)),
        ("Owner", text_or_none(v.owner)),
        ("Tags", tags(v.tags)),
        ("Model", f"<code>{esc(v.unique_id)}</code> ({esc(v.materialized)}, "
                  f"<code>{esc(v.relation_name or v.relation)}</code>)"),
        ("File", code(v.file)),
        ("Version", str(v.version)),
    ]
    return ViewParts(tuple(rows), lineage_section(views_by_id, catalog.nodes, entry, "../../"),
                     lineage_section(views_by_id, catalog.nodes, entry, "../"),
                     online_section(entry), verify_section(entry.verify), projections)


def view_page(catalog: Catalog, entry: ViewEntry, parts: ViewParts) -> str:
    v = entry.view
    root = "../"
    status = (f' <span class="badge warn">{esc(entry.diff_status)}</span>'
              if entry.diff_status else "")
    body = (
        f'<p class="crumbs">{link(root, "index.html", "Catalog")} › feature view</p>'
        f"<h1>{esc(v.name)} {online_badge(v.online)}{status}</h1>"
        f'<p class="lead">{esc(v.description or "No description.")}</p>'
        + facts([*parts.rows, ("Fingerprint", code(v.fingerprint))]) + features_table(v, root)
        + parts.online + parts.verify + changes_section(catalog, entry)
        + parts.view_lineage
        + f'<section id="sql"><h2>Compiled SQL</h2>{sql_block(v.compiled_sql)}</section>'
    )
    return page(v.name, body, root=root, project=catalog.project)


def feature_page(catalog: Catalog, entry: ViewEntry, feature: Feature, parts: ViewParts) -> str:
    v = entry.view
    root = "../../"
    projection = parts.projections.get(feature.name.lower())
    marked = ("The lines computing this feature are marked." if projection else
              "The part computing this feature could not be located (e.g. <code>select *</code>): "
              "the whole model is shown.")
    body = (
        f'<p class="crumbs">{link(root, "index.html", "Catalog")} › '
        f'{link(root, view_path(v.name), v.name)} › feature</p>'
        f"<h1><span class=\"view-name\">{esc(v.name)}:</span>{esc(feature.name)} "
        f"{online_badge(v.online)}</h1>"
        f'<p class="lead">{esc(feature.description or "No description.")}</p>'
        + facts([("Type", f"<code>{esc(feature.dtype)}</code> "
                          f"(warehouse: <code>{esc(feature.data_type)}</code>)"), *parts.rows,
                 ("Fingerprint", f"<code>{esc(feature.fingerprint)}</code> "
                                 f"(view: <code>{esc(v.fingerprint)}</code>)")])
        + snippets_section(snippets(v, feature), v.online)
        + f'<section id="sql"><h2>SQL</h2><p class="note">The model\'s compiled SQL. {marked}</p>'
        + sql_block(v.compiled_sql, projection.spans if projection else ()) + "</section>"
        + parts.lineage + parts.online
        + (verify_section(entry.verify, feature.name) if entry.verify else parts.verify)
        + changes_section(catalog, entry, feature.name)
    )
    return page(f"{v.name}:{feature.name}", body, root=root, project=catalog.project)


def node_page(catalog: Catalog, node: Node, reads: list[str], read_by: list[str]) -> str:
    """A dbt node's page: ``reads`` are the feature views it reads, ``read_by`` those reading
    it."""
    root = "../"

    def views(names: list[str]) -> str:
        found = ", ".join(link(root, view_path(n), n) for n in names)
        return found or '<span class="none">none</span>'

    rows = [("Type", esc(node.resource_type) + (" (builds a training set)" if node.training_set
                                                else "")),
            ("Unique id", code(node.unique_id)), ("File", code(node.file)),
            ("Relation", code(node.relation)), ("Owner", text_or_none(node.owner)),
            ("Reads feature views", views(reads)), ("Feature views reading it", views(read_by))]
    body = (f'<p class="crumbs">{link(root, "index.html", "Catalog")} › '
            f"dbt {esc(node.resource_type)}</p>"
            f"<h1>{esc(node.name)}</h1>"
            f'<p class="lead">{esc(node.description or "No description.")}</p>' + facts(rows))
    return page(node.name, body, root=root, project=catalog.project)

