"""How commands print: JSON for machines with ``--json``, else text for people."""

from __future__ import annotations

import json
from typing import Any, Callable

import click


def emit(as_json: bool, data: Any, text: Callable[[], str]) -> None:
    """Print ``data`` as JSON with ``--json``, else the text ``text()`` makes."""
    click.echo(json.dumps(data, indent=2, default=str) if as_json else text())


def format_mapping(data: dict[str, Any]) -> str:
    """``key: value`` lines; a list of records as one indented line per record."""
    lines = []
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{key}:")
            lines += ["  " + ", ".join(f"{k}={v}" for k, v in item.items() if v is not None)
                      for item in value]
        else:
            text = ", ".join(map(str, value)) if isinstance(value, list) else value
            lines.append(f"{key}: {'-' if text in (None, '') else text}")
    return "\n".join(lines)
