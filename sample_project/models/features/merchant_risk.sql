-- Daily risk profile of a merchant. A day's row becomes known when the day is over
-- (feature_at = the next midnight), and is published an hour later (computed_at; the var
-- publish_delay_hours).
with daily as (
    select
        merchant_id,
        cast(cast(transaction_at as date) as timestamp) + interval '1 day' as feature_at,
        count(*) as n_txn,
        sum(case when is_fraud then 1 else 0 end) as n_fraud
    from {{ ref('transactions') }}
    group by 1, 2
),

rolling as (
    select
        merchant_id,
        feature_at,
        sum(n_txn) over last_30d as n_txn_30d,
        sum(n_fraud) over last_30d as n_fraud_30d
    from daily
    window last_30d as (
        partition by merchant_id order by feature_at
        range between interval '30 days' preceding and current row
    )
)

select
    rolling.merchant_id,
    rolling.feature_at,
    rolling.feature_at + interval '{{ var("publish_delay_hours") }} hour' as computed_at,
    cast(rolling.n_txn_30d as bigint) as merchant_txn_count_30d,
    cast(rolling.n_fraud_30d as {{ sample_double() }}) / rolling.n_txn_30d as merchant_fraud_rate_30d,
    merchants.category as merchant_category
from rolling
inner join {{ ref('merchants') }} as merchants
    on rolling.merchant_id = merchants.merchant_id
