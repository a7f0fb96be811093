//! The engine plans PostgreSQL's deparsed text of a defining query (`pg_get_viewdef(..., true)`
//! under `search_path = pg_catalog`: names outside pg_catalog qualified, implicit casts
//! explicit), not the text the user wrote. For every query shape the planner's tests use (the
//! differential scenarios, the round-trip syntax forms, and the spellings only the deparser or
//! a careful user writes: parenthesised joins, `OPERATOR(schema.op)`, qualified functions),
//! check that the deparsed text gets the same decisions as the original (mode under AUTO,
//! acceptance under DIFFERENTIAL) and that both plans' refreshes keep their stream tables
//! bag-equal to the original query over the same randomised writes. The deparsed plans'
//! refreshes run with hostile functions in schema `public`, first on the search_path, that
//! win over pg_catalog's for any call the planner leaves unqualified or inexactly typed.
//!
//! Also checks that no generated statement calls a function the planner names itself without
//! `pg_catalog.`.

mod common;

use common::scenarios::{D, F, ROUNDTRIP_QUERIES, SCENARIOS};
use common::*;
use pgtrickle_planner::{EffectiveMode, RefreshMode, StreamPlan};
use pgtrickle_test_support::Cluster;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Shapes in the deparser's own spellings, or that a user may write that way: (name, sources,
/// query). `twice` and `+|+` are defined in each test schema by [`setup`].
const EXTRA: &[(&str, &[&str], &str)] = &[
    (
        "parenthesised_join_chain",
        &["a", "b", "c"],
        "SELECT a.id, b.v, c.s FROM ((a LEFT JOIN b ON b.id = a.id) JOIN c ON c.k = a.k)",
    ),
    (
        "right_nested_inner_join",
        &["a", "b", "c"],
        "SELECT a.id, c.s FROM a JOIN (b JOIN c ON c.k = b.k) ON b.id = a.id",
    ),
    (
        "user_function_and_operator",
        &["a"],
        "SELECT id, twice(v) AS tv, v +|+ k AS vk FROM a WHERE twice(k) +|+ 1 > 2",
    ),
    (
        "user_function_grouped",
        &["a"],
        "SELECT twice(k) AS tk, sum(v +|+ 1) AS sv, count(*) FROM a GROUP BY twice(k)",
    ),
    (
        "in_list_like_case_nullif",
        &["a"],
        "SELECT id, CASE WHEN s LIKE 'a%' THEN nullif(v, 3) END AS x FROM a \
         WHERE k IN (1, 2, 3) AND s NOT LIKE 'c%'",
    ),
    (
        "not_in_and_not_exists_together",
        &["a", "b"],
        "SELECT id FROM a WHERE k NOT IN (SELECT v FROM b) AND NOT EXISTS \
         (SELECT 1 FROM b WHERE b.id = a.id)",
    ),
    (
        "group_by_position_of_expression",
        &["a"],
        "SELECT k % 2, count(*), sum(n) FROM a GROUP BY 1",
    ),
    (
        "self_join_in_subquery",
        &["a"],
        "SELECT id FROM a WHERE k IN (SELECT a.v FROM a WHERE a.b)",
    ),
    (
        "numeric_implicit_casts",
        &["a", "b"],
        "SELECT a.k, avg(a.v + 0.5) AS av, sum(a.n * 2) AS sn, max(a.v::numeric / 3) AS mx \
         FROM a JOIN b USING (id) GROUP BY a.k",
    ),
];

/// Decisions that differ on purpose: (shape, mode for the text as written, for the deparsed
/// text). `SELECT *` over `JOIN ... USING` falls back to FULL; its deparsed text lists the
/// columns, which DIFFERENTIAL maintains. `k IN (SELECT a.v FROM a ...)` inside a query over
/// `a` falls back to FULL (the left side's alias is the subquery's too); the deparser renames
/// the inner alias (`a_1`), which DIFFERENTIAL maintains.
const KNOWN_DIFFERENCES: &[(&str, EffectiveMode, EffectiveMode)] =
    &[("using_join_star", F, D), ("self_join_in_subquery", F, D)];

/// Functions that win over pg_catalog's if the planner calls them unqualified (with `public`
/// first on the search_path) or with inexact argument types (an int4 literal for a bigint).
const HOSTILE: &str = "
    CREATE OR REPLACE FUNCTION public.hash_record_extended(record, integer) RETURNS bigint
      LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'hijacked: hash_record_extended'; END$$;
    CREATE OR REPLACE FUNCTION public.hash_record_extended(record, bigint) RETURNS bigint
      LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'hijacked: hash_record_extended'; END$$;
    CREATE OR REPLACE FUNCTION public.generate_series(integer, bigint) RETURNS SETOF bigint
      LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'hijacked: generate_series'; END$$;
    CREATE OR REPLACE FUNCTION public.generate_series(bigint, bigint) RETURNS SETOF bigint
      LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'hijacked: generate_series'; END$$;
    CREATE OR REPLACE FUNCTION public.scale(numeric) RETURNS integer
      LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'hijacked: scale'; END$$;
    CREATE OR REPLACE FUNCTION public.round(numeric, integer) RETURNS numeric
      LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'hijacked: round'; END$$;
";

/// The search_path the deparsed plans' refreshes run with: `public`'s hostile functions first.
const HOSTILE_PATH: &str = "public, pg_catalog, pg_temp";

/// Functions the planner's generated SQL calls by itself. A call of one of them without
/// `pg_catalog.` resolves through the search_path.
const PLANNER_FUNCTIONS: &[&str] = &[
    "hash_record_extended",
    "sum",
    "count",
    "avg",
    "min",
    "max",
    "bool_and",
    "bool_or",
    "every",
    "generate_series",
    "scale",
    "round",
    "pg_current_snapshot",
];

struct Shape {
    name: String,
    tables: &'static [&'static str],
    query: &'static str,
}

fn shapes() -> Vec<Shape> {
    let mut v: Vec<Shape> = SCENARIOS
        .iter()
        .map(|s| Shape {
            name: s.name.to_string(),
            tables: s.tables,
            query: s.query,
        })
        .collect();
    v.extend(ROUNDTRIP_QUERIES.iter().enumerate().map(|(i, q)| Shape {
        name: format!("roundtrip_{i}"),
        tables: &["a", "b"],
        query: q,
    }));
    v.extend(EXTRA.iter().map(|(n, t, q)| Shape {
        name: n.to_string(),
        tables: t,
        query: q,
    }));
    v
}

/// Sources, the user function and operator of [`EXTRA`], and a few batches of data.
fn setup(c: &mut postgres::Client, schema: &str, tables: &[&str], seed: u64) {
    let mut tables = tables.to_vec();
    // Round-trip queries read b too.
    if !tables.contains(&"b") {
        tables.push("b");
    }
    create_sources(c, schema, &tables);
    c.batch_execute(&format!(
        "CREATE FUNCTION {schema}.twice(integer) RETURNS integer IMMUTABLE LANGUAGE sql \
           AS 'SELECT $1 * 2';
         CREATE FUNCTION {schema}.plus3(integer, integer) RETURNS integer IMMUTABLE \
           LANGUAGE sql AS 'SELECT $1 + 3 * $2';
         CREATE OPERATOR {schema}.+|+ (LEFTARG = integer, RIGHTARG = integer, \
           FUNCTION = {schema}.plus3);"
    ))
    .expect("user objects");
    let mut rng = StdRng::seed_from_u64(seed);
    for t in &tables {
        for _ in 0..3 {
            c.batch_execute(&random_batch(&mut rng, schema, t))
                .expect("initial data");
        }
    }
}

/// Storage, a FULL refresh, then rounds of writes each followed by a DIFFERENTIAL refresh (a
/// FULL one for FULL plans), checking the stream table against the original `query` each time.
fn exercise(
    c: &mut postgres::Client,
    schema: &str,
    tables: &[&str],
    query: &str,
    plan: &StreamPlan,
    path: &str,
    seed: u64,
) -> Result<(), String> {
    for s in &plan.storage_ddl {
        c.batch_execute(s).map_err(|e| format!("{e:?}\nDDL: {s}"))?;
    }
    let cols: Vec<String> = describe(c, schema, query)?
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    let mut all = tables.to_vec();
    if !all.contains(&"b") {
        all.push("b");
    }
    let consumed: Vec<String> = all.iter().map(|t| format!("{schema}.{t}__delta")).collect();
    refresh_consuming_in(c, path, &plan.full_refresh, &consumed)
        .map_err(|e| format!("full: {e}"))?;
    if let Some(m) = mismatch(c, schema, &cols, query) {
        return Err(format!("after the first FULL refresh: {m}"));
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    for round in 0..4 {
        let mut batch = String::new();
        for t in &all {
            batch.push_str(&random_batch(&mut rng, schema, t));
        }
        c.batch_execute(&batch)
            .map_err(|e| format!("{e}: {batch}"))?;
        let stmts = differential_sql(c, plan).unwrap_or_else(|| plan.full_refresh.clone());
        refresh_consuming_in(c, path, &stmts, &consumed)
            .map_err(|e| format!("round {round}: {e}"))?;
        if let Some(m) = mismatch(c, schema, &cols, query) {
            return Err(format!("round {round} after [{batch}]: {m}"));
        }
    }
    Ok(())
}

/// How a plan came out, for comparing decisions.
fn decision(p: &Result<StreamPlan, pgtrickle_planner::PlanError>) -> String {
    match p {
        Ok(p) => format!("{:?}", p.mode),
        Err(e) => format!("error {}", e.sqlstate()),
    }
}

fn compare(c: &mut postgres::Client, idx: usize, shape: &Shape) -> Result<(), String> {
    let seed = 7_000 + idx as u64;
    let (so, sd) = (format!("dp{idx}o"), format!("dp{idx}d"));
    setup(c, &so, shape.tables, seed);
    setup(c, &sd, shape.tables, seed);
    let deparsed = deparse(c, &sd, shape.query)?;
    // Under DIFFERENTIAL: accepted or refused alike.
    let strict_o = plan_original(c, &so, shape.query, RefreshMode::Differential);
    let strict_d = plan_text(c, &sd, &deparsed, RefreshMode::Differential);
    let auto_o = plan_original(c, &so, shape.query, RefreshMode::Auto);
    let auto_d = plan_text(c, &sd, &deparsed, RefreshMode::Auto);
    let known = KNOWN_DIFFERENCES
        .iter()
        .find(|(n, _, _)| *n == shape.name)
        .map(|(_, o, d)| (format!("{o:?}"), format!("{d:?}")));
    let (ao, ad) = (decision(&auto_o), decision(&auto_d));
    match &known {
        Some(k) if *k != (ao.clone(), ad.clone()) => {
            return Err(format!(
                "AUTO: {ao} as written, {ad} deparsed; expected {k:?}"
            ))
        }
        None if ao != ad => {
            return Err(format!(
                "AUTO: {ao} as written, {ad} deparsed from\n{deparsed}\n{:?}",
                auto_d.as_ref().map(|p| &p.notice)
            ))
        }
        _ => {}
    }
    let (so_, sd_) = (decision(&strict_o), decision(&strict_d));
    if known.is_none() && so_ != sd_ {
        return Err(format!(
            "DIFFERENTIAL: {so_} as written, {sd_} deparsed from\n{deparsed}\n{:?}",
            strict_d.as_ref().err().map(|e| e.to_string())
        ));
    }
    let (Ok(po), Ok(pd)) = (auto_o, auto_d) else {
        return Ok(());
    };
    exercise(c, &so, shape.tables, shape.query, &po, &so, seed)
        .map_err(|e| format!("as written: {e}"))?;
    exercise(c, &sd, shape.tables, shape.query, &pd, HOSTILE_PATH, seed)
        .map_err(|e| format!("deparsed ({deparsed}): {e}"))
}

#[test]
fn deparsed_queries_are_planned_like_the_originals() {
    let cluster = Cluster::start();
    let mut c = connect(&cluster);
    c.batch_execute(HOSTILE).expect("hostile functions");
    let mut failures = Vec::new();
    for (idx, shape) in shapes().iter().enumerate() {
        if let Err(e) = compare(&mut c, idx, shape) {
            failures.push(format!("{}: {e}", shape.name));
        }
        c.batch_execute(&format!(
            "DROP SCHEMA dp{idx}o CASCADE; DROP SCHEMA dp{idx}d CASCADE"
        ))
        .expect("drop");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Occurrences of `name(` in `sql` not preceded by an identifier character or a dot: unqualified
/// calls. Returns their byte offsets.
fn unqualified_calls(sql: &str, name: &str) -> Vec<usize> {
    let pat = format!("{name}(");
    sql.match_indices(&pat)
        .map(|(i, _)| i)
        .filter(|&i| {
            !sql[..i]
                .chars()
                .next_back()
                .is_some_and(|ch| ch.is_alphanumeric() || ch == '_' || ch == '.' || ch == '"')
        })
        .collect()
}

/// `sql` with every unqualified call of a [`PLANNER_FUNCTIONS`] name qualified by pg_catalog, so
/// that such calls left in generated SQL are the planner's own.
fn qualify_calls(sql: &str) -> String {
    let mut s = sql.to_string();
    for f in PLANNER_FUNCTIONS {
        for i in unqualified_calls(&s, f).into_iter().rev() {
            s.insert_str(i, "pg_catalog.");
        }
    }
    s
}

#[test]
fn generated_sql_calls_functions_by_their_qualified_names() {
    let cluster = Cluster::start();
    let mut c = connect(&cluster);
    let mut failures = Vec::new();
    for (idx, shape) in shapes().iter().enumerate() {
        let schema = format!("q{idx}");
        setup(&mut c, &schema, shape.tables, idx as u64);
        let text = qualify_calls(&deparse(&mut c, &schema, shape.query).expect("deparse"));
        for mode in [
            RefreshMode::Auto,
            RefreshMode::Differential,
            RefreshMode::Full,
        ] {
            let Ok(p) = plan_text(&mut c, &schema, &text, mode) else {
                continue;
            };
            let differential = p.stored_differential_refresh().unwrap_or_default();
            let stmts = p
                .storage_ddl
                .iter()
                .chain(&p.full_refresh)
                .chain(&differential);
            for s in stmts {
                for f in PLANNER_FUNCTIONS {
                    for i in unqualified_calls(s, f) {
                        let end = (i + 60).min(s.len());
                        failures.push(format!(
                            "{} ({mode:?}): unqualified {f}( at ...{}...",
                            shape.name,
                            s.get(i..end).unwrap_or("")
                        ));
                    }
                }
            }
        }
        c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .expect("drop");
    }
    failures.dedup();
    assert!(
        failures.is_empty(),
        "{} unqualified calls:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn unqualified_calls_are_found() {
    let sql = "SELECT sum(a), pg_catalog.sum(b), __pgt_sum(c), x.sum(d), \"sum\"(e) FROM t";
    assert_eq!(unqualified_calls(sql, "sum"), vec![7]);
    assert_eq!(
        qualify_calls("SELECT count(*), max(x) FROM t"),
        "SELECT pg_catalog.count(*), pg_catalog.max(x) FROM t"
    );
}
