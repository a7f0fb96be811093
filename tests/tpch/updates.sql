-- Updates beyond RF1/RF2, cycle current_setting('tpch.cycle') (each cycle picks other rows):
-- quantities, prices, dates and statuses of lineitems, statuses, priorities and comments of
-- orders, prices and costs of parts, availability of partsupp (also where q20 looks),
-- balances and segments of customers and suppliers, supplier complaints (q16), order comments
-- in and out of 'special ... requests' (q13's join condition), and customers who never order
-- deleted (q13's unmatched left rows) and added.

-- 0.1% of lineitems: a new quantity, and the extended price that goes with it.
UPDATE lineitem l SET
    l_quantity = tpch_int(l_orderkey * 8 + l_linenumber, 101 + current_setting('tpch.cycle')::int * 1000, 1, 50),
    l_extendedprice = tpch_int(l_orderkey * 8 + l_linenumber, 101 + current_setting('tpch.cycle')::int * 1000, 1, 50)
        * p.p_retailprice
FROM part p
WHERE p.p_partkey = l.l_partkey
  AND tpch_rand(l.l_orderkey * 8 + l.l_linenumber, 100 + current_setting('tpch.cycle')::int * 1000) < 0.001;

-- 0.1% of lineitems: return flag, ship mode, discount, and a receipt date moved across the
-- commit date (q4, q12, q21).
UPDATE lineitem SET
    l_returnflag = CASE l_returnflag WHEN 'R' THEN 'A' WHEN 'A' THEN 'R' ELSE 'N' END,
    l_shipmode = (ARRAY['REG AIR', 'AIR', 'RAIL', 'SHIP', 'TRUCK', 'MAIL', 'FOB'])
        [tpch_int(l_orderkey * 8 + l_linenumber, 103 + current_setting('tpch.cycle')::int * 1000, 1, 7)],
    l_discount = tpch_int(l_orderkey * 8 + l_linenumber, 104 + current_setting('tpch.cycle')::int * 1000, 0, 10) / 100.0,
    l_receiptdate = CASE WHEN l_receiptdate > l_commitdate THEN l_commitdate - 1
                         ELSE greatest(l_commitdate + 1, l_shipdate + 1) END
WHERE tpch_rand(l_orderkey * 8 + l_linenumber, 102 + current_setting('tpch.cycle')::int * 1000) < 0.001;

-- 0.2% of orders: status and priority; 0.2%: comment (some gain 'special ... requests').
UPDATE orders SET
    o_orderstatus = CASE o_orderstatus WHEN 'F' THEN 'O' WHEN 'O' THEN 'P' ELSE 'F' END,
    o_orderpriority = (ARRAY['1-URGENT', '2-HIGH', '3-MEDIUM', '4-NOT SPECIFIED', '5-LOW'])
        [tpch_int(o_orderkey, 106 + current_setting('tpch.cycle')::int * 1000, 1, 5)]
WHERE tpch_rand(o_orderkey, 105 + current_setting('tpch.cycle')::int * 1000) < 0.002;
UPDATE orders SET o_comment = CASE WHEN o_comment LIKE '%special%requests%'
                                   THEN 'furiously regular deposits'
                                   ELSE 'slyly special ' || left(o_comment, 40) || ' requests' END
WHERE tpch_rand(o_orderkey, 107 + current_setting('tpch.cycle')::int * 1000) < 0.002;

-- 0.5% of parts: retail price up 1%; 0.2% of partsupp: cost and availability.
UPDATE part SET p_retailprice = round(p_retailprice * 1.01, 2)
WHERE tpch_rand(p_partkey, 108 + current_setting('tpch.cycle')::int * 1000) < 0.005;
UPDATE partsupp SET
    ps_supplycost = tpch_int(ps_partkey * 4 + ps_suppkey, 110 + current_setting('tpch.cycle')::int * 1000, 100, 100000) / 100.0,
    ps_availqty = tpch_int(ps_partkey * 4 + ps_suppkey, 111 + current_setting('tpch.cycle')::int * 1000, 1, 9999)
WHERE tpch_rand(ps_partkey * 4 + ps_suppkey, 109 + current_setting('tpch.cycle')::int * 1000) < 0.002;

-- 0.5% of customers: balance and market segment.
UPDATE customer SET
    c_acctbal = tpch_int(c_custkey, 113 + current_setting('tpch.cycle')::int * 1000, -99999, 999999) / 100.0,
    c_mktsegment = (ARRAY['AUTOMOBILE', 'BUILDING', 'FURNITURE', 'MACHINERY', 'HOUSEHOLD'])
        [tpch_int(c_custkey, 114 + current_setting('tpch.cycle')::int * 1000, 1, 5)]
WHERE tpch_rand(c_custkey, 112 + current_setting('tpch.cycle')::int * 1000) < 0.005;

-- 1% of the customers who never order (key a multiple of 3, or added below) are deleted, and
-- two new ones arrive.
DELETE FROM customer c
WHERE (c_custkey % 3 = 0 OR c_custkey > (SELECT greatest(150, floor(150000 * current_setting('tpch.sf')::numeric)) ))
  AND tpch_rand(c_custkey, 115 + current_setting('tpch.cycle')::int * 1000) < 0.01
  AND NOT EXISTS (SELECT FROM orders o WHERE o.o_custkey = c.c_custkey);
INSERT INTO customer
SELECT m + i, 'Customer#' || lpad((m + i)::text, 9, '0'), left(md5('c' || (m + i)), 20),
       i * 7 % 25, (i * 7 % 25 + 10) || '-555-010-' || (1000 + i * 11),
       tpch_int(m + i, 5, -99999, 999999) / 100.0,
       (ARRAY['AUTOMOBILE', 'BUILDING', 'FURNITURE', 'MACHINERY', 'HOUSEHOLD'])[tpch_int(m + i, 6, 1, 5)],
       tpch_text(m + i, 7, 70)
FROM (SELECT max(c_custkey) AS m FROM customer) mm, generate_series(1, 2) i;

-- 2% of suppliers: balance; one supplier starts or stops complaining (q16).
UPDATE supplier SET s_acctbal = tpch_int(s_suppkey, 117 + current_setting('tpch.cycle')::int * 1000, -99999, 999999) / 100.0
WHERE tpch_rand(s_suppkey, 116 + current_setting('tpch.cycle')::int * 1000) < 0.02;
UPDATE supplier SET s_comment = CASE WHEN s_comment LIKE '%Customer%Complaints%'
                                     THEN 'carefully final deposits'
                                     ELSE 'slyly Customer regular Complaints' END
WHERE s_suppkey = 1 + (current_setting('tpch.cycle')::int * 37) % (SELECT count(*) FROM supplier);

-- Half of the supply of 'forest' parts by Canadian suppliers flips between scarce and plenty
-- (q20: a supplier qualifies when its availability exceeds half its 1994 shipments).
UPDATE partsupp SET ps_availqty = CASE WHEN ps_availqty > 5000 THEN 1 ELSE 9999 END
WHERE ps_partkey IN (SELECT p_partkey FROM part WHERE p_name LIKE 'forest%')
  AND ps_suppkey IN (SELECT s_suppkey FROM supplier JOIN nation ON n_nationkey = s_nationkey
                     WHERE n_name = 'CANADA')
  AND tpch_rand(ps_partkey * 4 + ps_suppkey, 118 + current_setting('tpch.cycle')::int * 1000) < 0.5;
