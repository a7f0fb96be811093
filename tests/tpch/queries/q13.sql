-- Q13 customer distribution (WORD1 = special, WORD2 = requests). The spec's spelling names the
-- columns in the alias, `) as c_orders (c_custkey, c_count)`, which the planner refuses under
-- DIFFERENTIAL (0A000 "subquery alias with a column list"); the count is named inside instead,
-- which is the same query.
select c_count, count(*) as custdist
from (
    select c_custkey, count(o_orderkey) as c_count
    from customer left outer join orders
        on c_custkey = o_custkey and o_comment not like '%special%requests%'
    group by c_custkey
) as c_orders
group by c_count
order by custdist desc, c_count desc
