WITH `__dbt_features_spine` AS (
  SELECT
    `customer_id`,
    `merchant_id`,
    `scored_at`,
    `label`,
    `scored_at` AS `__dbt_features_ts`
  FROM `db`.`analytics`.`labels`
), `__dbt_features_carry_1` AS (
  SELECT
    `p`.`customer_id`,
    `p`.`merchant_id`,
    `p`.`scored_at`,
    `p`.`label`,
    `p`.`__dbt_features_ts`,
    CASE
      WHEN `p`.`__dbt_features_hit`.`t` >= `p`.`__dbt_features_ts` - INTERVAL '2592000' SECOND
      THEN `p`.`__dbt_features_hit`.`v0`
    END AS `avg_amount_30d`,
    CASE
      WHEN `p`.`__dbt_features_hit`.`t` >= `p`.`__dbt_features_ts` - INTERVAL '2592000' SECOND
      THEN `p`.`__dbt_features_hit`.`v1`
    END AS `segment`
  FROM (
    SELECT
      `u`.`customer_id`,
      `u`.`merchant_id`,
      `u`.`scored_at`,
      `u`.`label`,
      `u`.`__dbt_features_ts`,
      `u`.`__dbt_features_side`,
      LAST_VALUE(`__dbt_features_hit`) IGNORE NULLS OVER (
        PARTITION BY `customer_id`
        ORDER BY `__dbt_features_ts` ASC, `__dbt_features_side` ASC, `__dbt_features_hit`.`c` ASC, `__dbt_features_hit`.`v0` ASC, `__dbt_features_hit`.`v1` ASC
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
      ) AS `__dbt_features_hit`
    FROM (
      SELECT
        `__dbt_features_spine`.`customer_id`,
        `__dbt_features_spine`.`merchant_id`,
        `__dbt_features_spine`.`scored_at`,
        `__dbt_features_spine`.`label`,
        `__dbt_features_spine`.`__dbt_features_ts`,
        1 AS `__dbt_features_side`,
        NULL AS `__dbt_features_hit`
      FROM `__dbt_features_spine`
      UNION ALL
      SELECT
        `f`.`customer_id` AS `customer_id`,
        NULL AS `merchant_id`,
        NULL AS `scored_at`,
        NULL AS `label`,
        `f`.`feature_at` AS `__dbt_features_ts`,
        0 AS `__dbt_features_side`,
        STRUCT(
          `f`.`feature_at` AS `t`,
          `f`.`computed_at` AS `c`,
          `f`.`avg_amount_30d` AS `v0`,
          `f`.`segment` AS `v1`
        ) AS `__dbt_features_hit`
      FROM `db`.`analytics`.`customer_spend` AS `f`
      WHERE
        NOT `f`.`customer_id` IS NULL
        AND NOT `f`.`feature_at` IS NULL
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
    ) AS `u`
  ) AS `p`
  WHERE
    `p`.`__dbt_features_side` = 1
), `__dbt_features_carry_2` AS (
  SELECT
    `p`.`customer_id`,
    `p`.`merchant_id`,
    `p`.`scored_at`,
    `p`.`label`,
    `p`.`__dbt_features_ts`,
    `p`.`avg_amount_30d`,
    `p`.`segment`,
    `p`.`__dbt_features_hit`.`v0` AS `fraud_rate`
  FROM (
    SELECT
      `u`.`customer_id`,
      `u`.`merchant_id`,
      `u`.`scored_at`,
      `u`.`label`,
      `u`.`__dbt_features_ts`,
      `u`.`avg_amount_30d`,
      `u`.`segment`,
      `u`.`__dbt_features_side`,
      LAST_VALUE(`__dbt_features_hit`) IGNORE NULLS OVER (
        PARTITION BY `merchant_id`
        ORDER BY `__dbt_features_ts` ASC, `__dbt_features_side` ASC, `__dbt_features_hit`.`v0` ASC
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
      ) AS `__dbt_features_hit`
    FROM (
      SELECT
        `__dbt_features_carry_1`.`customer_id`,
        `__dbt_features_carry_1`.`merchant_id`,
        `__dbt_features_carry_1`.`scored_at`,
        `__dbt_features_carry_1`.`label`,
        `__dbt_features_carry_1`.`__dbt_features_ts`,
        `__dbt_features_carry_1`.`avg_amount_30d`,
        `__dbt_features_carry_1`.`segment`,
        1 AS `__dbt_features_side`,
        NULL AS `__dbt_features_hit`
      FROM `__dbt_features_carry_1`
      UNION ALL
      SELECT
        NULL AS `customer_id`,
        `f`.`merchant_id` AS `merchant_id`,
        NULL AS `scored_at`,
        NULL AS `label`,
        `f`.`feature_at` AS `__dbt_features_ts`,
        NULL AS `avg_amount_30d`,
        NULL AS `segment`,
        0 AS `__dbt_features_side`,
        STRUCT(`f`.`feature_at` AS `t`, `f`.`fraud_rate` AS `v0`) AS `__dbt_features_hit`
      FROM `db`.`analytics`.`merchant_risk` AS `f`
      WHERE
        NOT `f`.`merchant_id` IS NULL
        AND NOT `f`.`feature_at` IS NULL
        AND `f`.`feature_at` <= (
          SELECT
            MAX(`__dbt_features_spine`.`__dbt_features_ts`)
          FROM `__dbt_features_spine`
        )
    ) AS `u`
  ) AS `p`
  WHERE
    `p`.`__dbt_features_side` = 1
)
SELECT /*+ REPARTITION(1) */
  `__dbt_features_carry_2`.`customer_id`,
  `__dbt_features_carry_2`.`merchant_id`,
  `__dbt_features_carry_2`.`scored_at`,
  `__dbt_features_carry_2`.`label`,
  `__dbt_features_carry_2`.`avg_amount_30d`,
  `__dbt_features_carry_2`.`segment`,
  `__dbt_features_carry_2`.`fraud_rate`
FROM `__dbt_features_carry_2`
ORDER BY
  `__dbt_features_carry_2`.`__dbt_features_ts` NULLS LAST
