//! The constructs of issue 15 that PostgreSQL's deparser or the planner used to refuse in
//! DIFFERENTIAL (`NATURAL JOIN`, outer joins `USING`, GROUP BY expressions outside the select
//! list, `json` output columns, `OFFSET 0` / `LIMIT ALL` in subqueries), each run through the
//! randomised oracle ([`common::oracle::run`]): random writes with duplicates and NULLs,
//! DIFFERENTIAL and FULL refreshes, bag equality with the defining query. Also the decisions
//! that stay FULL (a LIMIT without ORDER BY in a subquery), with their notices and 0A000.

mod common;

use common::oracle::run;
use common::scenarios::{Scenario, D, F};
use common::*;
use pgtrickle_planner::{PlanError, RefreshMode};
use pgtrickle_test_support::Cluster;

const CONSTRUCTS: &[Scenario] = &[
    Scenario {
        name: "natural_join",
        tables: &["a", "b"],
        mode: D,
        query: "SELECT * FROM a NATURAL JOIN (SELECT id, k, v AS bv FROM b) q",
    },
    Scenario {
        name: "natural_left_join",
        tables: &["a", "b"],
        mode: D,
        query: "SELECT * FROM a NATURAL LEFT JOIN (SELECT id, s AS bs FROM b) q",
    },
    Scenario {
        name: "natural_full_join",
        tables: &["a", "b"],
        mode: D,
        query: "SELECT * FROM (SELECT id, v FROM a) p NATURAL FULL JOIN (SELECT id, s FROM b) q",
    },
    Scenario {
        name: "left_join_using",
        tables: &["a", "b"],
        mode: D,
        query: "SELECT id, a.v, b.s FROM a LEFT JOIN b USING (id)",
    },
    Scenario {
        name: "right_join_using_two_columns",
        tables: &["a", "b"],
        mode: D,
        query: "SELECT id, k, a.v, b.s FROM a RIGHT JOIN b USING (id, k)",
    },
    Scenario {
        name: "full_join_using_star",
        tables: &["a", "b"],
        mode: D,
        query: "SELECT * FROM a FULL JOIN (SELECT id, s AS bs FROM b) q USING (id)",
    },
    Scenario {
        name: "join_using_then_left_join_using",
        tables: &["a", "b", "c"],
        mode: D,
        query: "SELECT id, a.v, b.s, c.n FROM a JOIN b USING (id) LEFT JOIN c USING (id)",
    },
    Scenario {
        name: "group_by_expression_not_selected",
        tables: &["a"],
        mode: D,
        query: "SELECT count(*) AS c, sum(v) AS sv FROM a GROUP BY k % 2",
    },
    Scenario {
        name: "group_by_expressions_some_selected",
        tables: &["a", "b"],
        mode: D,
        query: "SELECT a.s, max(b.v) AS mb, count(*) AS c FROM a JOIN b ON a.id = b.id \
                GROUP BY a.s, coalesce(b.k, -1) * 2",
    },
    Scenario {
        name: "group_by_expression_not_selected_having",
        tables: &["a"],
        mode: D,
        query: "SELECT coalesce(sum(v), 0) * 2 AS s2, count(*) AS c FROM a GROUP BY k % 2, s \
                HAVING count(*) > 1",
    },
    Scenario {
        name: "group_by_hidden_key_output_expression",
        tables: &["a", "b"],
        mode: D,
        query: "SELECT a.k, max(b.v) - min(b.v) AS spread, count(DISTINCT b.s) AS ds FROM a \
                JOIN b ON a.id = b.id GROUP BY a.k, b.b",
    },
    Scenario {
        name: "json_output_column",
        tables: &["a"],
        mode: D,
        query: "SELECT id, json_build_object('k', k, 's', s) AS j FROM a WHERE v > 0",
    },
    Scenario {
        name: "json_output_over_join",
        tables: &["a", "b"],
        mode: D,
        query: "SELECT a.id, to_json(b.s) AS j, json_build_array(a.v, b.v) AS arr FROM a \
                JOIN b ON a.k = b.k",
    },
    Scenario {
        name: "json_output_grouped",
        tables: &["a"],
        mode: D,
        query: "SELECT k, count(*) AS c, to_json(k) AS j FROM a GROUP BY k",
    },
    Scenario {
        name: "offset_zero_fence",
        tables: &["a", "b"],
        mode: D,
        query: "SELECT q.k, q.v, b.s FROM (SELECT k, v FROM a WHERE v > 2 OFFSET 0) q \
                JOIN b ON b.k = q.k",
    },
    Scenario {
        name: "limit_all_subquery",
        tables: &["a"],
        mode: D,
        query: "SELECT q.k, count(*) AS c FROM (SELECT k FROM a LIMIT ALL) q GROUP BY q.k",
    },
];

#[test]
fn constructs_are_maintained_differentially() {
    let cluster = Cluster::start();
    let mut c = connect(&cluster);
    let only = std::env::var("PGTRICKLE_SCENARIO").ok();
    let mut failures = Vec::new();
    for (idx, sc) in CONSTRUCTS.iter().enumerate() {
        if only.as_deref().is_some_and(|o| !sc.name.contains(o)) {
            continue;
        }
        for rep in 0..3u64 {
            let seed = 20_261_203 + idx as u64 * 1000 + rep;
            if let Err(e) = run(&mut c, idx, sc, seed) {
                failures.push(format!("{} (seed {seed}): {e}", sc.name));
                break;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A LIMIT or OFFSET without ORDER BY inside a subquery picks rows PostgreSQL may choose
/// differently at each run: such a query is FULL (AUTO says why in its notice) and refused
/// under DIFFERENTIAL, as at the top of the query (where it is refused in every mode).
#[test]
fn an_unordered_limit_in_a_subquery_is_full() {
    let cluster = Cluster::start();
    let mut c = connect(&cluster);
    create_sources(&mut c, "lim", &["a"]);
    for query in [
        "SELECT q.k FROM (SELECT k FROM a LIMIT 3) q",
        "SELECT q.k FROM (SELECT k FROM a OFFSET 2) q",
        "SELECT id FROM a WHERE k IN (SELECT k FROM a FETCH FIRST 1 ROW ONLY)",
    ] {
        let auto = plan(&mut c, "lim", query, RefreshMode::Auto).expect(query);
        assert_eq!(auto.mode, F, "{query}");
        let notice = auto.notice.unwrap_or_default();
        assert!(notice.contains("without ORDER BY"), "{query}: {notice}");
        match plan(&mut c, "lim", query, RefreshMode::Differential) {
            Err(PlanError::FeatureNotSupported(m)) => assert!(m.contains("ORDER BY"), "{m}"),
            other => panic!("{query}: {other:?}"),
        }
    }
}
