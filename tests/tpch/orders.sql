-- Orders current_setting('tpch.first_order') .. + current_setting('tpch.n_orders') - 1 with
-- their lineitems (spec 4.2.3): the initial population (after generate.sql) and RF1's new
-- sales. Customers are those whose key is not a multiple of 3 (the others never order);
-- o_orderstatus and o_totalprice follow from the lineitems. Values are hashes of the keys.

CREATE TEMP TABLE tpch_new_orders AS
SELECT k AS o_orderkey,
       CASE WHEN c % 3 = 0 THEN c - 1 ELSE c END AS o_custkey,
       date '1992-01-01' + tpch_int(k, 2, 0, 2405) AS o_orderdate,
       (ARRAY['1-URGENT', '2-HIGH', '3-MEDIUM', '4-NOT SPECIFIED', '5-LOW'])[tpch_int(k, 3, 1, 5)]
           AS o_orderpriority,
       'Clerk#' || lpad(tpch_int(k, 4, 1, greatest(10, floor(1000 * sf))::int)::text, 9, '0')
           AS o_clerk,
       tpch_text(k, 5, tpch_int(k, 6, 19, 78)) AS o_comment
FROM (SELECT current_setting('tpch.sf')::numeric AS sf,
             current_setting('tpch.first_order')::bigint AS first,
             current_setting('tpch.n_orders')::bigint AS n) p,
     generate_series(p.first, p.first + p.n - 1) k,
     LATERAL (SELECT tpch_int(k, 1, 1, greatest(150, floor(150000 * sf))::int) AS c) cc;

CREATE TEMP TABLE tpch_new_lines AS
SELECT o.o_orderkey AS l_orderkey, x.partkey AS l_partkey,
       (x.partkey + x.si * (s.n / 4 + (x.partkey - 1) / s.n)) % s.n + 1 AS l_suppkey,
       l AS l_linenumber, x.qty AS l_quantity, x.qty * p.p_retailprice AS l_extendedprice,
       x.disc AS l_discount, x.tax AS l_tax,
       CASE WHEN d.receipt <= date '1995-06-17'
            THEN CASE WHEN tpch_rand(x.h, 11) < 0.5 THEN 'R' ELSE 'A' END ELSE 'N' END
           AS l_returnflag,
       CASE WHEN d.ship > date '1995-06-17' THEN 'O' ELSE 'F' END AS l_linestatus,
       d.ship AS l_shipdate, d.commit_ AS l_commitdate, d.receipt AS l_receiptdate,
       (ARRAY['DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'])[tpch_int(x.h, 12, 1, 4)]
           AS l_shipinstruct,
       (ARRAY['REG AIR', 'AIR', 'RAIL', 'SHIP', 'TRUCK', 'MAIL', 'FOB'])[tpch_int(x.h, 13, 1, 7)]
           AS l_shipmode,
       tpch_text(x.h, 14, 27) AS l_comment
FROM tpch_new_orders o
CROSS JOIN (SELECT count(*)::int AS n FROM supplier) s
CROSS JOIN (SELECT count(*)::int AS n FROM part) pc
CROSS JOIN LATERAL generate_series(1, tpch_int(o.o_orderkey, 7, 1, 7)) l
CROSS JOIN LATERAL (SELECT o.o_orderkey * 8 + l AS h) hh
CROSS JOIN LATERAL (SELECT hh.h, tpch_int(hh.h, 1, 1, pc.n) AS partkey, tpch_int(hh.h, 2, 0, 3) AS si,
                           tpch_int(hh.h, 3, 1, 50)::numeric AS qty,
                           tpch_int(hh.h, 4, 0, 10) / 100.0 AS disc,
                           tpch_int(hh.h, 5, 0, 8) / 100.0 AS tax) x
JOIN part p ON p.p_partkey = x.partkey
CROSS JOIN LATERAL (SELECT o.o_orderdate + tpch_int(x.h, 8, 1, 121) AS ship,
                           o.o_orderdate + tpch_int(x.h, 9, 30, 90) AS commit_) d0
CROSS JOIN LATERAL (SELECT d0.ship, d0.commit_, d0.ship + tpch_int(x.h, 10, 1, 30) AS receipt) d;

INSERT INTO orders
SELECT o.o_orderkey, o.o_custkey,
       CASE WHEN bool_and(l.l_linestatus = 'F') THEN 'F'
            WHEN bool_and(l.l_linestatus = 'O') THEN 'O' ELSE 'P' END,
       round(sum(l.l_extendedprice * (1 + l.l_tax) * (1 - l.l_discount)), 2),
       o.o_orderdate, o.o_orderpriority, o.o_clerk, 0, o.o_comment
FROM tpch_new_orders o JOIN tpch_new_lines l ON l.l_orderkey = o.o_orderkey
GROUP BY o.o_orderkey, o.o_custkey, o.o_orderdate, o.o_orderpriority, o.o_clerk, o.o_comment;

INSERT INTO lineitem SELECT * FROM tpch_new_lines;

DROP TABLE tpch_new_orders, tpch_new_lines;
