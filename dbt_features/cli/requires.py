"""The decorator every command runs under (as dbt-core's ``dbt/cli/requires.py``): it opens the
``FeatureStore`` from dbt's options and turns errors into one message and an exit code.

Library code raises ``DbtFeaturesError``; only here does one become a line on stderr (and a JSON
object on stdout with ``--json``) and the error's exit code: 2 for usage, project and definition
errors, 1 for runtime failures, 130 on Ctrl-C; never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import click

from ..errors import DbtFeaturesError, UsageError
from ..registry import Registry
from ..store import FeatureStore


def store(func: Callable[..., Any]) -> Callable[..., Any]:
    """Call the command with the opened ``FeatureStore`` as its first argument, in place of
    dbt's options (``params.dbt_options``; ``as_json`` is passed on)."""

    @functools.wraps(func)
    def wrapper(*, project_dir: str | None, profiles_dir: str | None, target: str | None,
                vars_: str | None, as_json: bool, **options: Any) -> Any:
        try:
            opened = open_store(project_dir, profiles_dir, target, vars_)
            return func(opened, as_json=as_json, **options)
        except DbtFeaturesError as exc:
            if as_json:
                click.echo(json.dumps({"error": exc.message, "problems": exc.problems}))
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)

    return wrapper


def open_store(project_dir: str | None, profiles_dir: str | None, target: str | None,
               vars_: str | None) -> FeatureStore:
    opened = FeatureStore(project_dir, profiles_dir=profiles_dir, target=target,
                          vars=parse_vars(vars_))
    opened.on_problems = warn_problems
    return opened


def warn_problems(registry: Registry) -> None:
    """One line on stderr: the valid views are in use, these definitions are left out."""
    count = len(registry.problems)
    click.echo(
        f"Warning: {count} problem{'s' if count > 1 else ''} in the feature definitions; left "
        f"out: {', '.join(registry.broken)}. Run `dbt-features validate` for details.",
        err=True,
    )


def parse_vars(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    import yaml

    # The vars may hold secrets (an online store URL): messages never repeat their text.
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "it does not parse"
        raise UsageError(f"--vars is not valid YAML{at}: {problem}.") from None
    if not isinstance(value, dict):
        raise UsageError(f"--vars must be a YAML mapping, e.g. '{{n_customers: 100}}', not a "
                         f"{type(value).__name__}.")
    return value

