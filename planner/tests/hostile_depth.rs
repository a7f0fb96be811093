//! Statements of every deep shape (operator chains, nested parentheses, subqueries, CASE, casts,
//! unary operators, long lists) cost the planner at most an error, on a thread with the 2 MiB
//! stack of a runtime worker: parsing, walking, printing and dropping the trees it builds never
//! overflows the stack. Over the bound, an API call is 54001 (54000 for too many tokens) and
//! other statements are left to the server (None); just under it, calls parse and defining
//! queries plan.

use pgtrickle_planner::limits::MAX_NESTING;
use pgtrickle_planner::{
    parse_api_call, parse_api_script, plan_stream_table, referenced_relations, ColumnDef,
    PlanInput, RefreshMode, RelationKind, RelationRef, SourceRelation, StName,
};

/// Runs `f` on a thread with a 2 MiB stack, as tokio's workers have.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

/// Expressions of each shape with about `n` levels.
fn shapes(n: usize) -> Vec<(&'static str, String)> {
    vec![
        ("operator chain", format!("1{}", "+1".repeat(n))),
        ("AND chain", format!("true{}", " AND true".repeat(n))),
        (
            "parentheses",
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        ),
        (
            "subqueries",
            format!("{}1{}", "(SELECT ".repeat(n), ")".repeat(n)),
        ),
        (
            "CASE",
            format!("{}1{}", "CASE WHEN true THEN ".repeat(n), " END".repeat(n)),
        ),
        ("casts", format!("1{}", "::int".repeat(n))),
        ("unary minus", format!("{}1", "- ".repeat(n))),
        ("NOT", format!("{}true", "NOT ".repeat(n))),
        ("IN list", format!("1 IN (1{})", ",1".repeat(n))),
    ]
}

#[test]
fn the_reported_statement_is_no_api_call() {
    let sql = format!("select 1 as pgtrickle_create_x, 1{}", "+1".repeat(50_000));
    let got = on_small_stack(move || parse_api_call(&sql).map(|c| c.is_some()));
    assert_eq!(got, Ok(false));
}

#[test]
fn deep_api_calls_are_54001_and_other_statements_none() {
    for (shape, expr) in shapes(20_000) {
        let call = format!("SELECT pgtrickle.refresh_stream_table('s'), {expr}");
        let read = format!("SELECT pgtrickle.pgt_status(), {expr}");
        let script = format!("SELECT {expr}; SELECT pgtrickle.refresh_stream_table('s')");
        let (call, read, script) = on_small_stack(move || {
            (
                parse_api_call(&call).map(|c| c.is_some()),
                parse_api_call(&read).map(|c| c.is_some()),
                parse_api_script(&script).map(|s| s.map(|s| s.len())),
            )
        });
        if shape == "IN list" {
            // Wide, not deep: too many tokens for an API statement.
            assert_eq!(call.map_err(|e| e.sqlstate()), Err("54000"), "{shape}");
            assert_eq!(read, Ok(false), "{shape}");
            continue;
        }
        let e = call.expect_err(shape);
        assert_eq!(e.sqlstate(), "54001", "{shape}: {e}");
        assert!(e.message().contains("too deeply nested"), "{shape}: {e}");
        assert_eq!(read, Ok(false), "{shape}");
        // In a script the deep statement is plain SQL for the server.
        assert_eq!(script, Ok(Some(2)), "{shape}");
    }
}

#[test]
fn deep_defining_queries_are_54001() {
    for (shape, expr) in shapes(20_000) {
        let sql = format!("SELECT {expr} AS x FROM t");
        let got = on_small_stack(move || referenced_relations(&sql).map(|r| r.len()));
        if shape == "IN list" {
            assert_eq!(got, Ok(1), "{shape}");
            continue;
        }
        let e = got.expect_err(shape);
        assert_eq!(e.sqlstate(), "54001", "{shape}: {e}");
        assert!(e.message().contains("defining query"), "{shape}: {e}");
    }
}

fn input(query: &str) -> PlanInput {
    PlanInput {
        stream_table: StName {
            schema: Some("public".into()),
            name: "st".into(),
        },
        storage: "public.st".into(),
        query: query.into(),
        refresh_mode: RefreshMode::Auto,
        columns: vec![
            ColumnDef::new("a", "integer"),
            ColumnDef::new("x", "integer"),
        ],
        relations: vec![SourceRelation {
            reference: RelationRef {
                schema: None,
                name: "t".into(),
            },
            resolved: StName {
                schema: Some("public".into()),
                name: "t".into(),
            },
            kind: RelationKind::Table,
            columns: vec![ColumnDef::new("a", "integer")],
            primary_key: None,
            current: "public.t".into(),
            delta_key: Some(1),
        }],
    }
}

/// The deepest of `sizes` at which `shape` passes the bounds as a defining query.
fn deepest_accepted(shape: &str) -> (usize, String) {
    for n in [MAX_NESTING / 3, MAX_NESTING / 6, 150, 100, 60, 40, 20, 10] {
        let (_, expr) = shapes(n)
            .into_iter()
            .find(|(s, _)| *s == shape)
            .expect("shape");
        let sql = format!("SELECT a, {expr} AS x FROM t");
        match referenced_relations(&sql) {
            Err(e) if e.sqlstate() == "54001" => continue,
            _ => return (n, expr),
        }
    }
    panic!("{shape} is refused even 10 levels deep");
}

#[test]
fn the_deepest_statements_accepted_parse_and_plan_on_a_small_stack() {
    for (shape, _) in shapes(1) {
        let (n, expr) = deepest_accepted(shape);
        eprintln!("{shape}: {n} levels accepted");
        let call = format!("SELECT pgtrickle.refresh_stream_table('s'), {expr}");
        let query = format!("SELECT a, {expr} AS x FROM t");
        let (call, plan) = on_small_stack(move || {
            let call = parse_api_call(&call).map(|c| c.is_some());
            let plan = plan_stream_table(&input(&query)).map(|p| p.full_refresh.len());
            (call, plan)
        });
        // Parsed, then refused for its place, or left to the server (not a bound).
        let judged =
            matches!(&call, Ok(false)) || matches!(&call, Err(e) if e.sqlstate() == "0A000");
        assert!(judged, "{shape}: {call:?}");
        let accepted = plan.is_ok() || matches!(&plan, Err(e) if e.sqlstate() != "54001");
        assert!(accepted, "{shape}: {plan:?}");
    }
}
