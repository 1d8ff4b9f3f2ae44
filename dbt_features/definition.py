"""The feature-definition contract: parsing one model's ``config.meta.feature_store``.

Pure functions over the manifest's JSON: no warehouse, no dbt. Every problem found names the
model, its file(s) and the offending key, and says what to write instead.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

META_PATH = "config.meta.feature_store"
KNOWN_KEYS = (
    "entity",
    "entity_name",
    "timestamp",
    "created_timestamp",
    "ttl",
    "online",
    "features",
    "owner",
    "tags",
    "description",
    "version",
)
_TTL = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_TTL_SECONDS = 36500 * 86400


@dataclass(frozen=True)
class FeatureSpec:
    """What one model's meta says, checked for shape but not yet against its columns."""

    entity: tuple[str, ...]
    entity_name: str
    timestamp: str | None
    created_timestamp: str | None
    ttl_seconds: int | None
    online: bool
    features: tuple[str, ...] | None
    owner: str | None
    tags: tuple[str, ...]
    description: str | None
    version: int


def where(model: dict[str, Any]) -> str:
    """``model NAME (path/to/model.sql, path/to/schema.yml)``: how every message names a model."""
    files = [model.get("original_file_path")]
    patch = model.get("patch_path")
    if patch:
        files.append(patch.split("://", 1)[-1])
    shown = ", ".join(f for f in files if f)
    return f"model {model['name']} ({shown})" if shown else f"model {model['name']}"


def parse_ttl(value: Any) -> int | None:
    """``30d``/``12h``/``90m``/``45s``/``2w`` to seconds; ``0``/absent to None (no ttl).

    Raises ValueError with the accepted forms for anything else, and for a ttl longer than
    ``MAX_TTL_SECONDS`` (timestamps minus such a ttl leave the calendar).
    """
    if isinstance(value, bool):
        raise ValueError(
            f"ttl {value!r} is not a duration: write a whole number and a unit, e.g. '30d', "
            "or 0 (or leave ttl out) for no ttl"
        )
    if value is None or value == 0 or value == "0":
        return None
    if isinstance(value, str):
        match = _TTL.match(value)
        if match:
            seconds = int(match.group(1)) * _TTL_UNITS[match.group(2)]
            if seconds > MAX_TTL_SECONDS:
                raise ValueError(
                    f"ttl {value!r} is longer than {MAX_TTL_SECONDS // _TTL_UNITS['d']}d (100 "
                    "years), the longest ttl; write a shorter one, or 0 for no ttl"
                )
            return seconds or None
    raise ValueError(
        f"ttl {value!r} is not a duration: write a whole number and a unit "
        "(s, m, h, d or w), e.g. '30d', '12h', '90m', or 0 for no ttl"
    )


_REFERENCE_BREAKERS = ":,"


def reference_problem(name: str) -> str | None:
    """Why ``name`` cannot be written in a ``view:feature`` reference (the CLI and the APIs
    split references on ':' and lists of them on ','), as "it ...", or None when it can."""
    if name != name.strip():
        return "has leading or trailing spaces"
    if name == "*":
        return "is '*', which means every feature"
    found = [repr(c) for c in _REFERENCE_BREAKERS if c in name]
    return f"contains {' and '.join(found)}" if found else None


def safe_name(name: str) -> str:
    """A name like ``name`` that ``reference_problem`` accepts, to suggest."""
    cleaned = "".join("_" if c in _REFERENCE_BREAKERS else c for c in name.strip())
    return cleaned if cleaned not in ("", "*") else "feature_1"


def closest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` when a close choice exists, else an empty string."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def parse_spec(model: dict[str, Any], meta: Any) -> tuple[FeatureSpec | None, list[str]]:
    """Parse one model's ``feature_store`` meta. Returns the spec (None when unusable) and the
    problems found, each a complete message."""
    at = where(model)
    if not isinstance(meta, dict):
        return None, [f"{at}: {META_PATH} must be a mapping of settings, not {type(meta).__name__}."]
    read = _SpecReader(meta, at, [])
    for unknown in sorted(set(meta) - set(KNOWN_KEYS)):
        read.problem(f"unknown key {META_PATH}.{unknown}{closest(str(unknown), KNOWN_KEYS)}; "
                     f"the keys are: {', '.join(KNOWN_KEYS)}")
    entity = read.entity()
    entity_name, timestamp = read.text("entity_name"), read.text("timestamp")
    created, owner, description = read.text("created_timestamp"), read.text("owner"), read.text("description")
    ttl, online, features = read.ttl(), read.online(), read.features()
    tags, version = read.tags(), read.version()
    if read.problems or not entity:
        return None, read.problems
    model_tags = [t for t in model.get("tags", []) if isinstance(t, str)]
    return FeatureSpec(
        entity=tuple(entity), entity_name=entity_name or "__".join(entity), timestamp=timestamp,
        created_timestamp=created, ttl_seconds=ttl, online=online,
        features=tuple(features) if features else None, owner=owner,
        tags=tuple(dict.fromkeys([*model_tags, *tags])),
        description=description or model.get("description") or None, version=version,
    ), []


@dataclass
class _SpecReader:
    """Reads the settings of one ``feature_store`` meta, collecting a message per problem."""

    meta: dict[str, Any]
    at: str
    problems: list[str]

    def problem(self, text: str) -> None:
        self.problems.append(f"{self.at}: {text}.")

    def entity(self) -> list[str]:
        entity = self.meta.get("entity")
        if isinstance(entity, str):
            entity = [entity]
        if not isinstance(entity, list) or not entity or not all(isinstance(e, str) and e for e in entity):
            self.problem(f"{META_PATH}.entity must name the join key column, or a list of them "
                         "(e.g. entity: customer_id or entity: [customer_id, merchant_id])")
            return []
        if len(set(entity)) != len(entity):
            self.problem(f"{META_PATH}.entity lists a column twice: {entity}")
        return entity

    def text(self, name: str) -> str | None:
        value = self.meta.get(name)
        if value is not None and not (isinstance(value, str) and value.strip()):
            self.problem(f"{META_PATH}.{name} must be a non-empty string, not {value!r}")
            return None
        return value

    def ttl(self) -> int | None:
        try:
            return parse_ttl(self.meta.get("ttl"))
        except ValueError as exc:
            self.problem(f"{META_PATH}.{exc}")
            return None

    def online(self) -> bool:
        online = self.meta.get("online", False)
        if not isinstance(online, bool):
            self.problem(f"{META_PATH}.online must be true or false, not {online!r}")
            return False
        return online

    def features(self) -> list[str] | None:
        features = self.meta.get("features")
        if features is not None and (not isinstance(features, list) or not features
                                     or not all(isinstance(f, str) and f for f in features)):
            self.problem(f"{META_PATH}.features must be a non-empty list of column names, or be "
                         "left out to use every column that is not a key or timestamp")
            return None
        return features

    def tags(self) -> list[str]:
        tags = self.meta.get("tags", [])
        if isinstance(tags, str):
            tags = [tags]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            self.problem(f"{META_PATH}.tags must be a list of strings, not {tags!r}")
            return []
        return tags

    def version(self) -> int:
        version = self.meta.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            self.problem(f"{META_PATH}.version must be a whole number from 1 up, not {version!r}")
            return 1
        return version

