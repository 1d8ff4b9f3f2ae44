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
    "p"."__dbt_features_row",
    "l"."avg_amount_30d",
    "l"."segment"
  FROM "__dbt_features_spine" AS "p"
  LEFT JOIN LATERAL (
    SELECT
      "f"."avg_amount_30d" AS "avg_amount_30d",
      "f"."segment" AS "segment"
    FROM "db"."analytics"."customer_spend" AS "f"
    WHERE
      "p"."customer_id" = "f"."customer_id"
      AND "f"."feature_at" = (
        SELECT
          "g"."feature_at"
        FROM "db"."analytics"."customer_spend" AS "g"
        WHERE
          "p"."customer_id" = "g"."customer_id"
          AND "g"."feature_at" <= "p"."__dbt_features_ts"
          AND "g"."feature_at" >= "p"."__dbt_features_ts" - INTERVAL '2592000 SECOND'
        ORDER BY
          "g"."feature_at" DESC
        LIMIT 1
      )
    ORDER BY
      "f"."computed_at" DESC NULLS LAST,
      "f"."avg_amount_30d" DESC NULLS LAST,
      "f"."segment" COLLATE "C" DESC NULLS LAST
    LIMIT 1
  ) AS "l"
    ON TRUE
), "__dbt_features_view_2" AS (
  SELECT
    "p"."__dbt_features_row",
    "l"."fraud_rate"
  FROM "__dbt_features_spine" AS "p"
  LEFT JOIN LATERAL (
    SELECT
      "f"."fraud_rate" AS "fraud_rate"
    FROM "db"."analytics"."merchant_risk" AS "f"
    WHERE
      "p"."merchant_id" = "f"."merchant_id"
      AND "f"."feature_at" = (
        SELECT
          "g"."feature_at"
        FROM "db"."analytics"."merchant_risk" AS "g"
        WHERE
          "p"."merchant_id" = "g"."merchant_id"
          AND "g"."feature_at" <= "p"."__dbt_features_ts"
        ORDER BY
          "g"."feature_at" DESC
        LIMIT 1
      )
    ORDER BY
      "f"."fraud_rate" DESC NULLS LAST
    LIMIT 1
  ) AS "l"
    ON TRUE
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
