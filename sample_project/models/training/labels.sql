-- The training spine: one row per scored payment, with the moment the model was asked
-- (a second before the payment was recorded) and what turned out to be true.
select
    transaction_id,
    customer_id,
    merchant_id,
    amount,
    transaction_at - interval '1 second' as scored_at,
    is_fraud
from {{ ref('transactions') }}
where transaction_id % 10 = 0
