-- Deterministic card transactions: `n_transactions` rows spread evenly over `n_days` days.
-- Generated in SQL (no seed file) so the benchmarks can ask for 10M rows with one dbt var.
with s as (
    select cast(i as bigint) as i
    from {{ sample_series(var('n_transactions')) }}
),

raw as (
    select
        i + 1 as transaction_id,
        cast(1 + {{ sample_hash('i', 17, var('n_customers')) }} as bigint) as customer_id,
        cast(1 + {{ sample_hash('i', 911, var('n_merchants')) }} as bigint) as merchant_id,
        cast({{ sample_hash('i', 31337, 50000) }} as {{ sample_double() }}) / 100.0 + 1.0 as amount,
        cast(floor(i * 86400.0 * {{ var('n_days') }} / {{ var('n_transactions') }}) as bigint) as offset_s,
        {{ sample_hash('i', 4242, 1000) }} as fraud_draw
    from s
)

select
    transaction_id,
    customer_id,
    merchant_id,
    amount,
    cast('{{ var("start_date") }}' as timestamp) + offset_s * interval '1 second' as transaction_at,
    -- Large payments at a few risky merchants are more often fraud: something to learn.
    case
        when fraud_draw < 10 then true
        when amount > 400 and merchant_id % 7 = 0 and fraud_draw < 150 then true
        else false
    end as is_fraud
from raw
