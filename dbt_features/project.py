"""Where the dbt project is, which profile and target it uses, and running dbt itself.

dbt-features never has connection settings of its own: it takes dbt's options with dbt's names
(``--project-dir``, ``--profiles-dir``, ``--target``, ``--vars``) and resolves them the way dbt
does, so ``dbt run`` and ``dbt-features`` always talk to the same warehouse.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ProjectError, WarehouseError

log = logging.getLogger("dbt_features")

PROJECT_FILE = "dbt_project.yml"
PROFILES_FILE = "profiles.yml"
VARS_KEY = "dbt_features"
"""Our own block of dbt vars (``vars: {dbt_features: {online_store: ...}}``)."""
_PRIVATE_VARS = ("online_store",)
"""Settings of that block that dbt never sees: dbt records its args (vars included) in
target/run_results.json and its logs, and the online store's URL may hold a password."""
_DUCKDB_LOCK = re.compile(r'Could not set lock on file "(?P<path>[^"]+)": Conflicting lock is '
                          r"held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


@dataclass(frozen=True)
class DbtOptions:
    """dbt's own options, as given on the command line or as keywords to ``FeatureStore``."""

    project_dir: str | None = None
    profiles_dir: str | None = None
    target: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Project:
    """A located dbt project and the profile target it resolves to."""

    root: Path
    name: str
    profile_name: str
    profiles_dir: Path
    target_path: Path
    options: DbtOptions

    @property
    def manifest_path(self) -> Path:
        return self.target_path / "manifest.json"

    def dbt_args(self) -> list[str]:
        """The options to pass to every dbt invocation so it sees what we see."""
        args = ["--project-dir", str(self.root), "--profiles-dir", str(self.profiles_dir)]
        if self.options.target:
            args += ["--target", self.options.target]
        dbt_vars = vars_for_dbt(self.options.vars)
        if dbt_vars:
            args += ["--vars", yaml.safe_dump(dbt_vars, default_flow_style=True).strip()]
        return args


def vars_for_dbt(given: dict[str, Any]) -> dict[str, Any]:
    """The vars to hand to dbt: all of them but our private settings (see ``_PRIVATE_VARS``)."""
    ours = given.get(VARS_KEY)
    if not isinstance(ours, dict):
        return dict(given)
    kept = {k: v for k, v in ours.items() if k not in _PRIVATE_VARS}
    rest = {k: v for k, v in given.items() if k != VARS_KEY}
    return rest | ({VARS_KEY: kept} if kept else {})


def find_project(options: DbtOptions) -> Project:
    """Locate the project like dbt: ``--project-dir``, else ``DBT_PROJECT_DIR``, else the current
    directory or one of its parents."""
    given = options.project_dir or os.environ.get("DBT_PROJECT_DIR")
    if given:
        root = Path(given).expanduser().resolve()
        if not (root / PROJECT_FILE).is_file():
            raise ProjectError(
                f"no dbt project at {given}: {root / PROJECT_FILE} does not exist. "
                "Pass --project-dir pointing at the folder that holds dbt_project.yml."
            )
    else:
        cwd = Path.cwd().resolve()
        root = next((p for p in (cwd, *cwd.parents) if (p / PROJECT_FILE).is_file()), None)
        if root is None:
            raise ProjectError(
                f"no dbt project here: neither {cwd} nor its parents hold dbt_project.yml. "
                "Run inside a dbt project or pass --project-dir."
            )
    config = _read_yaml(root / PROJECT_FILE)
    name, profile = config.get("name"), config.get("profile")
    if not isinstance(name, str) or not isinstance(profile, str):
        raise ProjectError(
            f"{root / PROJECT_FILE} must set `name` and `profile` (dbt needs both too)."
        )
    target_dir = os.environ.get("DBT_TARGET_PATH") or config.get("target-path") or "target"
    return Project(
        root=root,
        name=name,
        profile_name=profile,
        profiles_dir=_profiles_dir(options, root),
        target_path=(root / target_dir).resolve(),
        options=options,
    )


def _profiles_dir(options: DbtOptions, root: Path) -> Path:
    """dbt's order: the flag, ``DBT_PROFILES_DIR``, the current directory if it has a
    profiles.yml, then ``~/.dbt``. We also look in the project folder before ``~/.dbt`` so that
    ``FeatureStore(project_dir=...)`` works from anywhere for projects that ship their profile."""
    given = options.profiles_dir or os.environ.get("DBT_PROFILES_DIR")
    if given:
        path = Path(given).expanduser().resolve()
        if not (path / PROFILES_FILE).is_file():
            raise ProjectError(
                f"no profiles.yml in --profiles-dir {given}; create it or point "
                "--profiles-dir at the folder that holds it."
            )
        return path
    for candidate in (Path.cwd(), root, Path.home() / ".dbt"):
        if (candidate / PROFILES_FILE).is_file():
            return candidate.resolve()
    raise ProjectError(
        f"no profiles.yml found (looked in {Path.cwd()}, {root} and ~/.dbt). "
        "Pass --profiles-dir or set DBT_PROFILES_DIR."
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ProjectError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ProjectError(f"{path} must hold a YAML mapping.")
    return data


def run_dbt(project: Project, command: list[str]) -> None:
    """Run one dbt command in this process (``dbtRunner``) with the project's options.

    dbt's own log lines are kept quiet; when the command fails its error messages become ours,
    one line, without dbt's stack traces. Whatever connection dbt's adapter keeps open after
    the command (dbt-duckdb's ``keep_open``, its default) is closed, so that this process can
    open the warehouse itself afterwards.
    """
    from dbt.cli.main import dbtRunner

    errors: list[str] = []

    def collect(event: Any) -> None:
        if event.info.level == "error" and event.info.msg and event.info.name != "MainStackTrace":
            errors.append(str(event.info.msg))

    log.info("running `dbt %s` in %s", " ".join(command), project.root)
    args = [*command, *project.dbt_args(), "--log-level", "none", "--no-use-colors"]
    # dbt records this process's command line in run_results.json as its own: let it record
    # the dbt command it runs, not ours (whose --vars may hold the online store's password).
    argv, sys.argv = sys.argv, ["dbt", *args]
    try:
        result = dbtRunner(callbacks=[collect]).invoke(args)
    finally:
        sys.argv = argv
        release_dbt_connections()
    if not result.success:
        if result.exception is not None:
            errors.append(str(result.exception))
        reason = dbt_failure(errors)
        # A file locked by another process is a moment's condition, not a project error.
        error = WarehouseError if reason.startswith("DuckDB file ") else ProjectError
        raise error(f"`dbt {' '.join(command)}` failed in {project.root}: {reason}")


def dbt_failure(messages: list[str]) -> str:
    """dbt's error messages as one line: stack traces dropped, each message on one line, no
    repeats; a DuckDB file locked by another process said plainly."""
    lines: list[str] = []
    for message in messages:
        text = message.split("Traceback (most recent call last)", 1)[0]
        text = text.replace("Encountered an error:", "")
        lines.append(" ".join(text.split()))
    for line in lines:
        locked = duckdb_lock_message(line)
        if locked:
            return locked
        if "same database file with a different configuration" in line:
            return (
                "this process already has the DuckDB file open with other settings (a "
                "read-only connection of yours?), so dbt cannot open it: close that connection "
                "while dbt runs (dbt-features runs dbt only when the project changed)."
            )
    shown = [line for line in dict.fromkeys(lines) if line]
    return "; ".join(shown) or "dbt gave no reason (run the same dbt command to see its log)"


def duckdb_lock_message(text: str) -> str | None:
    """One line for DuckDB's "Conflicting lock is held in ... (PID n)", else None."""
    match = _DUCKDB_LOCK.search(text)
    if match is None:
        return None
    return (
        f"DuckDB file {match['path']} is locked by another process ({match['program']}, PID "
        f"{match['pid']}): wait for that command (a `dbt run`, a `dbt-features sync`?) to "
        "finish, or close the program holding the file, then run this again."
    )


def release_dbt_connections() -> None:
    """Close the DuckDB database that dbt-duckdb keeps open in this process after a command.

    dbt-duckdb holds one environment per process at class level; with ``keep_open`` (its
    default) its read-write connection outlives the command, and DuckDB then refuses any other
    connection to that file with another configuration (our read-only one)."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    with DuckDBConnectionManager._LOCK:
        env, DuckDBConnectionManager._ENV = DuckDBConnectionManager._ENV, None
    if env is not None:
        env.close()


def load_credentials(project: Project) -> tuple[str, Any]:
    """The adapter type and credentials of the selected target, rendered by dbt itself
    (``env_var``, ``--vars`` and all), from the same profiles.yml ``dbt run`` uses."""
    from argparse import Namespace

    from dbt.config.profile import Profile, read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt.exceptions import DbtProfileError, DbtProjectError, DbtRuntimeError
    from dbt.flags import set_from_args
    from dbt_common.context import set_invocation_context

    # dbt reads these process-wide settings while rendering a profile, as in a real invocation.
    set_invocation_context(dict(os.environ))
    set_from_args(
        Namespace(profiles_dir=str(project.profiles_dir), project_dir=str(project.root)), None
    )
    try:
        raw = read_profile(str(project.profiles_dir))
        profile = Profile.from_raw_profiles(
            raw_profiles=raw,
            profile_name=project.profile_name,
            renderer=ProfileRenderer(project.options.vars),
            target_override=project.options.target,
        )
    except (DbtProfileError, DbtProjectError, DbtRuntimeError) as exc:
        raise ProjectError(
            f"cannot use profile {project.profile_name!r} from "
            f"{project.profiles_dir / PROFILES_FILE}: {_first_line(exc)}"
        ) from exc
    return profile.credentials.type, profile.credentials


def target_name(project: Project) -> str:
    """The target in use: ``--target``, else the profile's default."""
    if project.options.target:
        return project.options.target
    raw = _read_yaml(project.profiles_dir / PROFILES_FILE)
    entry = raw.get(project.profile_name) or {}
    target = entry.get("target", "default") if isinstance(entry, dict) else "default"
    return str(target)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.split()) if len(text) < 400 else text.splitlines()[0]
