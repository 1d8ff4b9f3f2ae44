"""The sections of view and feature pages: the SQL with a feature's part marked, lineage,
online status, the last ``verify``, definition changes against a ``--state``, and the "how to
use it" snippets."""

from __future__ import annotations

from ..diff_report import Change
from ..registry import FeatureView
from .layout import duration, esc, facts, feature_path, link, node_path, view_path
from .lineage import Node
from .model import Catalog, OnlineInfo, VerifyInfo, ViewEntry
from .snippets import Snippet
from .sql_span import Span


def sql_block(sql: str | None, spans: tuple[Span, ...] = ()) -> str:
    """The compiled SQL, with ``spans`` wrapped in ``<mark>``."""
    if not sql:
        return ('<p class="none">No compiled SQL in the manifest: run <code>dbt compile</code> '
                "or <code>dbt run</code>, then make the catalog again.</p>")
    out, at = [], 0
    for span in sorted(set(spans), key=lambda s: s.start):
        if span.start < at:
            continue  # overlapping spans: the first one shows
        out.append(esc(sql[at:span.start]))
        out.append(f"<mark>{esc(sql[span.start:span.end])}</mark>")
        at = span.end
    out.append(esc(sql[at:]))
    return f'<pre class="sql"><code>{"".join(out)}</code></pre>'


def lineage_section(catalog_views: dict[str, str], nodes: dict[str, Node], entry: ViewEntry,
                    root: str) -> str:
    """Upstream and downstream nodes as links: to the view's page for a feature view (by unique
    id in ``catalog_views``), else to the node's page."""

    def items(ids: tuple[str, ...]) -> str:
        if not ids:
            return '<li class="none">none known</li>'
        out = []
        for uid in ids:
            node = nodes.get(uid)
            if node is None:
                continue
            view = catalog_views.get(uid)
            target = link(root, view_path(view), node.name) if view else link(
                root, node_path(uid), node.name)
            kind = "feature view" if view else node.resource_type
            extra = ' <span class="badge ts">training set</span>' if node.training_set else ""
            out.append(f'<li>{target} <span class="kind">{esc(kind)}</span>{extra}</li>')
        return "".join(out)

    return (
        '<section id="lineage"><h2>Lineage</h2><div class="cols">'
        '<div><h3>Reads (upstream)</h3><ul class="lineage up">'
        f"{items(entry.lineage.upstream)}</ul></div>"
        f'<div><h3>Read by (downstream)</h3><ul class="lineage down">'
        f"{items(entry.lineage.downstream)}</ul></div></div></section>"
    )


def online_facts(view: FeatureView, info: OnlineInfo | None, *, live: bool = False) -> str:
    """The online store's state of a view (also what the server sends to refresh it live)."""
    if not view.online:
        return ("<p>Offline only: not synced to the online store (<code>online: true</code> to "
                "serve it).</p>")
    if info is None:
        return ("<p>Status not read when this catalog was made: <code>dbt-features catalog "
                "--online-status</code> reads it, and <code>dbt-features serve</code> shows it "
                "live.</p>")
    if not info.synced:
        return "<p>Not synced yet: run <code>dbt-features sync</code>.</p>"
    current = ("current definition" if info.up_to_date else
               '<span class="warn">an older definition: run <code>dbt-features sync</code></span>')
    rows = [
        ("Last sync", f"{esc(info.last_sync)} ({duration(info.age_seconds)} ago)"),
        ("Keys", f"{info.keys:,}" if info.keys is not None else "unknown"),
        ("Watermark", f"{esc(info.watermark)} ({duration(info.watermark_age_seconds)} ago)"
                      if info.watermark else "none"),
        ("Synced", current),
    ]
    rows += [("Warning", f'<span class="warn">{esc(w)}</span>') for w in info.warnings]
    when = "live" if live else "when this catalog was made"
    return facts(rows) + f'<p class="note">As read {when}.</p>'


def online_section(entry: ViewEntry) -> str:
    return ('<section id="online"><h2>Online store</h2>'
            f'<div class="online-status" data-online-view="{esc(entry.view.name)}">'
            f"{online_facts(entry.view, entry.online)}</div></section>")


def verify_section(info: VerifyInfo | None, feature: str | None = None) -> str:
    if info is None:
        body = ("<p>No stored result: <code>dbt-features verify</code> keeps its last report "
                "for the catalog.</p>")
    else:
        verdict = ('<span class="ok">no skew</span>' if not info.mismatched else
                   f'<span class="warn">{info.mismatched:,} mismatched values</span>')
        if feature is not None and info.mismatched:
            hit = feature in info.mismatched_features
            verdict += (f" ({'including' if hit else 'none reported for'} this feature)")
        body = facts([("As of", esc(info.as_of)), ("Result", verdict),
                      ("Entities", f"{info.sampled:,}"), ("Values compared", f"{info.compared:,}"),
                      ("Pending", f"{info.pending:,} (newer than the last sync)")])
    return f'<section id="verify"><h2>Last verify</h2>{body}</section>'


def changes_section(catalog: Catalog, entry: ViewEntry, feature: str | None = None) -> str:
    if catalog.state is None:
        return ""
    changes = [c for c in entry.changes if feature is None or c.feature in (None, feature)]
    if not changes:
        body = f"<p>No change against <code>{esc(catalog.state)}</code>.</p>"
    else:
        body = "<ul class=\"changes\">" + "".join(_change(c) for c in changes) + "</ul>"
    return (f'<section id="changes"><h2>Changes against the state</h2>'
            f'<p class="note">Compared with <code>{esc(catalog.state)}</code> '
            f"(<code>dbt-features diff</code>).</p>{body}</section>")


def _change(change: Change) -> str:
    badge = '<span class="badge warn">breaking</span> ' if change.breaking else ""
    out = f"<li>{badge}{esc(change.message)}"
    if change.sql_diff:
        out += f'<pre class="diff"><code>{esc(chr(10).join(change.sql_diff))}</code></pre>'
    if change.upstream_changed:
        out += f"<p>Upstream changed: {esc(', '.join(change.upstream_changed))}</p>"
    return out + "</li>"


def snippets_section(found: tuple[Snippet, ...], online: bool) -> str:
    blocks = []
    for i, snippet in enumerate(found):
        where = f' <span class="file">{esc(snippet.file)}</span>' if snippet.file else ""
        blocks.append(
            f'<div class="snippet"><div class="snippet-head"><h3>{esc(snippet.title)}</h3>{where}'
            f'<button type="button" class="copy" data-copy="snippet-{i}" hidden>Copy</button></div>'
            f'<pre id="snippet-{i}" data-snippet="{esc(snippet.kind)}"'
            f'{_file_attr(snippet)}><code>{esc(snippet.code)}</code></pre></div>')
    if not online:
        blocks.append('<p class="note">Not online: no HTTP snippet (set <code>online: true</code> '
                      "and run <code>dbt-features sync</code> to serve it).</p>")
    return ('<section id="use"><h2>How to use it</h2><p class="note">Each runs as shown in the '
            "dbt project's folder, with a one-row example spine: use your own.</p>"
            + "".join(blocks) + "</section>")


def _file_attr(snippet: Snippet) -> str:
    return f' data-file="{esc(snippet.file)}"' if snippet.file else ""


def features_table(view: FeatureView, root: str) -> str:
    rows = "".join(
        f"<tr><td>{link(root, feature_path(view.name, f.name), f.name)}</td>"
        f"<td><code>{esc(f.dtype)}</code></td><td>{esc(f.description or '')}</td></tr>"
        for f in view.features)
    return ('<section id="features"><h2>Features</h2><div class="scroll"><table><thead><tr>'
            "<th>Feature</th><th>Type</th><th>Description</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div></section>")
