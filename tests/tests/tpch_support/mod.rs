//! What the TPC-H test (tpch.rs) is built from: the SQL of tests/tpch (schema, data generator,
//! refresh functions, the 22 queries), the list of queries the planner cannot maintain
//! differentially yet with the construct that blocks each, and the comparisons of a stream
//! table with its query.

use tokio_postgres::Client;

pub const SCHEMA: &str = include_str!("../../tpch/schema.sql");
pub const GENERATE: &str = include_str!("../../tpch/generate.sql");
pub const ORDERS: &str = include_str!("../../tpch/orders.sql");
pub const RF1: &str = include_str!("../../tpch/rf1.sql");
pub const RF2: &str = include_str!("../../tpch/rf2.sql");
pub const UPDATES: &str = include_str!("../../tpch/updates.sql");

pub const QUERIES: [(&str, &str); 22] = [
    ("q01", include_str!("../../tpch/queries/q01.sql")),
    ("q02", include_str!("../../tpch/queries/q02.sql")),
    ("q03", include_str!("../../tpch/queries/q03.sql")),
    ("q04", include_str!("../../tpch/queries/q04.sql")),
    ("q05", include_str!("../../tpch/queries/q05.sql")),
    ("q06", include_str!("../../tpch/queries/q06.sql")),
    ("q07", include_str!("../../tpch/queries/q07.sql")),
    ("q08", include_str!("../../tpch/queries/q08.sql")),
    ("q09", include_str!("../../tpch/queries/q09.sql")),
    ("q10", include_str!("../../tpch/queries/q10.sql")),
    ("q11", include_str!("../../tpch/queries/q11.sql")),
    ("q12", include_str!("../../tpch/queries/q12.sql")),
    ("q13", include_str!("../../tpch/queries/q13.sql")),
    ("q14", include_str!("../../tpch/queries/q14.sql")),
    ("q15", include_str!("../../tpch/queries/q15.sql")),
    ("q16", include_str!("../../tpch/queries/q16.sql")),
    ("q17", include_str!("../../tpch/queries/q17.sql")),
    ("q18", include_str!("../../tpch/queries/q18.sql")),
    ("q19", include_str!("../../tpch/queries/q19.sql")),
    ("q20", include_str!("../../tpch/queries/q20.sql")),
    ("q21", include_str!("../../tpch/queries/q21.sql")),
    ("q22", include_str!("../../tpch/queries/q22.sql")),
];

/// The queries the planner cannot maintain differentially yet: each is created FULL, after a
/// DIFFERENTIAL request that must fail with 0A000 naming the construct given here (the first
/// one the planner meets); the third field names what else would block it. Every other query is
/// created DIFFERENTIAL and must stay so. When the planner learns a construct, the DIFFERENTIAL
/// request succeeds and the test says which query to move out of this list.
/// docs/BENCHMARKS.md (section 4, TPC-H) has the same list.
pub const FULL_ONLY: [(&str, &str, &str); 0] = [];

/// The queries ending in ORDER BY ... LIMIT n, with n and their sort keys: the stream table
/// holds the first n rows, which are one bag only when the sort keys do not tie at row n.
pub const LIMITED: [(&str, u32, &str); 5] = [
    ("q02", 100, "s_acctbal, n_name, s_name, p_partkey"),
    ("q03", 10, "revenue, o_orderdate"),
    ("q10", 20, "revenue"),
    ("q18", 100, "o_totalprice, o_orderdate"),
    ("q21", 100, "numwait, s_name"),
];

/// The ORDER BY ... LIMIT queries that nothing else blocks, as stream tables without their
/// LIMIT (name, query): the rest of each (grouped joins; EXISTS and NOT EXISTS with a
/// non-equality correlation) must be maintained DIFFERENTIAL like the others.
pub const UNLIMITED: [(&str, &str); 3] =
    [("q03_all", "q03"), ("q10_all", "q10"), ("q21_all", "q21")];

/// `query` without its final `limit n` line.
pub fn without_limit(query: &str) -> String {
    match query.rsplit_once("\nlimit ") {
        Some((head, n)) if n.trim().parse::<u32>().is_ok() => head.to_string(),
        _ => panic!("no final limit in {query}"),
    }
}

/// The entry of `FULL_ONLY` for query `name`, if it is there.
pub fn full_only(name: &str) -> Option<&'static (&'static str, &'static str, &'static str)> {
    FULL_ONLY.iter().find(|(q, _, _)| *q == name)
}

/// A query file without its comment lines and final semicolon.
pub fn body(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .trim_end_matches(';')
        .to_string()
}

/// The columns of stream table `st` that are the query's (not the hidden `__pgt_*` ones),
/// quoted, in order.
pub async fn columns(client: &Client, st: &str) -> String {
    client
        .query_one(
            "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute \
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped \
             AND attname NOT LIKE '\\_\\_pgt\\_%'",
            &[&st],
        )
        .await
        .unwrap_or_else(|e| panic!("columns of {st}: {e:?}"))
        .get(0)
}

/// Rows of `st` not in `query` and rows of `query` not in `st` (at most 5 of each), as text.
pub async fn differing_rows(client: &Client, st: &str, cols: &str, query: &str) -> String {
    let mut out = String::new();
    for (what, sql) in [
        (
            "extra",
            format!("SELECT {cols} FROM {st} EXCEPT ALL ({query})"),
        ),
        (
            "missing",
            format!("({query}) EXCEPT ALL SELECT {cols} FROM {st}"),
        ),
    ] {
        let rows = client
            .query(
                &format!("SELECT d::text FROM ({sql}) d ORDER BY 1 LIMIT 5"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("rows of {st} differing: {e:?}"));
        for r in rows {
            out.push_str(&format!("  {what}: {}\n", r.get::<_, String>(0)));
        }
    }
    out
}

/// Whether the first n + 1 rows of a limited query have distinct sort keys (then its first n
/// rows are one bag whatever the plan).
pub async fn limit_is_deterministic(client: &Client, query: &str, n: u32, keys: &str) -> bool {
    let wider = query.replace(&format!("limit {n}"), &format!("limit {}", n + 1));
    assert_ne!(wider, query, "the query ends in limit {n}");
    client
        .query_one(
            &format!(
                "SELECT count(*) = count(DISTINCT ({keys})) FROM (SELECT {keys} FROM ({wider}) q) k"
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("ties at the limit: {e:?}"))
        .get(0)
}

/// The action (FULL, DIFFERENTIAL...) and reason of the last refresh of `st`.
pub async fn last_refresh(client: &Client, st: &str) -> (String, Option<String>) {
    let r = client
        .query_one(
            "SELECT action, reason FROM pgtrickle.get_refresh_history($1, 1)",
            &[&st],
        )
        .await
        .unwrap_or_else(|e| panic!("history of {st}: {e:?}"));
    (r.get(0), r.get(1))
}

/// The refresh mode and effective mode of `st` in `pgt_status()`.
pub async fn modes(client: &Client, st: &str) -> (String, String) {
    let r = client
        .query_one(
            "SELECT refresh_mode, effective_mode FROM pgtrickle.pgt_status() WHERE name = $1",
            &[&format!("public.{st}")],
        )
        .await
        .unwrap_or_else(|e| panic!("status of {st}: {e:?}"));
    (r.get(0), r.get(1))
}
