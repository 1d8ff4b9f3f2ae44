"""Every command's --help shows a short example; the commands that take dbt's --select also
take dbt's --exclude and --state."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dbt_features.cli import main

COMMANDS = sorted(main.commands)


def test_every_command_is_registered() -> None:
    assert COMMANDS == ["catalog", "describe", "diff", "get", "list", "serve", "sql", "status",
                        "sync", "training-set", "validate", "verify"]


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_an_example(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    example = result.output.split("Example:\n", 1)[1].split("\n\n", 1)[0]
    assert f"dbt-features {name} " in example
    for option in ("--project-dir", "--profiles-dir", "--target", "--vars", "--json"):
        assert option in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_select_comes_with_exclude_and_state(name: str) -> None:
    options = {opt for param in main.commands[name].params for opt in param.opts}
    if "--select" in options:
        assert {"--exclude", "--state"} <= options
