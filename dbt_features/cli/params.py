"""Every option of ``dbt-features``, declared once (as dbt-core's ``dbt/cli/params.py``).

dbt's own options keep dbt's names, environment variables and defaults, so that ``dbt run`` and
``dbt-features`` always see the same project, profile, target and vars.
"""

from __future__ import annotations

from typing import Any, Callable

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def group(*options: Decorator) -> Decorator:
    """One decorator applying several click options, in the order listed."""

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


# -- dbt's options, on every command ----------------------------------------------------------

project_dir = click.option(
    "--project-dir", type=click.Path(file_okay=False), envvar="DBT_PROJECT_DIR",
    help="Folder of dbt_project.yml (default: this folder or a parent).")
profiles_dir = click.option(
    "--profiles-dir", type=click.Path(file_okay=False), envvar="DBT_PROFILES_DIR",
    help="Folder of profiles.yml (default: as dbt: here, then ~/.dbt).")
target = click.option(
    "--target", "-t", default=None, help="Target in profiles.yml (default: the profile's).")
vars_ = click.option("--vars", "vars_", default=None, help="dbt vars, as YAML, as for dbt.")
as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")

dbt_options = group(project_dir, profiles_dir, target, vars_, as_json)

# -- dbt's node selection, wherever feature views are chosen -----------------------------------

select = click.option("--select", "-s", "select", default=None,
                      help="dbt selector of feature views (names, tag:, path:, graph "
                           "operators, state:).")
exclude = click.option("--exclude", "exclude", default=None,
                       help="dbt selector of feature views to leave out.")
_STATE_HELP = ("Folder of another environment's dbt artifacts (manifest.json, and "
               "feature_registry.json if exported), as dbt's --state.")
state = click.option("--state", "state", default=None, envvar="DBT_STATE", type=click.Path(),
                     help=_STATE_HELP + " Used by state: selectors.")
state_required = click.option("--state", "state", required=True, envvar="DBT_STATE",
                              type=click.Path(), help=_STATE_HELP)

selection = group(select, exclude, state)

# -- training sets -----------------------------------------------------------------------------

spine = click.option("--spine", required=True,
                     help="Spine: a .parquet/.csv file, or a dbt model or source (source.table).")
spine_timestamp = click.option(
    "--spine-timestamp", default=None,
    help="Spine column with each row's point in time (default: the column named "
         "event_timestamp or timestamp).")
features = click.option("--features", "-f", "features", required=True, multiple=True,
                        help="view:feature or view:*, comma-separated; may be repeated.")
full_feature_names = click.option("--full-feature-names", is_flag=True,
                                  help="Name feature columns view__feature.")

as_known_at = click.option(
    "--as-known-at", is_flag=True,
    help="Use only feature rows created (created_timestamp) by each spine row's time: the "
         "values as they were known then, late-arriving rows left out (views without a "
         "created_timestamp are unaffected).")

training_options = group(spine, spine_timestamp, features, full_feature_names, as_known_at)

# -- replaying served values (verify --served) ---------------------------------------------------

served = click.option(
    "--served", "served", default=None, metavar="SOURCE",
    help="Replay a served-value log instead: an exported folder or .parquet file, a dbt model "
         "or source (source:name.table) holding one, or `stream` (the online store's live log).")
max_mismatch_rate = click.option(
    "--max-mismatch-rate", default=0.0, show_default=True, type=float, metavar="RATE",
    help="With --served: exit 1 when a feature's mismatch rate is above this (0 to 1).")

# -- the served-value log (serve --log-served) --------------------------------------------------

log_served = click.option("--log-served", is_flag=True,
                          help="Log what is served to a Redis stream in the online store "
                               "(`dbt-features served export` turns it into Parquet).")
log_sample_rate = click.option(
    "--log-sample-rate", default=1.0, show_default=True, type=float, metavar="RATE",
    help="With --log-served: the share of requests logged, 0 to 1.")
LOG_MAX_ENTRIES = 1_000_000
"""``--log-max-entries``'s default (``serving.served_log.DEFAULT_MAX_ENTRIES``, not imported:
loading the CLI imports no serving module)."""
log_max_entries = click.option(
    "--log-max-entries", default=LOG_MAX_ENTRIES, show_default=True, type=int, metavar="N",
    help="With --log-served: the log's length bound in requests (the oldest are trimmed).")

served_log_options = group(log_served, log_sample_rate, log_max_entries)
