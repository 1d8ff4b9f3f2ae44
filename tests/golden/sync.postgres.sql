-- full refresh
SELECT
  "customer_id",
  "feature_at",
  "computed_at",
  "avg_amount_30d",
  "segment"
FROM (
  SELECT
    "customer_id",
    "feature_at",
    "computed_at",
    "avg_amount_30d",
    "segment",
    ROW_NUMBER() OVER (
      PARTITION BY "customer_id"
      ORDER BY "feature_at" DESC NULLS LAST, "computed_at" DESC NULLS LAST, "avg_amount_30d" DESC NULLS LAST, "segment" COLLATE "C" DESC NULLS LAST
    ) AS "_dbt_features_rank"
  FROM (
    SELECT
      "customer_id",
      "feature_at",
      "computed_at",
      "avg_amount_30d",
      "segment",
      MAX("feature_at") OVER (PARTITION BY "customer_id") AS "_dbt_features_latest_at"
    FROM "db"."analytics"."customer_spend"
    WHERE
      NOT "customer_id" IS NULL
      AND NOT "feature_at" IS NULL
      AND "feature_at" <= CAST('2026-05-01 12:00:00.000000' AS TIMESTAMP)
      AND "feature_at" >= CAST('2026-04-01 12:00:00.000000' AS TIMESTAMP)
  ) AS "_dbt_features_at_latest"
  WHERE
    "feature_at" = "_dbt_features_latest_at"
) AS "_dbt_features_latest"
WHERE
  "_dbt_features_rank" = 1;

-- incremental
SELECT
  "customer_id",
  "feature_at",
  "computed_at",
  "avg_amount_30d",
  "segment"
FROM (
  SELECT
    "customer_id",
    "feature_at",
    "computed_at",
    "avg_amount_30d",
    "segment",
    ROW_NUMBER() OVER (
      PARTITION BY "customer_id"
      ORDER BY "feature_at" DESC NULLS LAST, "computed_at" DESC NULLS LAST, "avg_amount_30d" DESC NULLS LAST, "segment" COLLATE "C" DESC NULLS LAST
    ) AS "_dbt_features_rank"
  FROM (
    SELECT
      "customer_id",
      "feature_at",
      "computed_at",
      "avg_amount_30d",
      "segment",
      MAX("feature_at") OVER (PARTITION BY "customer_id") AS "_dbt_features_latest_at"
    FROM "db"."analytics"."customer_spend"
    WHERE
      NOT "customer_id" IS NULL
      AND NOT "feature_at" IS NULL
      AND "feature_at" <= CAST('2026-05-01 12:00:00.000000' AS TIMESTAMP)
      AND "feature_at" >= CAST('2026-04-01 12:00:00.000000' AS TIMESTAMP)
      AND (
        "computed_at" > CAST('2026-05-01 05:30:00.000000+00:00' AS TIMESTAMPTZ)
        OR "feature_at" > CAST('2026-05-01 06:00:00.000000' AS TIMESTAMP)
      )
  ) AS "_dbt_features_at_latest"
  WHERE
    "feature_at" = "_dbt_features_latest_at"
) AS "_dbt_features_latest"
WHERE
  "_dbt_features_rank" = 1;

-- change check
SELECT
  COUNT(
    CASE
      WHEN "feature_at" <= CAST('2026-05-01 06:00:00.000000' AS TIMESTAMP)
      AND "feature_at" >= CAST('2026-04-01 06:00:00.000000' AS TIMESTAMP)
      AND (
        "computed_at" IS NULL
        OR "computed_at" <= CAST('2026-05-01 05:30:00.000000+00:00' AS TIMESTAMPTZ)
      )
      THEN 1
    END
  ) AS "settled_rows",
  CAST(SUM(
    CASE
      WHEN "feature_at" <= CAST('2026-05-01 06:00:00.000000' AS TIMESTAMP)
      AND "feature_at" >= CAST('2026-04-01 06:00:00.000000' AS TIMESTAMP)
      AND (
        "computed_at" IS NULL
        OR "computed_at" <= CAST('2026-05-01 05:30:00.000000+00:00' AS TIMESTAMPTZ)
      )
      THEN HASHTEXTEXTENDED(
        CAST(ROW("customer_id", "feature_at", "computed_at", "avg_amount_30d", "segment") AS TEXT),
        0
      )
    END
  ) AS TEXT) AS "settled_digest",
  COUNT(
    CASE
      WHEN "feature_at" <= CAST('2026-05-01 12:00:00.000000' AS TIMESTAMP)
      AND "feature_at" >= CAST('2026-04-01 12:00:00.000000' AS TIMESTAMP)
      THEN 1
    END
  ) AS "rows",
  CAST(SUM(
    CASE
      WHEN "feature_at" <= CAST('2026-05-01 12:00:00.000000' AS TIMESTAMP)
      AND "feature_at" >= CAST('2026-04-01 12:00:00.000000' AS TIMESTAMP)
      THEN HASHTEXTEXTENDED(
        CAST(ROW("customer_id", "feature_at", "computed_at", "avg_amount_30d", "segment") AS TEXT),
        0
      )
    END
  ) AS TEXT) AS "digest",
  MAX(
    CASE
      WHEN "feature_at" <= CAST('2026-05-01 12:00:00.000000' AS TIMESTAMP)
      AND "feature_at" >= CAST('2026-04-01 12:00:00.000000' AS TIMESTAMP)
      THEN "computed_at"
    END
  ) AS "watermark"
FROM "db"."analytics"."customer_spend"
WHERE
  NOT "customer_id" IS NULL
  AND NOT "feature_at" IS NULL
  AND "feature_at" >= CAST('2026-04-01 06:00:00.000000' AS TIMESTAMP);
