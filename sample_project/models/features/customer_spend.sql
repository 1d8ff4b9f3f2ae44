-- How a customer spends, as of each of their payments. One definition of "average amount":
-- training sets and the online store both read these columns, so a 30-day mean can never
-- silently become a 7-day mean in one of them.
{{ config(
    meta={
        'feature_store': {
            'entity': 'customer_id',
            'entity_name': 'customer',
            'timestamp': 'feature_at',
            'ttl': '30d',
            'online': true,
            'owner': 'risk-features@example.com',
            'tags': ['payments'],
        }
    }
) }}

select
    customer_id,
    transaction_at as feature_at,
    avg(amount) over last_30d as avg_amount_30d,
    avg(amount) over last_7d as avg_amount_7d,
    count(*) over last_7d as txn_count_7d
from {{ ref('transactions') }}
window
    last_30d as (
        partition by customer_id order by transaction_at
        range between interval '30 days' preceding and current row
    ),
    last_7d as (
        partition by customer_id order by transaction_at
        range between interval '7 days' preceding and current row
    )
