"""The HTML every catalog page shares: the page shell (header with a search form that works
without JavaScript, relative links so the site opens from ``file://``), escaping, links between
pages, and small pieces (fact tables, tag lists, durations).

Every text that comes from a project (names, descriptions, SQL) goes through ``esc``."""

from __future__ import annotations

import re
from typing import Iterable

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def esc(value: object) -> str:
    """``html.escape(text, quote=True)``, inlined: it runs tens of times per page."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#x27;"))


def slug(name: str) -> str:
    """A file name for ``name``: safe characters kept, others as ``~XX`` (their UTF-8 bytes);
    a leading dot is encoded so no page is a hidden file."""
    text = _UNSAFE.sub(lambda m: "".join(f"~{b:02X}" for b in m.group().encode()), name)
    return "~2E" + text[1:] if text.startswith(".") else text or "~"


def view_path(view: str) -> str:
    return f"views/{slug(view)}.html"


def feature_path(view: str, feature: str) -> str:
    return f"features/{slug(view)}/{slug(feature)}.html"


def node_path(unique_id: str) -> str:
    return f"nodes/{slug(unique_id)}.html"


def link(root: str, path: str, text: str, cls: str | None = None) -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<a href="{esc(root + path)}"{attr}>{esc(text)}</a>'


def page(title: str, body: str, *, root: str, project: str, scripts: Iterable[str] = ()) -> str:
    """A whole page. ``root`` leads from the page to the site's root (``""``, ``"../"``...)."""
    tags = "".join(f'<script src="{esc(root + s)}" defer></script>' for s in
                   ("assets/catalog.js", *scripts))
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<link rel=\"icon\" href=\"data:,\">\n"
        f"<title>{esc(title)} · {esc(project)} feature catalog</title>\n"
        f"<link rel=\"stylesheet\" href=\"{esc(root)}assets/catalog.css\">\n{tags}\n</head>\n"
        f"<body data-root=\"{esc(root)}\">\n<header class=\"top\">\n"
        f"<a class=\"brand\" href=\"{esc(root)}index.html\">{esc(project)} · feature catalog</a>\n"
        f"<form class=\"jump\" action=\"{esc(root)}index.html\" role=\"search\">"
        "<label for=\"jump-q\" class=\"sr\">Search features</label>"
        "<input id=\"jump-q\" name=\"q\" type=\"search\" placeholder=\"Search features\" "
        "autocomplete=\"off\"></form>\n</header>\n"
        f"<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def facts(rows: Iterable[tuple[str, str]]) -> str:
    """A definition list of (label, value) rows, both HTML already (labels are ours)."""
    items = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    return f'<dl class="facts">{items}</dl>'


def tags(values: Iterable[str]) -> str:
    found = "".join(f'<span class="tag">{esc(t)}</span>' for t in values)
    return found or '<span class="none">none</span>'


def code(text: str | None) -> str:
    return f"<code>{esc(text)}</code>" if text else '<span class="none">none</span>'


def text_or_none(text: str | None) -> str:
    return esc(text) if text else '<span class="none">none</span>'


def online_badge(online: bool) -> str:
    return ('<span class="badge on">online</span>' if online
            else '<span class="badge off">offline only</span>')


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
