"""Serving commands of ``dbt-features`` (sync, get, status), registered on the main group."""

from __future__ import annotations

import click

commands: list[click.Command] = []
