with s as (
    select cast(i as bigint) as i
    from {{ sample_series(var('n_customers')) }}
)

select
    i + 1 as customer_id,
    case {{ sample_hash('i', 5, 3) }}
        when 0 then 'retail'
        when 1 then 'business'
        else 'student'
    end as segment,
    cast(cast('{{ var("start_date") }}' as timestamp) - ({{ sample_hash('i', 77, 1500) }}) * interval '1 day' as date) as signup_date
from s
