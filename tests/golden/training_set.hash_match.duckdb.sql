WITH "__dbt_features_spine" AS MATERIALIZED (
  SELECT
    "customer_id",
    "merchant_id",
    "scored_at",
    "label",
    ROW_NUMBER() OVER () AS "__dbt_features_row",
    "scored_at" AS "__dbt_features_ts"
  FROM "db"."analytics"."labels"
), "__dbt_features_match_1" AS (
  SELECT
    "p"."__dbt_features_row",
    "p"."customer_id",
    MAX("f"."__dbt_features_ts") AS "__dbt_features_match"
  FROM "__dbt_features_spine" AS "p"
  LEFT JOIN (
    SELECT
      "customer_id",
      "feature_at" AS "__dbt_features_ts"
    FROM "db"."analytics"."customer_spend"
    WHERE
      "feature_at" <= (
        SELECT
          MAX("__dbt_features_spine"."__dbt_features_ts")
        FROM "__dbt_features_spine"
      )
      AND "feature_at" >= (
        SELECT
          MIN("__dbt_features_spine"."__dbt_features_ts")
        FROM "__dbt_features_spine"
      ) - INTERVAL '2592000' SECOND
  ) AS "f"
    ON "p"."customer_id" = "f"."customer_id"
    AND "f"."__dbt_features_ts" <= "p"."__dbt_features_ts"
    AND "f"."__dbt_features_ts" >= "p"."__dbt_features_ts" - INTERVAL '2592000' SECOND
  GROUP BY
    "p"."__dbt_features_row",
    "p"."customer_id"
), "__dbt_features_fetch_1" AS MATERIALIZED (
  SELECT
    "m"."__dbt_features_row",
    "f"."avg_amount_30d" AS "avg_amount_30d",
    "f"."segment" AS "segment",
    "f"."computed_at" AS "__dbt_features_tie_0"
  FROM "__dbt_features_match_1" AS "m"
  LEFT JOIN "db"."analytics"."customer_spend" AS "f"
    ON "m"."customer_id" = "f"."customer_id"
    AND "m"."__dbt_features_match" = "f"."feature_at"
), "__dbt_features_view_1" AS (
  SELECT
    "__dbt_features_row",
    "avg_amount_30d",
    "segment"
  FROM "__dbt_features_fetch_1"
  WHERE
    (
      SELECT
        COUNT(*)
      FROM "__dbt_features_fetch_1"
    ) <= (
      SELECT
        COUNT(*)
      FROM "__dbt_features_spine"
    )
  UNION ALL
  SELECT
    "__dbt_features_row",
    "avg_amount_30d",
    "segment"
  FROM "__dbt_features_fetch_1"
  WHERE
    (
      SELECT
        COUNT(*)
      FROM "__dbt_features_fetch_1"
    ) > (
      SELECT
        COUNT(*)
      FROM "__dbt_features_spine"
    )
  QUALIFY
    ROW_NUMBER() OVER (
      PARTITION BY "__dbt_features_row"
      ORDER BY "__dbt_features_tie_0" DESC, "avg_amount_30d" DESC, "segment" DESC
    ) = 1
), "__dbt_features_match_2" AS (
  SELECT
    "p"."__dbt_features_row",
    "p"."merchant_id",
    MAX("f"."__dbt_features_ts") AS "__dbt_features_match"
  FROM "__dbt_features_spine" AS "p"
  LEFT JOIN (
    SELECT
      "merchant_id",
      "feature_at" AS "__dbt_features_ts"
    FROM "db"."analytics"."merchant_risk"
    WHERE
      "feature_at" <= (
        SELECT
          MAX("__dbt_features_spine"."__dbt_features_ts")
        FROM "__dbt_features_spine"
      )
  ) AS "f"
    ON "p"."merchant_id" = "f"."merchant_id"
    AND "f"."__dbt_features_ts" <= "p"."__dbt_features_ts"
  GROUP BY
    "p"."__dbt_features_row",
    "p"."merchant_id"
), "__dbt_features_fetch_2" AS MATERIALIZED (
  SELECT
    "m"."__dbt_features_row",
    "f"."fraud_rate" AS "fraud_rate"
  FROM "__dbt_features_match_2" AS "m"
  LEFT JOIN "db"."analytics"."merchant_risk" AS "f"
    ON "m"."merchant_id" = "f"."merchant_id"
    AND "m"."__dbt_features_match" = "f"."feature_at"
), "__dbt_features_view_2" AS (
  SELECT
    "__dbt_features_row",
    "fraud_rate"
  FROM "__dbt_features_fetch_2"
  WHERE
    (
      SELECT
        COUNT(*)
      FROM "__dbt_features_fetch_2"
    ) <= (
      SELECT
        COUNT(*)
      FROM "__dbt_features_spine"
    )
  UNION ALL
  SELECT
    "__dbt_features_row",
    "fraud_rate"
  FROM "__dbt_features_fetch_2"
  WHERE
    (
      SELECT
        COUNT(*)
      FROM "__dbt_features_fetch_2"
    ) > (
      SELECT
        COUNT(*)
      FROM "__dbt_features_spine"
    )
  QUALIFY
    ROW_NUMBER() OVER (PARTITION BY "__dbt_features_row" ORDER BY "fraud_rate" DESC) = 1
)
SELECT
  "__dbt_features_spine"."customer_id",
  "__dbt_features_spine"."merchant_id",
  "__dbt_features_spine"."scored_at",
  "__dbt_features_spine"."label",
  "__dbt_features_view_1"."avg_amount_30d",
  "__dbt_features_view_1"."segment",
  "__dbt_features_view_2"."fraud_rate"
FROM "__dbt_features_spine"
LEFT JOIN "__dbt_features_view_1"
  ON "__dbt_features_spine"."__dbt_features_row" = "__dbt_features_view_1"."__dbt_features_row"
LEFT JOIN "__dbt_features_view_2"
  ON "__dbt_features_spine"."__dbt_features_row" = "__dbt_features_view_2"."__dbt_features_row"
ORDER BY
  "__dbt_features_spine"."__dbt_features_row"
