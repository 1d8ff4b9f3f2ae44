WITH "__dbt_features_spine" AS (
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
    "p"."customer_id",
    "p"."merchant_id",
    "p"."scored_at",
    "p"."label",
    "p"."__dbt_features_row",
    "p"."__dbt_features_ts",
    CASE
      WHEN "f"."__dbt_features_ts" >= "p"."__dbt_features_ts" - INTERVAL '2592000' SECOND
      THEN "f"."__dbt_features_ts"
    END AS "__dbt_features_match"
  FROM "__dbt_features_spine" AS "p"
  ASOF LEFT JOIN (
    SELECT
      "customer_id",
      "feature_at" AS "__dbt_features_ts"
    FROM "db"."analytics"."customer_spend"
  ) AS "f"
    ON "p"."customer_id" = "f"."customer_id"
    AND "p"."__dbt_features_ts" >= "f"."__dbt_features_ts"
), "__dbt_features_view_1" AS (
  SELECT
    "m"."customer_id",
    "m"."merchant_id",
    "m"."scored_at",
    "m"."label",
    "m"."__dbt_features_row",
    "m"."__dbt_features_ts",
    "f"."avg_amount_30d" AS "avg_amount_30d",
    "f"."segment" AS "segment"
  FROM "__dbt_features_match_1" AS "m"
  LEFT JOIN "db"."analytics"."customer_spend" AS "f"
    ON "m"."customer_id" = "f"."customer_id"
    AND "m"."__dbt_features_match" = "f"."feature_at"
  QUALIFY
    ROW_NUMBER() OVER (
      PARTITION BY "m"."__dbt_features_row"
      ORDER BY "f"."computed_at" DESC, "f"."avg_amount_30d" DESC, "f"."segment" DESC
    ) = 1
), "__dbt_features_match_2" AS (
  SELECT
    "p"."customer_id",
    "p"."merchant_id",
    "p"."scored_at",
    "p"."label",
    "p"."avg_amount_30d",
    "p"."segment",
    "p"."__dbt_features_row",
    "p"."__dbt_features_ts",
    "f"."__dbt_features_ts" AS "__dbt_features_match"
  FROM "__dbt_features_view_1" AS "p"
  ASOF LEFT JOIN (
    SELECT
      "merchant_id",
      "feature_at" AS "__dbt_features_ts"
    FROM "db"."analytics"."merchant_risk"
  ) AS "f"
    ON "p"."merchant_id" = "f"."merchant_id"
    AND "p"."__dbt_features_ts" >= "f"."__dbt_features_ts"
), "__dbt_features_view_2" AS (
  SELECT
    "m"."customer_id",
    "m"."merchant_id",
    "m"."scored_at",
    "m"."label",
    "m"."avg_amount_30d",
    "m"."segment",
    "m"."__dbt_features_row",
    "m"."__dbt_features_ts",
    "f"."fraud_rate" AS "fraud_rate"
  FROM "__dbt_features_match_2" AS "m"
  LEFT JOIN "db"."analytics"."merchant_risk" AS "f"
    ON "m"."merchant_id" = "f"."merchant_id"
    AND "m"."__dbt_features_match" = "f"."feature_at"
  QUALIFY
    ROW_NUMBER() OVER (PARTITION BY "m"."__dbt_features_row" ORDER BY "f"."fraud_rate" DESC) = 1
)
SELECT
  "__dbt_features_view_2"."customer_id",
  "__dbt_features_view_2"."merchant_id",
  "__dbt_features_view_2"."scored_at",
  "__dbt_features_view_2"."label",
  "__dbt_features_view_2"."avg_amount_30d",
  "__dbt_features_view_2"."segment",
  "__dbt_features_view_2"."fraud_rate"
FROM "__dbt_features_view_2"
ORDER BY
  "__dbt_features_view_2"."__dbt_features_row"
