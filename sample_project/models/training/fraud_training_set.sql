-- The fraud model's training set, built by dbt in the project's own warehouse: each scored
-- payment with the customer's and the merchant's features as they were when it was scored.
-- Same rows as `dbt-features training-set --spine labels --spine-timestamp scored_at ...`.
select * from {{ dbt_features.training_set(
    ref('labels'),
    ['customer_spend:avg_amount_30d', 'customer_spend:txn_count_7d', 'merchant_risk:*'],
    spine_timestamp='scored_at'
) }}
