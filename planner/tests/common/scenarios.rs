//! The defining queries the PostgreSQL tests plan: the differential scenarios (every construct
//! the planner maintains, and some it does not) and the syntax forms of the round-trip test.

use pgtrickle_planner::EffectiveMode;

/// A defining query over the test sources (see [`super::create_sources`]) and the refresh mode
/// AUTO gives its deparsed text (the engine's).
pub struct Scenario {
    /// Names the scenario in failures.
    pub name: &'static str,
    /// Its sources.
    pub tables: &'static [&'static str],
    /// The query as a user writes it.
    pub query: &'static str,
    /// The mode AUTO plans.
    pub mode: EffectiveMode,
}

pub const D: EffectiveMode = EffectiveMode::Differential;
pub const F: EffectiveMode = EffectiveMode::Full;

pub const SCENARIOS: &[Scenario] = &[
    Scenario { name: "filter_project", tables: &["a"], mode: D,
        query: "SELECT id, v * 2 AS v2, s FROM a WHERE v > 3 OR v IS NULL" },
    Scenario { name: "bag_duplicates", tables: &["a"], mode: D,
        query: "SELECT k, s FROM a" },
    Scenario { name: "wildcard", tables: &["a"], mode: D,
        query: "SELECT * FROM a WHERE k IS NOT NULL" },
    Scenario { name: "order_by_ignored", tables: &["a"], mode: D,
        query: "SELECT id, s FROM a ORDER BY id" },
    Scenario { name: "inner_join", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, a.v, b.v AS bv FROM a JOIN b ON a.k = b.k WHERE b.b" },
    Scenario { name: "three_way_join", tables: &["a", "b", "c"], mode: D,
        query: "SELECT a.id, b.id AS bid, c.s FROM a JOIN b ON a.k = b.k JOIN c ON c.id = b.id" },
    Scenario { name: "self_join", tables: &["a"], mode: D,
        query: "SELECT x.id, y.id AS yid, y.s FROM a x JOIN a y ON x.k = y.v" },
    Scenario { name: "comma_join_qualified_star", tables: &["a", "b"], mode: D,
        query: "SELECT a.*, b.s AS bs FROM a, b WHERE a.id = b.id AND a.k IS NOT DISTINCT FROM b.k" },
    Scenario { name: "join_using", tables: &["a", "b"], mode: D,
        query: "SELECT id, a.v, b.s FROM a JOIN b USING (id)" },
    Scenario { name: "group_count_sum_avg_min_max", tables: &["a"], mode: D,
        query: "SELECT k, count(*) AS c, count(v) AS cv, sum(v) AS sv, avg(v) AS av, \
                min(v) AS mn, max(v) AS mx, min(s) AS ms FROM a GROUP BY k" },
    Scenario { name: "global_aggregate", tables: &["a"], mode: D,
        query: "SELECT count(*) AS c, sum(v) AS sv, min(v) AS mn, max(s) AS ms, avg(n) AS an FROM a" },
    Scenario { name: "group_expression_over_join", tables: &["a", "b"], mode: D,
        query: "SELECT a.k % 2 AS parity, b.s, sum(a.v) AS total, count(*) AS cnt \
                FROM a JOIN b ON a.id = b.id GROUP BY a.k % 2, b.s" },
    Scenario { name: "bool_and_or_filter", tables: &["a"], mode: D,
        query: "SELECT k, bool_and(b) AS ba, bool_or(b) AS bo, count(*) FILTER (WHERE v > 5) AS big, \
                sum(v) FILTER (WHERE b) AS sb, max(v) FILTER (WHERE s = 'a') AS mxa FROM a GROUP BY k" },
    Scenario { name: "numeric_sum_avg", tables: &["a"], mode: D,
        query: "SELECT s, avg(n) AS an, sum(n) AS sn, min(n) AS mn FROM a GROUP BY s" },
    Scenario { name: "count_distinct_rescan", tables: &["a"], mode: D,
        query: "SELECT k, count(DISTINCT v) AS dv, count(*) AS c FROM a GROUP BY k" },
    Scenario { name: "having_both_ways", tables: &["a"], mode: D,
        query: "SELECT k, count(*) AS cnt, sum(v) AS sv FROM a GROUP BY k HAVING count(*) > 2" },
    Scenario { name: "expression_over_aggregates", tables: &["a"], mode: D,
        query: "SELECT k, coalesce(sum(v), 0) * 10 + count(*) AS score FROM a GROUP BY k" },
    Scenario { name: "group_by_ordinal_and_alias", tables: &["a"], mode: D,
        query: "SELECT k AS kk, s, count(*) AS cnt FROM a GROUP BY 1, s" },
    Scenario { name: "distinct", tables: &["a"], mode: D,
        query: "SELECT DISTINCT k, s FROM a" },
    Scenario { name: "union_all", tables: &["a", "b"], mode: D,
        query: "SELECT k, v FROM a UNION ALL SELECT k, v FROM b WHERE v > 0" },
    Scenario { name: "union", tables: &["a", "b"], mode: D,
        query: "SELECT k FROM a UNION SELECT v FROM b" },
    Scenario { name: "subquery_in_from", tables: &["a", "b"], mode: D,
        query: "SELECT q.k, q.v2, b.s FROM (SELECT k, v + 1 AS v2 FROM a WHERE v IS NOT NULL) q \
                JOIN b ON b.k = q.k" },
    Scenario { name: "cte_join_aggregate", tables: &["a", "b"], mode: D,
        query: "WITH x AS (SELECT id, k FROM a WHERE b) SELECT x.k, count(*) AS cnt, sum(b.v) AS sv \
                FROM x JOIN b ON b.id = x.id GROUP BY x.k" },
    Scenario { name: "union_all_in_subquery_aggregate", tables: &["a", "b"], mode: D,
        query: "SELECT u.k, count(*) AS cnt, max(u.v) AS mx FROM (SELECT k, v FROM a UNION ALL \
                SELECT k, v FROM b) u GROUP BY u.k" },
    Scenario { name: "having_without_group_by", tables: &["a"], mode: D,
        query: "SELECT count(*) AS cnt, sum(v) AS sv FROM a HAVING count(*) > 12" },
    Scenario { name: "cte_referenced_twice", tables: &["a"], mode: D,
        query: "WITH p AS (SELECT id, k, v FROM a WHERE v IS NOT NULL) SELECT p1.id, p2.id AS id2 \
                FROM p p1 JOIN p p2 ON p1.k = p2.k AND p1.v < p2.v" },
    Scenario { name: "quoted_mixed_case_names", tables: &["a"], mode: D,
        query: "SELECT k AS \"Key\", sum(v) AS \"Total Value\", count(*) AS \"select\" FROM a GROUP BY k" },
    Scenario { name: "nested_subqueries", tables: &["a", "b"], mode: D,
        query: "SELECT x.k, x.w FROM (SELECT y.k, y.v + 1 AS w FROM (SELECT k, v FROM a WHERE k IS NOT NULL) y \
                WHERE y.v > 0) x JOIN b ON b.id = x.k" },
    Scenario { name: "distinct_over_join", tables: &["a", "b"], mode: D,
        query: "SELECT DISTINCT a.k, b.s FROM a JOIN b ON a.id = b.id" },
    Scenario { name: "union_three_branches", tables: &["a", "b", "c"], mode: D,
        query: "SELECT k, s FROM a UNION SELECT k, s FROM b UNION SELECT v, s FROM c" },
    Scenario { name: "join_with_or_condition", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, b.id AS bid FROM a JOIN b ON a.k = b.k OR a.v = b.v" },
    Scenario { name: "group_by_coalesce_expression", tables: &["a"], mode: D,
        query: "SELECT coalesce(k, -1) AS kk, s, avg(v) AS av, bool_or(v > 5) AS anybig FROM a \
                GROUP BY coalesce(k, -1), s" },
    Scenario { name: "grouped_subquery_filtered", tables: &["a"], mode: D,
        query: "SELECT t.k, t.total FROM (SELECT k, sum(v) AS total, count(*) AS c FROM a GROUP BY k) t \
                WHERE t.c > 1" },
    Scenario { name: "grouped_cte_joined", tables: &["a", "b"], mode: D,
        query: "WITH tot AS (SELECT id, sum(v) AS sv, max(s) AS ms, min(v) FILTER (WHERE b) AS mb \
                FROM b GROUP BY id) SELECT a.id, tot.sv, tot.ms, tot.mb FROM a JOIN tot ON tot.id = a.id" },
    Scenario { name: "two_level_aggregation", tables: &["a"], mode: D,
        query: "SELECT g.c, count(*) AS groups, sum(g.sv) AS total FROM (SELECT k, count(*) AS c, \
                sum(v) AS sv FROM a GROUP BY k) g GROUP BY g.c" },
    Scenario { name: "grouped_subquery_over_join", tables: &["a", "b"], mode: D,
        query: "SELECT x.s, x.n, x.av FROM (SELECT b.s, count(*) AS n, avg(a.v) AS av, bool_and(a.b) AS ba \
                FROM a JOIN b ON a.k = b.k GROUP BY b.s) x" },
    Scenario { name: "group_key_not_in_select_list", tables: &["a"], mode: D,
        query: "SELECT count(*) AS n, sum(v) AS sv FROM a GROUP BY k" },
    Scenario { name: "distinct_subquery_joined", tables: &["a", "b"], mode: D,
        query: "SELECT d.k, b.id FROM (SELECT DISTINCT k FROM a) d JOIN b ON b.k = d.k" },
    Scenario { name: "union_subquery_aggregated", tables: &["a", "b"], mode: D,
        query: "SELECT u.k, count(*) AS cnt FROM (SELECT k FROM a UNION SELECT k FROM b) u GROUP BY u.k" },
    Scenario { name: "except_subquery", tables: &["a", "b"], mode: D,
        query: "SELECT e.k, e.s FROM (SELECT k, s FROM a EXCEPT SELECT k, s FROM b) e WHERE e.k IS NOT NULL" },
    Scenario { name: "global_aggregate_subquery_cross_join", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, t.c, t.mx FROM a CROSS JOIN (SELECT count(*) AS c, max(v) AS mx FROM b) t \
                WHERE a.v > 4" },
    Scenario { name: "using_join_grouped", tables: &["a", "b"], mode: D,
        query: "SELECT id, count(*) AS c, sum(b.v) AS sv FROM a JOIN b USING (id) GROUP BY id" },
    // Written with SELECT *, which falls back to FULL (the planner does not expand * over
    // USING); the deparsed text lists the columns and is maintained (see deparsed_pg).
    Scenario { name: "using_join_star", tables: &["a", "b"], mode: D,
        query: "SELECT * FROM a JOIN (SELECT id, s AS bs FROM b) q USING (id)" },
    Scenario { name: "distinct_aggregates_in_subquery", tables: &["a"], mode: D,
        query: "SELECT g.k, g.dv, g.sdv FROM (SELECT k, count(DISTINCT v) AS dv, sum(DISTINCT v) AS sdv, \
                count(*) AS c FROM a GROUP BY k) g WHERE g.c > 1" },
    Scenario { name: "distinct_aggregate_key_not_in_output", tables: &["a"], mode: D,
        query: "SELECT count(DISTINCT s) AS ds FROM a GROUP BY k" },
    Scenario { name: "having_and_expressions_in_subquery", tables: &["a", "b"], mode: D,
        query: "SELECT h.k, h.ratio, b.id FROM (SELECT k, coalesce(sum(v), 0) * 2 + count(*) AS ratio \
                FROM a GROUP BY k HAVING count(*) > 1 AND max(v) IS NOT NULL) h JOIN b ON b.k = h.k" },
    Scenario { name: "left_join", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, a.k, b.v FROM a LEFT JOIN b ON a.id = b.id" },
    Scenario { name: "left_join_null_keys_and_filter", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, b.s AS bs FROM a LEFT OUTER JOIN b ON a.k = b.k AND b.v > 3 WHERE a.v IS NOT NULL" },
    Scenario { name: "left_join_aggregate", tables: &["a", "b"], mode: D,
        query: "SELECT a.k, count(b.id) AS matches, count(*) AS cnt, max(b.v) AS mx FROM a \
                LEFT JOIN b ON b.k = a.k GROUP BY a.k" },
    // An aggregate over a grouped subquery of an outer join: the subquery's old groups must
    // keep left rows without a match (TPC-H q13's shape).
    Scenario { name: "aggregate_over_grouped_left_join", tables: &["a", "b"], mode: D,
        query: "SELECT count(*) AS n, sum(cnt) AS s FROM (SELECT a.id, count(b.id) AS cnt FROM a \
                LEFT JOIN b ON b.k = a.k GROUP BY a.id) q" },
    Scenario { name: "histogram_over_grouped_left_join", tables: &["a", "b"], mode: D,
        query: "SELECT cnt, count(*) AS custdist FROM (SELECT a.k, count(b.id) AS cnt FROM a \
                LEFT OUTER JOIN b ON b.k = a.k AND b.v > 2 GROUP BY a.k) q GROUP BY cnt" },
    Scenario { name: "distinct_over_full_join_joined", tables: &["a", "b", "c"], mode: D,
        query: "SELECT q.ak, q.bk, c.id FROM (SELECT DISTINCT a.k AS ak, b.k AS bk FROM a \
                FULL JOIN b ON a.id = b.id) q JOIN c ON c.k = q.ak" },
    Scenario { name: "grouped_right_join_joined", tables: &["a", "b", "c"], mode: D,
        query: "SELECT g.k, g.n, c.s FROM (SELECT b.k, count(a.id) AS n FROM a RIGHT JOIN b \
                ON a.k = b.k GROUP BY b.k) g JOIN c ON c.k = g.k" },
    Scenario { name: "left_join_chain", tables: &["a", "b", "c"], mode: D,
        query: "SELECT a.id, b.id AS bid, c.id AS cid FROM a LEFT JOIN b ON b.id = a.id \
                LEFT JOIN c ON c.k = b.k" },
    Scenario { name: "left_join_subquery", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, q.total FROM a LEFT JOIN (SELECT k, v * 2 AS total FROM b WHERE v > 0) q \
                ON q.k = a.k" },
    Scenario { name: "right_join", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, b.id AS bid, b.v FROM a RIGHT JOIN b ON a.k = b.k" },
    Scenario { name: "right_join_after_inner_join", tables: &["a", "b", "c"], mode: D,
        query: "SELECT a.id, b.id AS bid, c.id AS cid FROM a JOIN b ON a.id = b.id RIGHT JOIN c ON c.k = b.k" },
    Scenario { name: "full_join_after_inner_join", tables: &["a", "b", "c"], mode: D,
        query: "SELECT a.id, b.v, c.s FROM a JOIN b ON a.k = b.k FULL JOIN c ON c.id = a.id AND c.v > b.v" },
    Scenario { name: "full_join", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, b.id AS bid FROM a FULL JOIN b ON a.id = b.id AND a.v < b.v" },
    Scenario { name: "exists_semi_join", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, a.v FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.k = a.k AND b.v > 2)" },
    Scenario { name: "not_exists_anti_join", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, a.s FROM a WHERE a.v > 0 AND NOT EXISTS (SELECT 1 FROM b WHERE b.id = a.id)" },
    Scenario { name: "in_subquery", tables: &["a", "b"], mode: D,
        query: "SELECT id, k FROM a WHERE k IN (SELECT v FROM b WHERE b)" },
    Scenario { name: "exists_with_join_inside_and_aggregate", tables: &["a", "b", "c"], mode: D,
        query: "SELECT a.k, count(*) AS cnt, sum(a.v) AS sv FROM a WHERE EXISTS (SELECT 1 FROM b \
                JOIN c ON c.k = b.k WHERE b.id = a.id AND c.v < 8) GROUP BY a.k" },
    Scenario { name: "self_anti_join", tables: &["a"], mode: D,
        query: "SELECT x.id, x.v FROM a x WHERE NOT EXISTS (SELECT 1 FROM a y WHERE y.v > x.v AND y.k = x.k)" },
    Scenario { name: "not_in_with_nulls", tables: &["a", "b"], mode: D,
        query: "SELECT id, k FROM a WHERE k NOT IN (SELECT v FROM b WHERE s = 'a')" },
    Scenario { name: "not_in_non_null", tables: &["a", "b"], mode: D,
        query: "SELECT id FROM a WHERE k NOT IN (SELECT v FROM b WHERE v IS NOT NULL)" },
    // Scalar subqueries (query/model/scalar.rs): lifted into FROM as one-row or grouped
    // subqueries.
    Scenario { name: "scalar_uncorrelated_avg", tables: &["a", "b"], mode: D,
        query: "SELECT id, v FROM a WHERE v > (SELECT avg(v) FROM b)" },
    Scenario { name: "scalar_uncorrelated_count_under_or", tables: &["a", "b"], mode: D,
        query: "SELECT id, k FROM a WHERE k IS NULL OR k < (SELECT count(*) FROM b WHERE b.v > 3)" },
    Scenario { name: "scalar_uncorrelated_twice_in_case", tables: &["a", "b", "c"], mode: D,
        query: "SELECT id, v FROM a WHERE CASE WHEN v > (SELECT max(v) - 3 FROM b) THEN true \
                ELSE v < (SELECT min(v) + 1 FROM c WHERE c.b) END" },
    Scenario { name: "scalar_correlated_avg", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, a.v FROM a WHERE a.v < (SELECT 0.5 * avg(b.v) FROM b WHERE b.k = a.k)" },
    Scenario { name: "scalar_correlated_two_keys_sum", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, a.s FROM a WHERE (SELECT sum(b.v) FROM b WHERE b.k = a.k AND a.id = b.id AND b.b) <= a.v" },
    Scenario { name: "scalar_correlated_min_grouped", tables: &["a", "b"], mode: D,
        query: "SELECT a.k, count(*) AS c, sum(a.v) AS sv FROM a WHERE a.v = (SELECT min(b.v) FROM b \
                WHERE b.k = a.k AND b.s IS NOT NULL) GROUP BY a.k" },
    Scenario { name: "scalar_correlated_self_sum", tables: &["a"], mode: D,
        query: "SELECT sum(x.v) AS s, count(*) AS c FROM a x WHERE x.v < (SELECT avg(y.v) FROM a y WHERE y.k = x.k)" },
    Scenario { name: "scalar_correlated_numeric_key", tables: &["a", "b"], mode: D,
        query: "SELECT a.id FROM a WHERE a.v >= (SELECT max(b.v) FROM b WHERE b.n = a.k + 0.5 * a.v)" },
    Scenario { name: "scalar_in_having", tables: &["a", "b"], mode: D,
        query: "SELECT k, sum(v) AS sv FROM a GROUP BY k HAVING sum(v) > (SELECT avg(v) * 2 FROM b)" },
    Scenario { name: "scalar_in_subquery_in_from_with_not_exists", tables: &["a", "b"], mode: D,
        query: "SELECT s, count(*) AS c, sum(v) AS sv FROM (SELECT a.s, a.v FROM a WHERE a.v > \
                (SELECT avg(v) FROM a WHERE v > 0) AND NOT EXISTS (SELECT 1 FROM b WHERE b.k = a.id)) x GROUP BY s" },
    Scenario { name: "scalar_correlated_inside_in", tables: &["a", "b", "c"], mode: D,
        query: "SELECT id FROM a WHERE a.k IN (SELECT b.k FROM b WHERE b.v > \
                (SELECT 0.5 * sum(c.v) FROM c WHERE c.k = b.k AND c.id = b.id))" },
    Scenario { name: "scalar_over_cte", tables: &["a", "b"], mode: D,
        query: "WITH g AS (SELECT k, sum(v) AS sv FROM a GROUP BY k) SELECT b.id, g.sv FROM b, g \
                WHERE b.k = g.k AND g.sv = (SELECT max(sv) FROM g)" },
    Scenario { name: "scalar_with_star", tables: &["a", "b"], mode: D,
        query: "SELECT * FROM a WHERE v > (SELECT avg(v) FROM b WHERE b.k = a.k)" },
    Scenario { name: "in_grouped_subquery_having", tables: &["a", "b"], mode: D,
        query: "SELECT id, k FROM a WHERE k IN (SELECT k FROM b GROUP BY k HAVING sum(v) > 5)" },
    Scenario { name: "not_in_grouped_subquery", tables: &["a", "b"], mode: D,
        query: "SELECT id, k FROM a WHERE k NOT IN (SELECT v FROM b GROUP BY v HAVING count(*) > 1)" },
    Scenario { name: "in_union_subquery", tables: &["a", "b", "c"], mode: D,
        query: "SELECT id FROM a WHERE v IN (SELECT v FROM b UNION SELECT k FROM c)" },
    Scenario { name: "anyall_gt_any_correlated", tables: &["a", "b"], mode: D,
        query: "SELECT id, v FROM a WHERE v > ANY (SELECT v FROM b WHERE b.k = a.k)" },
    Scenario { name: "anyall_ge_all_with_nulls", tables: &["a", "b"], mode: D,
        query: "SELECT id, v FROM a WHERE v >= ALL (SELECT v FROM b WHERE b.s = 'a')" },
    Scenario { name: "anyall_not_lt_any", tables: &["a", "b"], mode: D,
        query: "SELECT id FROM a WHERE NOT (v < ANY (SELECT v FROM b WHERE b.b))" },
    Scenario { name: "anyall_not_eq_all_correlated", tables: &["a", "b"], mode: D,
        query: "SELECT id FROM a WHERE NOT (k = ALL (SELECT k FROM b WHERE b.id = a.id))" },
    Scenario { name: "anyall_under_or_full", tables: &["a", "b"], mode: F,
        query: "SELECT id FROM a WHERE k IS NULL OR v > ANY (SELECT v FROM b)" },
    Scenario { name: "multi_column_in", tables: &["a", "b"], mode: D,
        query: "SELECT id FROM a WHERE (k, v) IN (SELECT k, v FROM b)" },
    Scenario { name: "multi_column_not_in_with_nulls", tables: &["a", "b"], mode: D,
        query: "SELECT id, k FROM a WHERE (k, s) NOT IN (SELECT k, s FROM b WHERE b.b)" },
    Scenario { name: "scalar_correlated_count_full", tables: &["a", "b"], mode: F,
        query: "SELECT a.id FROM a WHERE a.v > (SELECT count(*) FROM b WHERE b.k = a.k)" },
    Scenario { name: "scalar_correlated_inequality_full", tables: &["a", "b"], mode: F,
        query: "SELECT a.id FROM a WHERE a.v > (SELECT max(b.v) FROM b WHERE b.k < a.k)" },
    Scenario { name: "scalar_without_aggregate_full", tables: &["a", "b"], mode: F,
        query: "SELECT a.id FROM a WHERE a.v > (SELECT b.v FROM b WHERE b.id = 3 AND b.k = 1 AND b.s = 'x')" },
    Scenario { name: "intersect", tables: &["a", "b"], mode: D,
        query: "SELECT k, s FROM a INTERSECT SELECT k, s FROM b" },
    Scenario { name: "except", tables: &["a", "b"], mode: D,
        query: "SELECT k, v FROM a WHERE b EXCEPT SELECT k, v FROM b" },
    Scenario { name: "except_all", tables: &["a", "b"], mode: D,
        query: "SELECT k FROM a EXCEPT ALL SELECT k FROM b" },
    Scenario { name: "intersect_all", tables: &["a", "b"], mode: D,
        query: "SELECT k, s FROM a INTERSECT ALL SELECT v, s FROM b" },
    Scenario { name: "intersect_all_in_subquery_joined", tables: &["a", "b", "c"], mode: D,
        query: "SELECT x.k, c.id FROM (SELECT k FROM a INTERSECT ALL SELECT k FROM b) x JOIN c ON c.k = x.k" },
    // Keyed recompute (sqlgen/keyed.rs): windows, DISTINCT ON, grouping sets, top-k. Orderings
    // are total over the output (or ties give equal output rows), so the oracle is exact.
    Scenario { name: "window_row_number", tables: &["a"], mode: D,
        query: "SELECT id, row_number() OVER (PARTITION BY k ORDER BY id, v, s, b, n) AS rn FROM a" },
    Scenario { name: "window_rank_and_running_sum", tables: &["a"], mode: D,
        query: "SELECT id, k, v, rank() OVER (PARTITION BY k ORDER BY v) AS r, \
                sum(v) OVER (PARTITION BY k ORDER BY id) AS running FROM a WHERE s IS DISTINCT FROM 'c'" },
    Scenario { name: "window_different_partitions", tables: &["a"], mode: D,
        query: "SELECT id, count(*) OVER (PARTITION BY k, s) AS c1, sum(v) OVER (PARTITION BY k) AS c2, \
                max(v) OVER w AS c3 FROM a WINDOW w AS (PARTITION BY s, k)" },
    Scenario { name: "window_without_partition", tables: &["a"], mode: D,
        query: "SELECT id, dense_rank() OVER (ORDER BY v) AS dr, lag(v) OVER (ORDER BY v, id, k, s, b, n) AS prev FROM a" },
    Scenario { name: "window_over_join", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, b.s, count(*) OVER (PARTITION BY b.s) AS c, \
                avg(a.v) OVER (PARTITION BY b.s ORDER BY a.id RANGE BETWEEN 1 PRECEDING AND 1 FOLLOWING) AS av \
                FROM a JOIN b ON a.k = b.k" },
    Scenario { name: "window_over_groups", tables: &["a"], mode: D,
        query: "SELECT k, s, sum(v) AS sv, rank() OVER (PARTITION BY k ORDER BY sum(v)) AS r FROM a GROUP BY k, s" },
    Scenario { name: "window_with_exists", tables: &["a", "b"], mode: D,
        query: "SELECT id, k, count(*) OVER (PARTITION BY k) AS c FROM a \
                WHERE EXISTS (SELECT 1 FROM b WHERE b.k = a.k)" },
    Scenario { name: "distinct_on", tables: &["a"], mode: D,
        query: "SELECT DISTINCT ON (k) k, v, id FROM a ORDER BY k, v DESC, id" },
    Scenario { name: "distinct_on_over_join", tables: &["a", "b"], mode: D,
        query: "SELECT DISTINCT ON (b.s, a.k) b.s, a.k, a.id FROM a LEFT JOIN b ON a.id = b.id \
                ORDER BY b.s, a.k, a.id DESC" },
    Scenario { name: "rollup", tables: &["a"], mode: D,
        query: "SELECT k, s, count(*) AS c, sum(v) AS sv, GROUPING(k, s) AS g FROM a GROUP BY ROLLUP (k, s)" },
    Scenario { name: "cube", tables: &["a"], mode: D,
        query: "SELECT k, b, count(v) AS c, max(n) AS mx FROM a GROUP BY CUBE (k, b)" },
    Scenario { name: "grouping_sets_with_plain_key", tables: &["a", "b"], mode: D,
        query: "SELECT a.s, a.k, b.b, count(*) AS c FROM a JOIN b ON a.id = b.id \
                GROUP BY a.s, GROUPING SETS ((a.k), (b.b), ())" },
    Scenario { name: "top_k", tables: &["a"], mode: D,
        query: "SELECT id, v FROM a ORDER BY v DESC NULLS LAST, id, k, s, b, n LIMIT 5" },
    Scenario { name: "top_k_offset", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, b.v FROM a JOIN b ON a.k = b.k ORDER BY b.v, a.id, a.v, b.id LIMIT 4 OFFSET 2" },
    Scenario { name: "top_k_over_groups", tables: &["a"], mode: D,
        query: "SELECT k, count(*) AS c FROM a GROUP BY k ORDER BY c DESC, k LIMIT 2" },
    Scenario { name: "srf_generate_series_over_column", tables: &["a"], mode: D,
        query: "SELECT a.id, g FROM a, generate_series(1, a.k) AS g WHERE a.v IS NOT NULL" },
    Scenario { name: "srf_unnest_with_ordinality", tables: &["a"], mode: D,
        query: "SELECT a.id, x.c, x.o FROM a CROSS JOIN LATERAL unnest(ARRAY[a.k, a.v]) WITH ORDINALITY AS x(c, o)" },
    Scenario { name: "srf_jsonb_elements_joined", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, j.value AS e, b.id AS bid FROM a CROSS JOIN jsonb_array_elements(jsonb_build_array(a.k, a.s)) AS j \
                JOIN b ON b.k = a.k" },
    Scenario { name: "lateral_subquery_without_relation", tables: &["a"], mode: D,
        query: "SELECT a.id, l.dbl FROM a CROSS JOIN LATERAL (SELECT a.v * 2 AS dbl, a.k + 1 AS k1) l WHERE l.k1 > 1" },
    Scenario { name: "values_joined", tables: &["a"], mode: D,
        query: "SELECT a.id, t.label FROM a JOIN (VALUES (0, 'zero'), (1, 'one'), (2, 'two')) AS t(n, label) ON t.n = a.k" },
    Scenario { name: "lateral_subquery_correlated", tables: &["a", "b"], mode: D,
        query: "SELECT a.id, x.bid FROM a CROSS JOIN LATERAL (SELECT b.id AS bid, b.s FROM b WHERE b.k = a.k AND b.v > a.v) x" },
    Scenario { name: "window_over_srf", tables: &["a"], mode: D,
        query: "SELECT a.k, g, sum(g) OVER (PARTITION BY a.k) AS sg FROM a, generate_series(0, a.v % 3) AS g" },
    Scenario { name: "top_k_over_window", tables: &["a"], mode: D,
        query: "SELECT id, rank() OVER (PARTITION BY k ORDER BY v) AS r FROM a ORDER BY r, id, k, v, s, b, n \
                FETCH FIRST 3 ROWS ONLY" },
];

/// Syntax forms whose regenerated text must mean the same to PostgreSQL (over sources `a`, `b`).
pub const ROUNDTRIP_QUERIES: &[&str] = &[
    "SELECT id, E'a\\\\tb\\n' || s AS x, $$dollar 'q'$$ AS d, $t$x$$y$t$ AS t2, U&'\\0041' AS u FROM a",
    "SELECT id, v::numeric(10,2) AS n2, CAST(v AS text) AS vt, 'abc'::varchar(2) AS c2, -v AS neg, 1e3 AS e FROM a",
    "SELECT id, CASE WHEN v > 5 THEN 'big' WHEN v IS NULL THEN NULL ELSE 'small' END AS size, \
     coalesce(s, '-') AS s2, nullif(k, 0) AS nk FROM a",
    "SELECT id FROM a WHERE k IN (1, 2) AND v BETWEEN 0 AND 10 AND s LIKE 'a%' AND s NOT ILIKE 'B%'",
    "SELECT id, s ~ '^[ab]' AS re, s SIMILAR TO '(a|b)' AS sim, k IS DISTINCT FROM v AS dis FROM a",
    "SELECT id, ARRAY[k, v] AS arr, (ARRAY[k, v])[1] AS first, ROW(k, v)::text AS r FROM a",
    "SELECT id, ('{\"k\": ' || coalesce(v, 0) || '}')::jsonb ->> 'k' AS j, \
     '{\"a\": {\"b\": 1}}'::jsonb #>> '{a,b}' AS deep FROM a",
    "SELECT id, s COLLATE \"C\" AS sc, EXTRACT(year FROM timestamp '2024-05-06 07:08:09') AS y, \
     (timestamptz '2024-01-01 00:00:00+00' AT TIME ZONE 'UTC')::text AS tz FROM a",
    "SELECT id, substring(coalesce(s, 'xyz') FROM 1 FOR 2) AS sub, position('b' IN coalesce(s, '')) AS pos, \
     trim(both 'x' FROM 'xxaxx') AS tr, interval '1 day' * k AS iv FROM a",
    "SELECT id, greatest(k, v) AS g, least(k, v) AS l, (v % 3 + 1) * 2 - 1 AS arith, 2 ^ 3 AS pw, \
     B'101'::int AS bits FROM a",
    "SELECT k, string_agg(s, ',' ORDER BY s, id) AS ss, array_agg(id ORDER BY id) AS ids, \
     count(*) FILTER (WHERE v > 2) AS f FROM a GROUP BY k",
    "SELECT id, row_number() OVER (PARTITION BY k ORDER BY id, v, s) AS rn, \
     sum(v) OVER (PARTITION BY k) AS total FROM a",
    "SELECT k, s, count(*) AS c FROM a GROUP BY ROLLUP (k, s)",
    "SELECT k, s, count(*) AS c FROM a GROUP BY GROUPING SETS ((k), (s), ())",
    "SELECT DISTINCT ON (k) k, id FROM a ORDER BY k, id, v, s",
    "SELECT a.id, x.n FROM a CROSS JOIN LATERAL (SELECT count(*) AS n FROM b WHERE b.k = a.k) x",
    "SELECT * FROM (VALUES (1, 'one'), (2, 'two')) AS t (n, name)",
    "SELECT g, a.id FROM generate_series(1, 3) AS g JOIN a ON a.k = g",
    "SELECT id, v FROM a ORDER BY v DESC NULLS LAST, id FETCH FIRST 3 ROWS ONLY",
    "SELECT id FROM a WHERE v > ANY (SELECT v FROM b) AND k = ALL (SELECT k FROM b WHERE k = a.k)",
    "SELECT id, (SELECT max(v) FROM b WHERE b.k = a.k) AS mx FROM a",
    "WITH RECURSIVE_free AS (SELECT k FROM a) SELECT k, count(*) AS c FROM RECURSIVE_free GROUP BY k",
    "SELECT \"A\".id FROM a AS \"A\" WHERE \"A\".k IS NOT NULL AND NOT (\"A\".v > 3 OR \"A\".v < 0)",
    "SELECT id, date_trunc('minute', timestamp '2024-01-01 10:11:12') AS m, to_char(1234.5, 'FM9999.0') AS tc FROM a",
];
