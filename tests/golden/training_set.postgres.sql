WITH "__dbt_features_spine" AS MATERIALIZED (
  SELECT
    "customer_id",
    "merchant_id",
    "scored_at",
    "label",
    ROW_NUMBER() OVER () AS "__dbt_features_row",
    "scored_at" AS "__dbt_features_ts"
  FROM "db"."analytics"."labels"
), "__dbt_features_view_1" AS (
  SELECT
    "r"."__dbt_features_row",
    "r"."avg_amount_30d",
    "r"."segment"
  FROM (
    SELECT
      "p"."__dbt_features_row",
      "f"."avg_amount_30d" AS "avg_amount_30d",
      "f"."segment" AS "segment",
      ROW_NUMBER() OVER (
        PARTITION BY "p"."__dbt_features_row"
        ORDER BY "f"."feature_at" DESC NULLS LAST, "f"."computed_at" DESC NULLS LAST, "f"."avg_amount_30d" DESC NULLS LAST, "f"."segment" COLLATE "C" DESC NULLS LAST
      ) AS "__dbt_features_rn"
    FROM "__dbt_features_spine" AS "p"
    LEFT JOIN "db"."analytics"."customer_spend" AS "f"
      ON "p"."customer_id" = "f"."customer_id"
      AND "f"."feature_at" <= "p"."__dbt_features_ts"
      AND "f"."feature_at" >= "p"."__dbt_features_ts" - INTERVAL '2592000 SECOND'
      AND "f"."feature_at" <= (
        SELECT
          MAX("__dbt_features_spine"."__dbt_features_ts")
        FROM "__dbt_features_spine"
      )
      AND "f"."feature_at" >= (
        SELECT
          MIN("__dbt_features_spine"."__dbt_features_ts")
        FROM "__dbt_features_spine"
      ) - INTERVAL '2592000 SECOND'
  ) AS "r"
  WHERE
    "r"."__dbt_features_rn" = 1
), "__dbt_features_view_2" AS (
  SELECT
    "r"."__dbt_features_row",
    "r"."fraud_rate"
  FROM (
    SELECT
      "p"."__dbt_features_row",
      "f"."fraud_rate" AS "fraud_rate",
      ROW_NUMBER() OVER (
        PARTITION BY "p"."__dbt_features_row"
        ORDER BY "f"."feature_at" DESC NULLS LAST, "f"."fraud_rate" DESC NULLS LAST
      ) AS "__dbt_features_rn"
    FROM "__dbt_features_spine" AS "p"
    LEFT JOIN "db"."analytics"."merchant_risk" AS "f"
      ON "p"."merchant_id" = "f"."merchant_id"
      AND "f"."feature_at" <= "p"."__dbt_features_ts"
      AND "f"."feature_at" <= (
        SELECT
          MAX("__dbt_features_spine"."__dbt_features_ts")
        FROM "__dbt_features_spine"
      )
  ) AS "r"
  WHERE
    "r"."__dbt_features_rn" = 1
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
