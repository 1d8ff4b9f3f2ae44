WITH `__dbt_features_spine` AS (
  SELECT
    `customer_id`,
    `merchant_id`,
    `scored_at`,
    `label`,
    ROW_NUMBER() OVER (ORDER BY `scored_at` NULLS LAST) AS `__dbt_features_row`,
    `scored_at` AS `__dbt_features_ts`
  FROM `db`.`analytics`.`labels`
), `__dbt_features_view_1` AS (
  SELECT
    `r`.`customer_id`,
    `r`.`__dbt_features_ts`,
    `r`.`avg_amount_30d`,
    `r`.`segment`
  FROM (
    SELECT
      `p`.`customer_id`,
      `p`.`__dbt_features_ts`,
      `f`.`avg_amount_30d` AS `avg_amount_30d`,
      `f`.`segment` AS `segment`,
      ROW_NUMBER() OVER (
        PARTITION BY `p`.`customer_id`, `p`.`__dbt_features_ts`
        ORDER BY `f`.`feature_at` DESC, `f`.`computed_at` DESC, `f`.`avg_amount_30d` DESC, `f`.`segment` DESC
      ) AS `__dbt_features_rn`
    FROM `__dbt_features_spine` AS `p`
    LEFT JOIN `db`.`analytics`.`customer_spend` AS `f`
      ON `p`.`customer_id` = `f`.`customer_id`
      AND `f`.`feature_at` <= `p`.`__dbt_features_ts`
      AND `f`.`feature_at` >= `p`.`__dbt_features_ts` - INTERVAL '2592000' SECOND
      AND (
        `f`.`computed_at` IS NULL OR `f`.`computed_at` <= `p`.`__dbt_features_ts`
      )
      AND `f`.`feature_at` <= (
        SELECT
          MAX(`__dbt_features_spine`.`__dbt_features_ts`)
        FROM `__dbt_features_spine`
      )
      AND `f`.`feature_at` >= (
        SELECT
          MIN(`__dbt_features_spine`.`__dbt_features_ts`)
        FROM `__dbt_features_spine`
      ) - INTERVAL '2592000' SECOND
  ) AS `r`
  WHERE
    `r`.`__dbt_features_rn` = 1
), `__dbt_features_view_2` AS (
  SELECT
    `r`.`merchant_id`,
    `r`.`__dbt_features_ts`,
    `r`.`fraud_rate`
  FROM (
    SELECT
      `p`.`merchant_id`,
      `p`.`__dbt_features_ts`,
      `f`.`fraud_rate` AS `fraud_rate`,
      ROW_NUMBER() OVER (
        PARTITION BY `p`.`merchant_id`, `p`.`__dbt_features_ts`
        ORDER BY `f`.`feature_at` DESC, `f`.`fraud_rate` DESC
      ) AS `__dbt_features_rn`
    FROM `__dbt_features_spine` AS `p`
    LEFT JOIN `db`.`analytics`.`merchant_risk` AS `f`
      ON `p`.`merchant_id` = `f`.`merchant_id`
      AND `f`.`feature_at` <= `p`.`__dbt_features_ts`
      AND `f`.`feature_at` <= (
        SELECT
          MAX(`__dbt_features_spine`.`__dbt_features_ts`)
        FROM `__dbt_features_spine`
      )
  ) AS `r`
  WHERE
    `r`.`__dbt_features_rn` = 1
)
SELECT
  `__dbt_features_spine`.`customer_id`,
  `__dbt_features_spine`.`merchant_id`,
  `__dbt_features_spine`.`scored_at`,
  `__dbt_features_spine`.`label`,
  `__dbt_features_view_1`.`avg_amount_30d`,
  `__dbt_features_view_1`.`segment`,
  `__dbt_features_view_2`.`fraud_rate`
FROM `__dbt_features_spine`
LEFT JOIN `__dbt_features_view_1`
  ON `__dbt_features_spine`.`customer_id` = `__dbt_features_view_1`.`customer_id`
  AND `__dbt_features_spine`.`__dbt_features_ts` = `__dbt_features_view_1`.`__dbt_features_ts`
LEFT JOIN `__dbt_features_view_2`
  ON `__dbt_features_spine`.`merchant_id` = `__dbt_features_view_2`.`merchant_id`
  AND `__dbt_features_spine`.`__dbt_features_ts` = `__dbt_features_view_2`.`__dbt_features_ts`
ORDER BY
  `__dbt_features_spine`.`__dbt_features_row`
