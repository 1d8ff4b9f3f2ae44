"""Entity keys given on the command line: integer keys are ASCII digits only (Python's int()
would take '4_2' and '٤٢'), and a key that is not UTF-8 is one clear message, exit 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dbt_features.cli.entities import parse_entities
from helpers import DBT_FEATURES
from dbt_features.errors import UsageError
from dbt_features.store import FeatureStore


def _get(project: Path, entity: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([DBT_FEATURES.encode(), b"get", b"customer_spend:txn_count_7d",
                           b"--entity", entity], cwd=project, capture_output=True,
                          env=dict(os.environ), timeout=120)


@pytest.mark.parametrize("value", ["4_2", "٤٢", "0x2a", "42.0", "9223372036854775808"])
def test_integer_keys_take_ascii_digits_only(duck_project: Path, value: str) -> None:
    result = _get(duck_project, f"customer_id={value}".encode())
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert (f"--entity customer_id={value}: customer_id is an integer key (int64); give a whole "
            "number in ASCII digits") in stderr
    assert "Traceback" not in stderr


def test_signed_ascii_integers_are_keys(duck_project: Path) -> None:
    FeatureStore(project_dir=str(duck_project)).sync()
    for value, status in ((b"+1", b" present "), (b"-7", b" not_found ")):
        result = _get(duck_project, b"customer_id=" + value)
        assert result.returncode == 0, result.stderr.decode()
        assert status in result.stdout


def test_a_key_that_is_not_utf8_is_exit_2(duck_project: Path) -> None:
    result = _get(duck_project, b"customer_id=\xff")
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 2, stderr
    assert stderr.strip() == ("Error: --entity customer_id=\\xff: not valid UTF-8 text: give keys "
                              "as UTF-8 (check the terminal's or the script's encoding).")


def test_parse_entities_rejects_lone_surrogates() -> None:
    with pytest.raises(UsageError, match=r"--entity k=\\ud800: not valid UTF-8"):
        parse_entities(("k=\ud800",))
    assert parse_entities(("k=é,n=1",)) == [{"k": "é", "n": "1"}]
