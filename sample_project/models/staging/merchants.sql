with s as (
    select cast(i as bigint) as i
    from {{ sample_series(var('n_merchants')) }}
)

select
    i + 1 as merchant_id,
    case (i + 1) % 5
        when 0 then 'electronics'
        when 1 then 'grocery'
        when 2 then 'travel'
        when 3 then 'restaurants'
        else 'gaming'
    end as category
from s
