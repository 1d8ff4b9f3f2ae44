"""Every command's --help shows a short example; the commands that take dbt's --select also
take dbt's --exclude and --state."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from dbt_features.cli import main

COMMANDS = sorted(main.commands)
LEAVES = sorted(f"{name} {sub}" if sub else name
                for name, command in main.commands.items()
                for sub in (command.commands if isinstance(command, click.Group) else [""]))
"""Every command, a group's as ``group command``."""


def test_every_command_is_registered() -> None:
    assert COMMANDS == ["catalog", "describe", "diff", "get", "list", "serve", "served", "sql",
                        "status", "sync", "training-set", "validate", "verify"]


@pytest.mark.parametrize("name", LEAVES)
def test_help_shows_an_example(name: str) -> None:
    result = CliRunner().invoke(main, [*name.split(), "--help"])
    assert result.exit_code == 0, result.output
    example = re.split(r"Examples?:\n", result.output, maxsplit=1)[1].split("\n\n", 1)[0]
    assert f"dbt-features {name} " in example
    for option in ("--project-dir", "--profiles-dir", "--target", "--vars", "--json"):
        assert option in result.output


@pytest.mark.parametrize("name", LEAVES)
def test_select_comes_with_exclude_and_state(name: str) -> None:
    command = main
    for part in name.split():
        command = command.commands[part]
    options = {opt for param in command.params for opt in param.opts}
    if "--select" in options:
        assert {"--exclude", "--state"} <= options
