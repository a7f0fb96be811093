-- RF1 (spec 2.5.2): new sales. Inserts current_setting('tpch.sf') x 1,500 new orders (0.1%)
-- with their lineitems, keys after the largest one. Run orders.sql right after this file, in
-- the same session (and, for one RF1 transaction, in the same query string or block).
SELECT set_config('tpch.first_order', (SELECT coalesce(max(o_orderkey), 0) + 1 FROM orders)::text, false),
       set_config('tpch.n_orders',
           greatest(1, round(1500 * current_setting('tpch.sf')::numeric))::text, false);
