"""The ``dbt-features`` command: a thin layer over ``FeatureStore``.

Each command parses its options, calls one library function and prints the result, as text for
people or as JSON with ``--json``. Errors become one message on stderr (and a JSON object on
stdout with ``--json``) and the error's exit code; never a traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from typing import Any, Callable

import click

from .errors import DbtFeaturesError, UsageError
from .registry import FeatureView, Registry
from .store import FeatureStore, view_summary


def option_group(*options: Callable[..., Any]) -> Callable[..., Any]:
    """One decorator applying several click options, in the order listed."""

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


# dbt's own options, with dbt's names and defaults, on every command.
dbt_options = option_group(
    click.option("--project-dir", type=click.Path(file_okay=False), envvar="DBT_PROJECT_DIR",
                 help="Folder of dbt_project.yml (default: this folder or a parent)."),
    click.option("--profiles-dir", type=click.Path(file_okay=False), envvar="DBT_PROFILES_DIR",
                 help="Folder of profiles.yml (default: as dbt: here, then ~/.dbt)."),
    click.option("--target", "-t", default=None, help="Target in profiles.yml (default: the profile's)."),
    click.option("--vars", "vars_", default=None, help="dbt vars, as YAML, as for dbt."),
    click.option("--json", "as_json", is_flag=True, help="Print JSON for machines."),
)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DbtFeaturesError as exc:
            if kwargs.get("as_json"):
                click.echo(json.dumps({"error": exc.message, "problems": exc.problems}))
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)

    return wrapper


def open_store(project_dir: str | None, profiles_dir: str | None, target: str | None,
               vars_: str | None) -> FeatureStore:
    store = FeatureStore(project_dir, profiles_dir=profiles_dir, target=target,
                         vars=parse_vars(vars_))
    store.on_problems = warn_problems
    return store


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


def emit(as_json: bool, data: Any, text: Callable[[], str]) -> None:
    click.echo(json.dumps(data, indent=2, default=str) if as_json else text())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dbt-features")
def main() -> None:
    """dbt-features: feature views defined as dbt models, for training and serving."""
    if sys.stderr.isatty():
        # On a terminal, say what slow steps (a dbt parse, a sync) are doing.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("dbt_features")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


@main.command()
@dbt_options
@handle_errors
def validate(project_dir, profiles_dir, target, vars_, as_json) -> None:
    """Check every feature definition; exit 2 on any problem."""
    registry = open_store(project_dir, profiles_dir, target, vars_).validate()
    n_features = sum(len(v.features) for v in registry.views)
    emit(as_json, {"ok": True, "views": len(registry.views), "features": n_features},
         lambda: f"OK: {len(registry.views)} feature views, {n_features} features.")


@main.command("list")
@dbt_options
@click.option("--select", "-s", "select", default=None, help="dbt selector of feature models.")
@click.option("--exclude", "exclude", default=None, help="dbt selector of models to leave out.")
@handle_errors
def list_(project_dir, profiles_dir, target, vars_, as_json, select, exclude) -> None:
    """List feature views: entity, timestamp, ttl, online flag, features."""
    store = open_store(project_dir, profiles_dir, target, vars_)
    views = store.select(select, exclude)
    emit(as_json, {"views": [view_summary(v) for v in views]}, lambda: format_views(views))


@main.command()
@dbt_options
@click.argument("ref")
@handle_errors
def describe(project_dir, profiles_dir, target, vars_, as_json, ref) -> None:
    """Describe a view (customer_spend) or a feature (customer_spend:avg_amount_30d)."""
    data = open_store(project_dir, profiles_dir, target, vars_).describe(ref)
    emit(as_json, data, lambda: format_mapping(data))


def format_views(views: list[FeatureView]) -> str:
    if not views:
        return "No feature views (mark a model with config.meta.feature_store)."
    blocks = []
    for v in views:
        keys = ", ".join(f"{k.name} {k.dtype}" for k in v.entity.join_keys)
        head = [
            f"{v.name}  ({v.file})",
            f"  entity     {v.entity.name} [{keys}]",
            f"  timestamp  {v.timestamp.name if v.timestamp else '-'}"
            + (f" (created: {v.created_timestamp.name})" if v.created_timestamp else ""),
            f"  ttl        {v.ttl or 'none'}    online: {'yes' if v.online else 'no'}",
            f"  owner      {v.owner or '-'}    consumers: {', '.join(v.consumers) or '-'}",
            "  features",
        ]
        width = max(len(f.name) for f in v.features)
        head += [f"    {f.name:<{width}}  {f.dtype:<9}  {f.description or ''}".rstrip()
                 for f in v.features]
        blocks.append("\n".join(head))
    return "\n\n".join(blocks)


def format_mapping(data: dict[str, Any]) -> str:
    lines = []
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{key}:")
            lines += ["  " + ", ".join(f"{k}={v}" for k, v in item.items() if v is not None)
                      for item in value]
        else:
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            lines.append(f"{key}: {'-' if shown in (None, '') else shown}")
    return "\n".join(lines)


@main.command()
@dbt_options
@click.option("--state", "state", required=True, envvar="DBT_STATE", type=click.Path(),
              help="Folder of another environment's dbt artifacts (manifest.json, and "
                   "feature_registry.json if exported), as dbt's --state.")
@handle_errors
def diff(project_dir, profiles_dir, target, vars_, as_json, state) -> None:
    """Compare feature definitions with another environment's (--state).

    Exit 1 on a breaking change (removed view or feature, changed type, entity, timestamp, ttl,
    or a feature whose logic changed under the same name) unless the view's version was raised.
    """
    result = open_store(project_dir, profiles_dir, target, vars_).diff(state)
    emit(as_json, result.to_dict(), result.format)
    if result.exit_code:
        sys.exit(result.exit_code)


# The spine and feature options shared by ``training-set`` and ``sql``.
training_options = option_group(
    click.option("--spine", required=True,
                 help="Spine: a .parquet/.csv file, or a dbt model or source (source.table)."),
    click.option("--spine-timestamp", default=None,
                 help="Spine column with each row's point in time (default: the column "
                      "named event_timestamp or timestamp)."),
    click.option("--features", "-f", "features", required=True, multiple=True,
                 help="view:feature or view:*, comma-separated; may be repeated."),
    click.option("--full-feature-names", is_flag=True,
                 help="Name feature columns view__feature."),
)


@main.command("training-set")
@dbt_options
@training_options
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Where to write the training set: a .parquet or .csv file.")
@handle_errors
def training_set(project_dir, profiles_dir, target, vars_, as_json, spine, spine_timestamp,
                 features, full_feature_names, output) -> None:
    """Build a point-in-time training set: each spine row with every feature as of its time."""
    from .training import check_output, write_output

    check_output(output)
    table = open_store(project_dir, profiles_dir, target, vars_).get_training_set(
        spine, list(features), spine_timestamp=spine_timestamp,
        full_feature_names=full_feature_names)
    write_output(table, output)
    data = {"output": output, "rows": table.num_rows, "columns": table.column_names}
    emit(as_json, data, lambda: f"Wrote {table.num_rows} rows x {table.num_columns} columns "
                                f"to {output}.")


@main.command("sql")
@dbt_options
@training_options
@click.option("--dialect", default=None,
              help="duckdb, postgres, snowflake, bigquery, spark or trino (default: the target's).")
@handle_errors
def sql_(project_dir, profiles_dir, target, vars_, as_json, spine, spine_timestamp, features,
         full_feature_names, dialect) -> None:
    """Print the training-set SQL for a spine model, to run or paste anywhere."""
    store = open_store(project_dir, profiles_dir, target, vars_)
    text = store.training_sql(spine, list(features), dialect=dialect,
                              spine_timestamp=spine_timestamp,
                              full_feature_names=full_feature_names)
    emit(as_json, {"dialect": dialect or store.registry.dialect, "sql": text}, lambda: text)


def _register_serving_commands() -> None:
    from adapter.cli import commands

    for command in commands:
        main.add_command(command)


_register_serving_commands()
