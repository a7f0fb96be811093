//! Golden tests of operator trees, generated SQL and explain text, and the planning errors and
//! refresh-mode decisions (AUTO fallback notices, DIFFERENTIAL errors naming the construct),
//! with hand-written catalog descriptions. Also the planning-time budget.

use std::collections::BTreeMap;

use pgtrickle_planner::{
    plan_stream_table, referenced_relations, ColumnDef, EffectiveMode, PlanInput, RefreshMode,
    RefreshStatement, RelationKind, SourceRelation, StName, StorageLayout,
};

/// A table `public.<name>` whose delta has key `key`.
fn rel(key: u32, name: &str, cols: &[(&str, &str)]) -> SourceRelation {
    SourceRelation {
        reference: pgtrickle_planner::RelationRef {
            schema: None,
            name: name.into(),
        },
        resolved: StName {
            schema: Some("public".into()),
            name: name.into(),
        },
        kind: RelationKind::Table,
        columns: cols.iter().map(|(n, t)| ColumnDef::new(n, t)).collect(),
        primary_key: None,
        current: format!("public.{name}"),
        delta_key: Some(key),
    }
}

fn input(
    query: &str,
    mode: RefreshMode,
    cols: &[(&str, &str)],
    rels: Vec<SourceRelation>,
) -> PlanInput {
    PlanInput {
        stream_table: StName {
            schema: Some("public".into()),
            name: "st".into(),
        },
        storage: "public.st".into(),
        query: query.into(),
        refresh_mode: mode,
        columns: cols.iter().map(|(n, t)| ColumnDef::new(n, t)).collect(),
        relations: rels,
    }
}

fn orders() -> SourceRelation {
    rel(
        1,
        "orders",
        &[
            ("id", "integer"),
            ("customer_id", "integer"),
            ("product_id", "integer"),
            ("total", "numeric"),
        ],
    )
}

fn products() -> SourceRelation {
    rel(
        2,
        "products",
        &[
            ("id", "integer"),
            ("category", "text"),
            ("price", "numeric"),
        ],
    )
}

#[test]
fn operator_tree_golden() {
    let p = plan_stream_table(&input(
        "SELECT o.customer_id, p.category, SUM(o.total) AS total_spent, COUNT(*) AS order_count \
         FROM orders o JOIN products p ON p.id = o.product_id WHERE o.total > 0 \
         GROUP BY o.customer_id, p.category",
        RefreshMode::Auto,
        &[
            ("customer_id", "integer"),
            ("category", "text"),
            ("total_spent", "numeric"),
            ("order_count", "bigint"),
        ],
        vec![orders(), products()],
    ))
    .unwrap();
    // The operator tree is the model the DIFFERENTIAL statements are generated from.
    assert!(
        p.explain.contains(
            "Operator tree:\n\
             \x20 Project o.customer_id, p.category, SUM(o.total) AS total_spent, COUNT(*) AS order_count\n\
             \x20   Aggregate GROUP BY o.customer_id, p.category: sum(o.total), count(*)\n\
             \x20     Filter o.total > 0\n\
             \x20       Join public.orders AS o JOIN public.products AS p ON p.id = o.product_id\n\
             \x20         Scan public.orders AS o\n\
             \x20         Scan public.products AS p\n\
             Delta for changes of public.orders:\n"
        ),
        "{}",
        p.explain
    );
    assert_eq!(p.mode, EffectiveMode::Differential);
    assert_eq!(p.layout, StorageLayout::Grouped);
    assert_eq!(
        p.hidden_columns,
        vec![
            "__pgt_count",
            "__pgt_sum0",
            "__pgt_nn0",
            "__pgt_nan0",
            "__pgt_pinf0",
            "__pgt_ninf0",
            "__pgt_sc0",
            "__pgt_scn0",
            "__pgt_hash"
        ]
    );
    assert_eq!(
        p.storage_ddl,
        vec![
            "CREATE TABLE public.st (customer_id integer, category text, total_spent numeric, \
             order_count bigint, __pgt_count pg_catalog.int8 NOT NULL, __pgt_sum0 numeric NOT NULL, \
             __pgt_nn0 pg_catalog.int8 NOT NULL, __pgt_nan0 pg_catalog.int8 NOT NULL, __pgt_pinf0 pg_catalog.int8 NOT NULL, \
             __pgt_ninf0 pg_catalog.int8 NOT NULL, __pgt_sc0 pg_catalog.int4 NOT NULL, __pgt_scn0 pg_catalog.int8 NOT NULL, \
             __pgt_hash pg_catalog.int8 NOT NULL)",
            "CREATE INDEX ON public.st (__pgt_hash)",
        ]
    );
    assert_eq!(p.sources, vec![0, 1]);
    assert!(
        p.explain
            .contains("Refresh mode: DIFFERENTIAL (requested AUTO)"),
        "{}",
        p.explain
    );
    assert!(
        p.explain.contains("Delta for changes of public.orders:"),
        "{}",
        p.explain
    );
    assert!(
        p.explain.contains("Delta for changes of public.products:"),
        "{}",
        p.explain
    );
}

/// Explain's operator tree shows how the SQL is built, not the query's syntax: an INTERSECT is a
/// DISTINCT over a semi-join, NOT IN an anti-join, an outer join a union of inner-join variants.
/// A FULL plan has no tree: its refresh runs the query as written.
#[test]
fn explain_tree_is_the_model() {
    let a = rel(
        7,
        "a",
        &[("id", "integer"), ("k", "integer"), ("s", "text")],
    );
    let b = rel(
        8,
        "b",
        &[("id", "integer"), ("k", "integer"), ("s", "text")],
    );
    let c = rel(
        9,
        "c",
        &[("id", "integer"), ("k", "integer"), ("s", "text")],
    );
    let explain = |q: &str, cols: &[(&str, &str)]| {
        let p = plan_stream_table(&input(
            q,
            RefreshMode::Auto,
            cols,
            vec![a.clone(), b.clone(), c.clone()],
        ))
        .unwrap();
        let e = p.explain;
        let tree = e.find("Operator tree").unwrap();
        let end = e.find("Delta for changes").unwrap_or(e.len());
        e[tree..end].to_string()
    };
    assert_eq!(
        explain(
            "SELECT k FROM a INTERSECT SELECT k FROM b",
            &[("k", "integer")]
        ),
        "Operator tree:\n\
         \x20 Distinct\n\
         \x20   Project __pgt_l.__pgt_c0 AS k\n\
         \x20     Semi-join EXISTS\n\
         \x20       Subquery __pgt_l\n\
         \x20         Project k\n\
         \x20           Scan public.a AS a\n\
         \x20       Project 1\n\
         \x20         Filter __pgt_r.__pgt_c0 IS NOT DISTINCT FROM __pgt_l.__pgt_c0\n\
         \x20           Subquery __pgt_r\n\
         \x20             Project k\n\
         \x20               Scan public.b AS b\n"
    );
    assert_eq!(
        explain(
            "SELECT a.id FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.k = a.k) \
             AND a.id NOT IN (SELECT id FROM c) AND a.k > 1",
            &[("id", "integer")]
        ),
        "Operator tree:\n\
         \x20 Project a.id\n\
         \x20   Anti-join NOT EXISTS\n\
         \x20     Semi-join EXISTS\n\
         \x20       Filter a.k > 1\n\
         \x20         Scan public.a AS a\n\
         \x20       Project 1\n\
         \x20         Filter b.k = a.k\n\
         \x20           Scan public.b AS b\n\
         \x20     Project id\n\
         \x20       Filter ((a.id) = (id)) IS NOT FALSE\n\
         \x20         Scan public.c AS c\n"
    );
    assert_eq!(
        explain(
            "WITH d AS (SELECT DISTINCT k FROM b) SELECT a.id, x.n FROM a LEFT JOIN d ON d.k = a.k \
             JOIN (SELECT k, count(*) AS n FROM c GROUP BY k) x ON x.k = a.k",
            &[("id", "integer"), ("n", "bigint")]
        ),
        "Operator tree:\n\
         \x20 Project a.id, x.n\n\
         \x20   Join public.a AS a LEFT JOIN (subquery) AS d ON d.k = a.k JOIN (subquery) AS x ON x.k = a.k\n\
         \x20     (old state and changes: as 2 inner-join variants, each outer join taken as an inner \
         join or as its null-padded anti-join)\n\
         \x20     Scan public.a AS a\n\
         \x20     Subquery d\n\
         \x20       Distinct\n\
         \x20         Project k\n\
         \x20           Scan public.b AS b\n\
         \x20     Subquery x\n\
         \x20       Project k, count(*) AS n\n\
         \x20         Aggregate GROUP BY k: count(*); each changed group recomputed from its input\n\
         \x20           Scan public.c AS c\n"
    );
    assert_eq!(
        explain(
            "SELECT k, count(DISTINCT s) AS n FROM a GROUP BY k HAVING count(*) > 1",
            &[("k", "integer"), ("n", "bigint")]
        ),
        "Operator tree:\n\
         \x20 Project k, count(DISTINCT s) AS n\n\
         \x20   Aggregate GROUP BY k HAVING count(*) > 1: count(DISTINCT s); each changed group \
         recomputed (aggregate with DISTINCT (count(DISTINCT s)))\n\
         \x20     Scan public.a AS a\n"
    );
    assert_eq!(
        explain(
            "SELECT k FROM a EXCEPT ALL SELECT k FROM b UNION ALL SELECT k FROM c",
            &[("k", "integer")]
        ),
        "Operator tree:\n\
         \x20 UNION ALL\n\
         \x20   EXCEPT ALL\n\
         \x20     Project k\n\
         \x20       Scan public.a AS a\n\
         \x20     Project k\n\
         \x20       Scan public.b AS b\n\
         \x20   Project k\n\
         \x20     Scan public.c AS c\n"
    );
    // FULL: the query as the refresh runs it (AUTO fell back here, FULL was asked there).
    assert_eq!(
        explain(
            "SELECT id, random() AS r FROM a",
            &[("id", "integer"), ("r", "double precision")]
        ),
        "Operator tree: none; every refresh recomputes the query as written:\n\
         \x20 SELECT id, random() AS r FROM public.a AS a\n"
    );
    let full = plan_stream_table(&input(
        "SELECT k FROM a INTERSECT SELECT k FROM b",
        RefreshMode::Full,
        &[("k", "integer")],
        vec![a.clone(), b.clone()],
    ))
    .unwrap();
    assert!(
        full.explain.ends_with(
            "Operator tree: none; every refresh recomputes the query as written:\n\
             \x20 SELECT k FROM public.a AS a INTERSECT SELECT k FROM public.b AS b\n"
        ),
        "{}",
        full.explain
    );
}

/// The plan says which deltas each DIFFERENTIAL statement reads and how many times: exactly the
/// holes the engine fills.
#[test]
fn delta_reads_are_the_holes() {
    let a = rel(
        7,
        "a",
        &[("id", "integer"), ("k", "integer"), ("s", "text")],
    );
    let b = rel(
        8,
        "b",
        &[("id", "integer"), ("k", "integer"), ("s", "text")],
    );
    let c = rel(
        9,
        "c",
        &[("id", "integer"), ("k", "integer"), ("s", "text")],
    );
    /// Query, its columns, the reads of its delta statement.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [(u32, usize)]);
    let cases: &[Case] = &[
        (
            "SELECT k, count(*) AS n FROM a GROUP BY k",
            &[("k", "integer"), ("n", "bigint")],
            &[(7, 1)],
        ),
        (
            "SELECT id FROM a WHERE k > 1",
            &[("id", "integer")],
            &[(7, 1)],
        ),
        // Changes of a join b new, b old (a's delta and b's current minus its delta).
        (
            "SELECT a.id, b.s FROM a JOIN b ON b.k = a.k",
            &[("id", "integer"), ("s", "text")],
            &[(7, 1), (8, 2)],
        ),
        (
            "SELECT k FROM a EXCEPT ALL SELECT k FROM b",
            &[("k", "integer")],
            &[(7, 3), (8, 3)],
        ),
        // b's old state in the terms of a's and c's changes, and in the anti-join's term its
        // changes and its old state.
        (
            "SELECT a.id FROM a, c WHERE a.id NOT IN (SELECT id FROM b) AND c.k = a.k",
            &[("id", "integer")],
            &[(7, 1), (8, 4), (9, 2)],
        ),
    ];
    for (q, cols, reads) in cases {
        let p = plan_stream_table(&input(
            q,
            RefreshMode::Differential,
            cols,
            vec![a.clone(), b.clone(), c.clone()],
        ))
        .unwrap();
        let diff = p.differential_refresh.as_ref().unwrap();
        assert!(diff[0].delta_reads().is_empty(), "{q}");
        assert_eq!(
            diff[1].delta_reads(),
            reads.iter().copied().collect::<BTreeMap<_, _>>(),
            "{q}"
        );
        // Rendered, each read is one occurrence of the relation filling the hole.
        let sql = diff[1].render(|k| format!("pg_temp.__delta_{k}__"));
        for (k, n) in *reads {
            assert_eq!(
                sql.matches(&format!("pg_temp.__delta_{k}__")).count(),
                *n,
                "{q}"
            );
        }
        assert_eq!(
            sql.matches("pg_temp.__delta_").count(),
            reads.iter().map(|r| r.1).sum::<usize>()
        );
        assert!(p.full_refresh.iter().all(|s| !s.contains("__delta")), "{q}");
    }
}

#[test]
fn bag_sql_golden() {
    let p = plan_stream_table(&input(
        "SELECT id, total FROM orders WHERE total > 10",
        RefreshMode::Differential,
        &[("id", "integer"), ("total", "numeric")],
        vec![orders()],
    ))
    .unwrap();
    assert_eq!(p.layout, StorageLayout::Bag);
    assert_eq!(
        p.full_refresh,
        vec![
            "DELETE FROM public.st".to_string(),
            "INSERT INTO public.st (id, total, __pgt_hash) SELECT __pgt_q.*, \
             pg_catalog.hash_record_extended(__pgt_q, 0::pg_catalog.int8) FROM (SELECT id, total FROM public.orders AS \
             orders WHERE total > 10) AS __pgt_q(id, total)"
                .to_string(),
        ]
    );
    let diff = p.differential_refresh.as_ref().unwrap();
    assert_eq!(diff[0], RefreshStatement::sql("SET LOCAL jit = off"));
    assert!(diff[0].delta_reads().is_empty());
    // The statement reads the delta of orders (key 1) once, through a typed hole: stored as
    // `{delta 1}`, filled by the engine.
    assert_eq!(diff[1].delta_reads(), BTreeMap::from([(1, 1)]));
    let d = &p.stored_differential_refresh().unwrap()[1];
    assert_eq!(
        d,
        "WITH __pgt_d(id, total, __pgt_w) AS (SELECT id, total, __pgt_w0 AS __pgt_w FROM \
         (SELECT id, customer_id, product_id, total, __pgt_weight AS __pgt_w0 FROM \
         {delta 1}) AS orders WHERE (total > 10)), __pgt_n AS (SELECT id, \
         total, pg_catalog.sum(__pgt_w)::pg_catalog.int8 AS __pgt_cnt, \
         pg_catalog.hash_record_extended(ROW(id, total), 0::pg_catalog.int8) AS __pgt_h FROM \
         __pgt_d GROUP BY id, total HAVING pg_catalog.sum(__pgt_w) <> 0), __pgt_del AS \
         (DELETE FROM public.st WHERE ctid = ANY (ARRAY(SELECT s.ctid FROM __pgt_n n CROSS JOIN \
         LATERAL (SELECT x.ctid FROM public.st x WHERE x.__pgt_hash = n.__pgt_h AND x.id IS NOT \
         DISTINCT FROM n.id AND x.total IS NOT DISTINCT FROM n.total LIMIT -n.__pgt_cnt) s WHERE \
         n.__pgt_cnt < 0))) INSERT INTO public.st (id, total, __pgt_hash) SELECT n.id, n.total, \
         n.__pgt_h FROM __pgt_n n CROSS JOIN LATERAL \
         pg_catalog.generate_series(1::pg_catalog.int8, n.__pgt_cnt) WHERE \
         n.__pgt_cnt > 0"
    );
    assert_eq!(
        diff[1].render(|key| format!("pgtrickle_changes.delta_{key}")),
        d.replace("{delta 1}", "pgtrickle_changes.delta_1")
    );
    // Never reads the source table itself: a single-source filter needs only its delta.
    assert!(!d.contains("public.orders"), "{d}");
}

#[test]
fn join_delta_uses_new_left_and_old_right() {
    let p = plan_stream_table(&input(
        "SELECT o.id, p.category FROM orders o JOIN products p ON p.id = o.product_id",
        RefreshMode::Differential,
        &[("id", "integer"), ("category", "text")],
        vec![orders(), products()],
    ))
    .unwrap();
    let explain = &p.explain;
    // Changes of orders join the products as of after-before order: old products.
    assert!(
        explain.contains(
            "Delta for changes of public.orders:\n  SELECT o.id, p.category, __pgt_w0 * __pgt_w1 \
             AS __pgt_w FROM (SELECT id, customer_id, product_id, total, __pgt_weight AS \
             __pgt_w0 FROM <delta of public.orders>) AS o JOIN (SELECT id, category, \
             price, 1 AS __pgt_w1 FROM public.products AS __pgt_cur UNION ALL SELECT id, category, price, \
             -__pgt_weight AS __pgt_w1 FROM <delta of public.products>) AS p ON p.id = \
             o.product_id\n"
        ),
        "{explain}"
    );
    assert!(
        explain.contains(
            "Delta for changes of public.products:\n  SELECT o.id, p.category, __pgt_w1 AS \
             __pgt_w FROM public.orders AS o JOIN (SELECT id, category, price, __pgt_weight AS \
             __pgt_w1 FROM <delta of public.products>) AS p ON p.id = o.product_id\n"
        ),
        "{explain}"
    );
}

#[test]
fn auto_falls_back_with_notice_and_differential_errors_naming_construct() {
    let cases: &[(&str, &str)] = &[
        ("SELECT o.id, p.category FROM orders o LEFT JOIN orders x ON x.id = o.id RIGHT JOIN products p ON p.id = o.product_id", "RIGHT JOIN after another outer join"),
        ("SELECT o.id FROM orders o WHERE o.product_id NOT IN (SELECT id, price FROM products)", "IN (subquery returning several columns)"),
        ("SELECT o.id FROM orders o WHERE o.total > 0 OR EXISTS (SELECT 1 FROM products p WHERE p.id = o.product_id)", "EXISTS (subquery)"),
        ("SELECT o.id, (SELECT max(price) FROM products) AS r FROM orders o", "scalar subquery"),
        ("SELECT id FROM orders UNION ALL (SELECT id FROM orders ORDER BY id LIMIT 1)", "LIMIT"),
        ("SELECT id, random() AS r FROM orders", "volatile function random()"),
        ("SELECT id, (SELECT 1) + row_number() OVER (ORDER BY id) AS r FROM orders", "subquery"),
        ("WITH RECURSIVE t AS (SELECT id FROM orders UNION ALL SELECT o.id FROM orders o JOIN t ON o.id = t.id + 1) SELECT id FROM t", "WITH RECURSIVE"),
        ("SELECT id FROM orders WHERE total > now()::date - 3", "now"),
    ];
    for (q, construct) in cases {
        let cols = [("id", "integer"), ("category", "text"), ("r", "bigint")];
        let n = if q.contains("category") {
            2
        } else if q.contains(" AS r ") {
            3
        } else {
            1
        };
        let ncols: Vec<(&str, &str)> = match n {
            2 => vec![cols[0], cols[1]],
            3 => vec![cols[0], cols[2]],
            _ => vec![cols[0]],
        };
        let auto = plan_stream_table(&input(
            q,
            RefreshMode::Auto,
            &ncols,
            vec![orders(), products()],
        ))
        .unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(auto.mode, EffectiveMode::Full, "{q}");
        assert_eq!(auto.layout, StorageLayout::Plain, "{q}");
        let notice = auto.notice.clone().unwrap_or_default();
        assert!(notice.contains(construct), "{q}: {notice}");
        assert!(auto.differential_refresh.is_none());
        let full = plan_stream_table(&input(
            q,
            RefreshMode::Full,
            &ncols,
            vec![orders(), products()],
        ))
        .unwrap();
        assert_eq!(full.mode, EffectiveMode::Full);
        assert!(full.notice.is_none());
        for mode in [RefreshMode::Differential, RefreshMode::Immediate] {
            let e =
                plan_stream_table(&input(q, mode, &ncols, vec![orders(), products()])).unwrap_err();
            assert_eq!(e.sqlstate(), "0A000", "{q}");
            assert!(e.message().contains(construct), "{q}: {e}");
        }
    }
}

#[test]
fn always_rejected_and_caller_errors() {
    let o = || vec![orders()];
    let one = [("id", "integer")];
    let err = |q: &str, mode, cols: &[(&str, &str)], rels| {
        plan_stream_table(&input(q, mode, cols, rels)).unwrap_err()
    };
    let e = err(
        "SELECT id FROM orders LIMIT 3",
        RefreshMode::Full,
        &one,
        o(),
    );
    assert_eq!(
        (e.sqlstate(), e.message().contains("LIMIT")),
        ("0A000", true),
        "{e}"
    );
    let e = err(
        "SELECT id FROM orders FOR UPDATE",
        RefreshMode::Full,
        &one,
        o(),
    );
    assert_eq!(e.sqlstate(), "0A000");
    let e = err(
        "SELECT id FROM orders TABLESAMPLE BERNOULLI (5)",
        RefreshMode::Full,
        &one,
        o(),
    );
    assert!(e.message().contains("TABLESAMPLE"), "{e}");
    // Reading its own stream table.
    let mut me = rel(3, "st", &[("id", "integer")]);
    me.kind = RelationKind::StreamTable;
    let e = err("SELECT id FROM st", RefreshMode::Full, &one, vec![me]);
    assert_eq!(e.sqlstate(), "42P17");
    assert!(e.message().contains("reads the stream table itself"), "{e}");
    // A relation the caller did not describe.
    let e = err("SELECT id FROM nowhere", RefreshMode::Full, &one, o());
    assert_eq!(e.sqlstate(), "42P01");
    assert!(e.message().contains("nowhere"), "{e}");
    // Duplicate output names cannot be stored.
    let e = err(
        "SELECT id, id FROM orders",
        RefreshMode::Full,
        &[("id", "integer"), ("id", "integer")],
        o(),
    );
    assert_eq!(e.sqlstate(), "42P17");
    assert!(e.message().contains("\"id\" appears more than once"), "{e}");
    // A description that does not fit the query.
    let e = err(
        "SELECT id, total FROM orders",
        RefreshMode::Differential,
        &one,
        o(),
    );
    assert_eq!(e.sqlstate(), "0A000");
    assert!(
        e.message()
            .contains("2 columns seen where 1 were described"),
        "{e}"
    );
    // Syntax error.
    let e = err("SELECT FROM WHERE", RefreshMode::Full, &one, o());
    assert_eq!(e.sqlstate(), "42601");
    // A source without change capture: DIFFERENTIAL impossible, AUTO falls back.
    let mut nocdc = orders();
    nocdc.delta_key = None;
    let e = err(
        "SELECT id FROM orders",
        RefreshMode::Differential,
        &one,
        vec![nocdc.clone()],
    );
    assert!(e.message().contains("without change capture"), "{e}");
    let p = plan_stream_table(&input(
        "SELECT id FROM orders",
        RefreshMode::Auto,
        &one,
        vec![nocdc],
    ))
    .unwrap();
    assert_eq!(p.mode, EffectiveMode::Full);
    // NUL marks the delta holes in generated SQL: an input holding one (PostgreSQL text never
    // does) cannot be maintained differentially.
    let mut nul = orders();
    nul.current = "public.\"ord\0ers\"".into();
    let p = plan_stream_table(&input(
        "SELECT id FROM orders",
        RefreshMode::Auto,
        &one,
        vec![nul],
    ))
    .unwrap();
    assert_eq!(p.mode, EffectiveMode::Full);
    assert!(p.notice.unwrap().contains("a NUL character"));
    // Volatile functions are fine under FULL.
    let p = plan_stream_table(&input(
        "SELECT id, random() AS r FROM orders",
        RefreshMode::Full,
        &[("id", "integer"), ("r", "double precision")],
        o(),
    ))
    .unwrap();
    assert_eq!(p.mode, EffectiveMode::Full);
}

#[test]
fn seed_examples_plan() {
    let remote_products = rel(
        4,
        "remote_products",
        &[
            ("id", "integer"),
            ("name", "text"),
            ("category", "text"),
            ("price", "numeric"),
        ],
    );
    let p = plan_stream_table(&input(
        "\n    SELECT rp.category, COUNT(*) AS product_count, AVG(rp.price) AS avg_price, MIN(rp.price) AS min_price\n    FROM remote_products rp\n    GROUP BY rp.category\n  ",
        RefreshMode::Auto,
        &[("category", "text"), ("product_count", "bigint"), ("avg_price", "numeric"), ("min_price", "numeric")],
        vec![remote_products],
    ))
    .unwrap();
    assert_eq!(p.mode, EffectiveMode::Differential);
    let events = rel(
        5,
        "events_bridge",
        &[
            ("event_id", "bigint"),
            ("user_id", "integer"),
            ("product_id", "integer"),
            ("event_type", "text"),
            ("revenue_usd", "numeric(10,2)"),
            ("occurred_at", "timestamp with time zone"),
        ],
    );
    let p = plan_stream_table(&input(
        "SELECT date_trunc('minute', occurred_at) AS minute, product_id, SUM(revenue_usd) AS total_revenue, COUNT(*) AS purchase_count FROM events_bridge WHERE event_type = 'purchase' GROUP BY date_trunc('minute', occurred_at), product_id",
        RefreshMode::Differential,
        &[("minute", "timestamp with time zone"), ("product_id", "integer"), ("total_revenue", "numeric"), ("purchase_count", "bigint")],
        vec![events],
    ))
    .unwrap();
    assert_eq!(p.mode, EffectiveMode::Differential);
    // CURRENT_DATE makes a join time-dependent: AUTO refreshes it FULL, with a notice.
    let er = rel(
        6,
        "exchange_rates",
        &[
            ("currency", "text"),
            ("rate", "numeric"),
            ("effective_date", "date"),
        ],
    );
    let mut ord = orders();
    ord.columns.push(ColumnDef::new("currency", "text"));
    let p = plan_stream_table(&input(
        "SELECT o.customer_id, SUM(o.total * er.rate) AS revenue_usd FROM orders o JOIN exchange_rates er ON er.currency = o.currency AND er.effective_date = CURRENT_DATE GROUP BY o.customer_id",
        RefreshMode::Auto,
        &[("customer_id", "integer"), ("revenue_usd", "numeric")],
        vec![ord, er],
    ))
    .unwrap();
    assert_eq!(p.mode, EffectiveMode::Full);
    assert!(p.notice.unwrap().contains("current_date"));
}

#[test]
fn a_ten_table_join_with_aggregates_plans_differentially() {
    let mut rels = Vec::new();
    let mut from = String::from("t0");
    for i in 0..10 {
        rels.push(rel(
            10 + i,
            &format!("t{i}"),
            &[("id", "integer"), ("k", "integer"), ("v", "numeric")],
        ));
        if i > 0 {
            from.push_str(&format!(" JOIN t{i} ON t{i}.id = t{}.k", i - 1));
        }
    }
    let q = format!(
        "SELECT t0.k, t9.k AS k9, count(*) AS n, sum(t3.v) AS s, avg(t5.v) AS a, min(t7.v) AS mn, \
         max(t9.v) AS mx FROM {from} WHERE t2.v > 0 GROUP BY t0.k, t9.k"
    );
    let inp = input(
        &q,
        RefreshMode::Differential,
        &[
            ("k", "integer"),
            ("k9", "integer"),
            ("n", "bigint"),
            ("s", "numeric"),
            ("a", "numeric"),
            ("mn", "numeric"),
            ("mx", "numeric"),
        ],
        rels,
    );
    assert_eq!(referenced_relations(&q).unwrap().len(), 10);
    let p = plan_stream_table(&inp).unwrap();
    assert_eq!(p.mode, EffectiveMode::Differential);
    // Planning is deterministic: the same input gives the same statements.
    let again = plan_stream_table(&inp).unwrap();
    assert_eq!(again.differential_refresh, p.differential_refresh);
    assert!(p.differential_refresh.is_some());
}

#[test]
fn generated_sql_stays_small() {
    let a = rel(
        7,
        "a",
        &[("id", "integer"), ("k", "integer"), ("s", "text")],
    );
    let b = rel(
        8,
        "b",
        &[("id", "integer"), ("k", "integer"), ("s", "text")],
    );
    let c = rel(
        9,
        "c",
        &[("id", "integer"), ("k", "integer"), ("s", "text")],
    );
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "SELECT e.k, e.s FROM (SELECT k, s FROM a EXCEPT SELECT k, s FROM b) e WHERE e.k IS NOT NULL",
            &[("k", "integer"), ("s", "text")],
        ),
        (
            "SELECT x.k, c.id FROM (SELECT k FROM a INTERSECT ALL SELECT k FROM b) x JOIN c ON c.k = x.k",
            &[("k", "integer"), ("id", "integer")],
        ),
    ];
    for (q, cols) in cases {
        let p = plan_stream_table(&input(
            q,
            RefreshMode::Differential,
            cols,
            vec![a.clone(), b.clone(), c.clone()],
        ))
        .unwrap();
        let len: usize = p
            .stored_differential_refresh()
            .unwrap()
            .iter()
            .map(|s| s.len())
            .sum();
        eprintln!("{len} bytes: {q}");
        assert!(len < 100_000, "{len} bytes of SQL for {q}");
    }
}

#[test]
fn quoted_and_qualified_relation_names() {
    let mut r = rel(1, "Orders", &[("Id", "integer"), ("total", "numeric")]);
    r.reference = pgtrickle_planner::RelationRef {
        schema: Some("Sales".into()),
        name: "Orders".into(),
    };
    r.current = "\"Sales\".\"Orders\"".into();
    r.delta_key = Some(42);
    let q = "SELECT \"Id\", \"Orders\".total FROM \"Sales\".\"Orders\" WHERE \"Orders\".total > 1";
    assert_eq!(
        referenced_relations(q).unwrap(),
        vec![pgtrickle_planner::RelationRef {
            schema: Some("Sales".into()),
            name: "Orders".into()
        }]
    );
    let p = plan_stream_table(&input(
        q,
        RefreshMode::Differential,
        &[("Id", "integer"), ("total", "numeric")],
        vec![r],
    ))
    .unwrap();
    assert_eq!(
        p.full_refresh[1],
        "INSERT INTO public.st (\"Id\", total, __pgt_hash) SELECT __pgt_q.*, \
         pg_catalog.hash_record_extended(__pgt_q, 0::pg_catalog.int8) FROM (SELECT \"Id\", \"Orders\".total FROM \
         \"Sales\".\"Orders\" AS \"Orders\" WHERE \"Orders\".total > 1) AS __pgt_q(\"Id\", total)"
    );
    // The engine's relation for the delta is inserted verbatim.
    let d = p.differential_refresh.as_ref().unwrap()[1]
        .render(|key| format!("pgtrickle_changes.\"Sales_Orders_delta_{key}\""));
    assert!(
        d.contains(
            "(SELECT \"Id\", total, __pgt_weight AS __pgt_w0 FROM \
             pgtrickle_changes.\"Sales_Orders_delta_42\") AS \"Orders\""
        ),
        "{d}"
    );
    // Unquoted names fold: a reference to sales.orders is another relation.
    assert_eq!(
        referenced_relations("SELECT id FROM Sales.Orders").unwrap()[0].name,
        "orders"
    );
}
