"""Pure tests of the feature-definition contract (no dbt, no warehouse)."""

from __future__ import annotations

import pytest

from dbt_features.definition import closest, parse_spec, parse_ttl

MODEL = {
    "name": "spend",
    "original_file_path": "models/spend.sql",
    "patch_path": "tiny://models/schema.yml",
    "tags": ["nightly"],
    "description": "From the model.",
}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("45s", 45), ("2w", 1209600),
     (" 7d ", 7 * 86400), ("0", None), (0, None), (None, None), ("0d", None)],
)
def test_parse_ttl_accepts_durations(text, seconds):
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["30 days", "1.5h", "-3d", "d", "30", 30, "30y", True, [1]])
def test_parse_ttl_rejects_everything_else(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_ttl(text)


def test_closest_suggests_only_near_names():
    assert closest("timestmp", ["timestamp", "ttl"]) == " (did you mean 'timestamp'?)"
    assert closest("zzz", ["timestamp", "ttl"]) == ""


def test_spec_defaults_and_merges():
    spec, problems = parse_spec(MODEL, {"entity": "customer_id", "timestamp": "ts", "tags": ["a"]})
    assert problems == []
    assert spec.entity == ("customer_id",)
    assert spec.entity_name == "customer_id"
    assert spec.online is False and spec.ttl_seconds is None and spec.features is None
    assert spec.tags == ("nightly", "a")
    assert spec.description == "From the model."
    assert spec.version == 1


def test_spec_composite_entity():
    spec, _ = parse_spec(MODEL, {"entity": ["customer_id", "merchant_id"], "entity_name": "pair"})
    assert spec.entity == ("customer_id", "merchant_id") and spec.entity_name == "pair"


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"entity": "c", "timestmp": "ts"},
         "model spend (models/spend.sql, models/schema.yml): unknown key "
         "config.meta.feature_store.timestmp (did you mean 'timestamp'?); the keys are: entity, "
         "entity_name, timestamp, created_timestamp, ttl, online, features, owner, tags, "
         "description, version."),
        ({"timestamp": "ts"},
         "model spend (models/spend.sql, models/schema.yml): config.meta.feature_store.entity "
         "must name the join key column, or a list of them (e.g. entity: customer_id or "
         "entity: [customer_id, merchant_id])."),
        ({"entity": "c", "ttl": "30 days"},
         "model spend (models/spend.sql, models/schema.yml): config.meta.feature_store.ttl "
         "'30 days' is not a duration: write a whole number and a unit (s, m, h, d or w), "
         "e.g. '30d', '12h', '90m', or 0 for no ttl."),
        ({"entity": "c", "online": "yes"},
         "model spend (models/spend.sql, models/schema.yml): config.meta.feature_store.online "
         "must be true or false, not 'yes'."),
        ({"entity": "c", "features": "a,b"},
         "model spend (models/spend.sql, models/schema.yml): config.meta.feature_store.features "
         "must be a non-empty list of column names, or be left out to use every column that is "
         "not a key or timestamp."),
        ({"entity": "c", "version": 0},
         "model spend (models/spend.sql, models/schema.yml): config.meta.feature_store.version "
         "must be a whole number from 1 up, not 0."),
        ("customer_id",
         "model spend (models/spend.sql, models/schema.yml): config.meta.feature_store must be "
         "a mapping of settings, not str."),
    ],
)
def test_spec_problems_name_model_file_and_key(meta, message):
    spec, problems = parse_spec(MODEL, meta)
    assert spec is None
    assert problems == [message]
