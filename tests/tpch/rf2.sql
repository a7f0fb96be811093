-- RF2 (spec 2.5.3): old sales. Deletes the current_setting('tpch.sf') x 1,500 orders with the
-- smallest keys (0.1%) and their lineitems, lineitems first.
CREATE TEMP TABLE tpch_old_orders AS
SELECT o_orderkey FROM orders ORDER BY o_orderkey
LIMIT greatest(1, round(1500 * current_setting('tpch.sf')::numeric))::bigint;
DELETE FROM lineitem WHERE l_orderkey IN (SELECT o_orderkey FROM tpch_old_orders);
DELETE FROM orders WHERE o_orderkey IN (SELECT o_orderkey FROM tpch_old_orders);
DROP TABLE tpch_old_orders;
