-- TPC-H-shaped data (spec 4.2.3) generated in SQL, without dbgen, at scale factor
-- current_setting('tpch.sf') (set it first: SET tpch.sf = '0.01'). Fills region, nation,
-- supplier (10,000 x SF), part (200,000 x SF), partsupp (4 per part), customer
-- (150,000 x SF); then orders.sql, run next, adds the orders (1,500,000 x SF; keys 1..N, dense
-- rather than the spec's sparse keys) and their 1-7 lineitems each. Values follow the spec's
-- domains: names and types from its word lists, prices from its formulas, dates between
-- 1992-01-01 and 1998-12-31, CURRENTDATE 1995-06-17 deciding return flags and line statuses,
-- phone prefixes from the nation (q22), one customer in three without orders (q13, q22), some
-- supplier comments with 'Customer ... Complaints' (q16) and order comments with
-- 'special ... requests' (q13). Deterministic: every value is a hash of its key (schema.sql).

INSERT INTO region VALUES
    (0, 'AFRICA', 'lar deposits'), (1, 'AMERICA', 'hs use ironic, even requests'),
    (2, 'ASIA', 'ges. thinly even pinto beans'), (3, 'EUROPE', 'ly final courts cajole'),
    (4, 'MIDDLE EAST', 'uickly special accounts cajole');

INSERT INTO nation (n_nationkey, n_name, n_regionkey, n_comment)
SELECT k - 1, name, region, tpch_text(k, 1, 40)
FROM unnest(ARRAY['ALGERIA', 'ARGENTINA', 'BRAZIL', 'CANADA', 'EGYPT', 'ETHIOPIA', 'FRANCE',
        'GERMANY', 'INDIA', 'INDONESIA', 'IRAN', 'IRAQ', 'JAPAN', 'JORDAN', 'KENYA', 'MOROCCO',
        'MOZAMBIQUE', 'PERU', 'CHINA', 'ROMANIA', 'SAUDI ARABIA', 'VIETNAM', 'RUSSIA',
        'UNITED KINGDOM', 'UNITED STATES'],
    ARRAY[0, 1, 1, 1, 4, 0, 3, 3, 2, 2, 4, 4, 2, 4, 0, 0, 0, 1, 2, 3, 4, 2, 3, 3, 1])
    WITH ORDINALITY AS n(name, region, k);

INSERT INTO supplier
SELECT k, 'Supplier#' || lpad(k::text, 9, '0'), left(md5('s' || k), 10 + tpch_int(k, 1, 0, 15)),
       nk, (nk + 10) || '-' || tpch_int(k, 2, 100, 999) || '-' || tpch_int(k, 3, 100, 999) || '-'
           || tpch_int(k, 4, 1000, 9999),
       tpch_int(k, 5, -99999, 999999) / 100.0,
       -- about 5% complain (the spec: 5 in 10,000; more here so that small scales have some)
       CASE tpch_int(k, 6, 1, 40)
           WHEN 1 THEN tpch_text(k, 7, 15) || ' Customer ' || tpch_text(k, 8, 15) || ' Complaints'
           WHEN 2 THEN tpch_text(k, 7, 15) || ' Customer ' || tpch_text(k, 8, 15) || ' Recommends'
           ELSE tpch_text(k, 7, 60) END
FROM generate_series(1, greatest(10, floor(10000 * current_setting('tpch.sf')::numeric))::int) k,
     LATERAL (SELECT tpch_int(k, 0, 0, 24) AS nk) n;

INSERT INTO part
SELECT k,
       (SELECT string_agg(c, ' ' ORDER BY i) FROM (SELECT (ARRAY['almond', 'antique',
           'aquamarine', 'azure', 'beige', 'bisque', 'black', 'blanched', 'blue', 'blush',
           'brown', 'burlywood', 'burnished', 'chartreuse', 'chiffon', 'chocolate', 'coral',
           'cornflower', 'cornsilk', 'cream', 'cyan', 'dark', 'deep', 'dim', 'dodger', 'drab',
           'firebrick', 'floral', 'forest', 'frosted', 'gainsboro', 'ghost', 'goldenrod', 'green',
           'grey', 'honeydew', 'hot', 'indian', 'ivory', 'khaki', 'lace', 'lavender', 'lawn',
           'lemon', 'light', 'lime', 'linen', 'magenta', 'maroon', 'medium', 'metallic',
           'midnight', 'mint', 'misty', 'moccasin', 'navajo', 'navy', 'olive', 'orange', 'orchid',
           'pale', 'papaya', 'peach', 'peru', 'pink', 'plum', 'powder', 'puff', 'purple', 'red',
           'rose', 'rosy', 'royal', 'saddle', 'salmon', 'sandy', 'seashell', 'sienna', 'sky',
           'slate', 'smoke', 'snow', 'spring', 'steel', 'tan', 'thistle', 'tomato', 'turquoise',
           'violet', 'wheat', 'white', 'yellow'])[tpch_int(k * 8 + i, 1, 1, 92)] AS c, i
           FROM generate_series(1, 5) i) w),
       'Manufacturer#' || m, 'Brand#' || m || tpch_int(k, 3, 1, 5),
       (ARRAY['STANDARD', 'SMALL', 'MEDIUM', 'LARGE', 'ECONOMY', 'PROMO'])[tpch_int(k, 4, 1, 6)]
           || ' ' || (ARRAY['ANODIZED', 'BURNISHED', 'PLATED', 'POLISHED', 'BRUSHED'])[tpch_int(k, 5, 1, 5)]
           || ' ' || (ARRAY['TIN', 'NICKEL', 'BRASS', 'STEEL', 'COPPER'])[tpch_int(k, 6, 1, 5)],
       tpch_int(k, 7, 1, 50),
       (ARRAY['SM', 'LG', 'MED', 'JUMBO', 'WRAP'])[tpch_int(k, 8, 1, 5)] || ' '
           || (ARRAY['CASE', 'BOX', 'BAG', 'JAR', 'PKG', 'PACK', 'CAN', 'DRUM'])[tpch_int(k, 9, 1, 8)],
       (90000 + ((k / 10) % 20001) + 100 * (k % 1000)) / 100.0,
       tpch_text(k, 10, 20)
FROM generate_series(1, greatest(200, floor(200000 * current_setting('tpch.sf')::numeric))::int) k,
     LATERAL (SELECT tpch_int(k, 2, 1, 5) AS m) mm;

-- The spec's four suppliers of a part (ON CONFLICT: at tiny scales the formula can repeat one).
INSERT INTO partsupp
SELECT p.p_partkey, (p.p_partkey + i * (s.n / 4 + (p.p_partkey - 1) / s.n)) % s.n + 1,
       tpch_int(p.p_partkey * 4 + i, 1, 1, 9999), tpch_int(p.p_partkey * 4 + i, 2, 100, 100000) / 100.0,
       tpch_text(p.p_partkey * 4 + i, 3, 100)
FROM part p, generate_series(0, 3) i, (SELECT count(*)::int AS n FROM supplier) s
ON CONFLICT DO NOTHING;

INSERT INTO customer
SELECT k, 'Customer#' || lpad(k::text, 9, '0'), left(md5('c' || k), 10 + tpch_int(k, 1, 0, 15)),
       nk, (nk + 10) || '-' || tpch_int(k, 2, 100, 999) || '-' || tpch_int(k, 3, 100, 999) || '-'
           || tpch_int(k, 4, 1000, 9999),
       tpch_int(k, 5, -99999, 999999) / 100.0,
       (ARRAY['AUTOMOBILE', 'BUILDING', 'FURNITURE', 'MACHINERY', 'HOUSEHOLD'])[tpch_int(k, 6, 1, 5)],
       tpch_text(k, 7, 70)
FROM generate_series(1, greatest(150, floor(150000 * current_setting('tpch.sf')::numeric))::int) k,
     LATERAL (SELECT tpch_int(k, 0, 0, 24) AS nk) n;

-- The orders of the initial population, for orders.sql.
SELECT set_config('tpch.first_order', '1', false),
       set_config('tpch.n_orders',
           greatest(1500, floor(1500000 * current_setting('tpch.sf')::numeric))::text, false);
