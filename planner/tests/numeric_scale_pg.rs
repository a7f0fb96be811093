//! DIFFERENTIAL refreshes of SUM and AVG over `numeric` values of mixed scales (0 to 6
//! decimals) and magnitudes up to 1e15. PostgreSQL gives `sum(x)` the largest display scale of
//! the rows summed, and `avg(x)` a result scale that depends on it; a stored running sum keeps
//! the largest scale it has ever seen. So after the rows of the largest scale are deleted
//! (which the batches do on purpose) the stream table must still match its defining query as a
//! bag *and* as text (`x::text`, where `7.000` and `7` differ), after every refresh, with change
//! weights of +1/-1 and (consolidated) other integers.

mod common;

use common::aggregates::{self, run_seeds, Run, Source};
use common::{
    connect, differential_sql, mismatch, plan, refresh_consuming, text_mismatch,
    REFRESH_SEARCH_PATH,
};
use pgtrickle_planner::{
    plan_stream_table, ColumnDef, EffectiveMode, PlanInput, RefreshMode, RelationKind, RelationRef,
    SourceRelation, StName,
};
use pgtrickle_test_support::Cluster;
use postgres::Client;
use rand::rngs::StdRng;
use rand::Rng;

const COLUMNS: &str = "id int, g int, x numeric, y numeric";
const NAMES: &str = "id, g, x, y";

/// Source `t`: its changes as captured, or consolidated per distinct row (distinct as text,
/// since grouping by a numeric would merge `7.0` and `7`, whose scales differ).
const SOURCE: Source = Source {
    columns: COLUMNS,
    names: NAMES,
    consolidated: "id, g, x::text::numeric, y::text::numeric",
    distinct_by: "id, g, x::text, y::text",
};

/// A numeric literal with 0 to 6 decimals (trailing zeros kept: they make the scale) and up to
/// 15 integer digits, sometimes NULL.
fn value(rng: &mut StdRng) -> String {
    if rng.gen_bool(0.08) {
        return "NULL".into();
    }
    let digits = rng.gen_range(0..=15u32);
    let int: u64 = if digits == 0 {
        0
    } else {
        rng.gen_range(0..10u64.pow(digits))
    };
    let scale = rng.gen_range(0..=6usize);
    let sign = if rng.gen_bool(0.4) { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{int}");
    }
    let frac: String = (0..scale)
        .map(|_| {
            // Often zeros, so that values like 7.000 (a scale above their digits) are common.
            if rng.gen_bool(0.4) {
                '0'
            } else {
                char::from(b'0' + rng.gen_range(0..10u8))
            }
        })
        .collect();
    format!("{sign}{int}.{frac}")
}

fn random_row(rng: &mut StdRng) -> String {
    let id = rng.gen_range(0..30);
    let g = if rng.gen_bool(0.1) {
        "NULL".to_string()
    } else {
        rng.gen_range(0..4).to_string()
    };
    format!("({id}, {g}, {}, {})", value(rng), value(rng))
}

/// Inserts (the same row several times, so a consolidated delta weighs it 2 or more), updates
/// and deletes, and on purpose deletes (or rescales) the rows of the largest scale, of a group
/// or of the whole table.
fn random_batch(rng: &mut StdRng, schema: &str) -> String {
    let t = format!("{schema}.t");
    let mut sql = String::new();
    for _ in 0..rng.gen_range(1..5) {
        match rng.gen_range(0..14) {
            0..=4 => {
                let row = random_row(rng);
                let mut rows = vec![row.clone()];
                for _ in 0..rng.gen_range(0..2) {
                    rows.push(row.clone());
                }
                for _ in 0..rng.gen_range(0..4) {
                    rows.push(random_row(rng));
                }
                sql.push_str(&format!("INSERT INTO {t} VALUES {};", rows.join(", ")));
            }
            5 | 6 => {
                let set = match rng.gen_range(0..3) {
                    0 => format!("x = {}", value(rng)),
                    1 => format!("g = {}", rng.gen_range(0..4)),
                    _ => format!("x = {}, y = {}", value(rng), value(rng)),
                };
                sql.push_str(&format!(
                    "UPDATE {t} SET {set} WHERE id = {};",
                    rng.gen_range(0..30)
                ));
            }
            7 => sql.push_str(&format!(
                "DELETE FROM {t} WHERE id = {};",
                rng.gen_range(0..30)
            )),
            8 => sql.push_str(&format!(
                "DELETE FROM {t} WHERE scale(x) = (SELECT max(scale(x)) FROM {t});"
            )),
            9 => sql.push_str(&format!(
                "DELETE FROM {t} WHERE (g, scale(x)) IN (SELECT g, max(scale(x)) FROM {t} \
                 GROUP BY g);"
            )),
            10 => sql.push_str(&format!(
                "DELETE FROM {t} WHERE ctid IN (SELECT ctid FROM {t} WHERE g = {} ORDER BY \
                 scale(x) DESC NULLS LAST LIMIT 1);",
                rng.gen_range(0..4)
            )),
            11 => sql.push_str(&format!(
                "UPDATE {t} SET x = trim_scale(x) WHERE scale(x) = (SELECT max(scale(x)) FROM {t});"
            )),
            12 => sql.push_str(&format!(
                "UPDATE {t} SET x = round(x, {}) WHERE (g, scale(x)) IN (SELECT g, \
                 max(scale(x)) FROM {t} GROUP BY g);",
                rng.gen_range(0..3)
            )),
            _ => sql.push_str(&format!(
                "DELETE FROM {t} WHERE scale(y) >= {};",
                rng.gen_range(3..=6)
            )),
        }
    }
    sql
}

/// Defining queries, and for those whose SUM and AVG are both over `x` without FILTER, the
/// grouping (None: global).
const QUERIES: &[(&str, Option<Option<&str>>)] = &[
    (
        "SELECT g, sum(x), avg(x), count(*) FROM t GROUP BY g",
        Some(Some("g")),
    ),
    ("SELECT sum(x), avg(x) FROM t", Some(None)),
    (
        "SELECT g, avg(x) AS ax, sum(y) AS sy, avg(y) FILTER (WHERE id % 3 = 0) AS ay, \
         sum(x) FILTER (WHERE g IS NULL OR x > 0) AS sxp, count(x) AS cx FROM t GROUP BY g",
        None,
    ),
];

/// The stored scale state of aggregates 0 and 1 (over `x`) against the source: the largest
/// scale exactly, and a count between 1 and the number of values at that scale (0 without
/// values). Returns the groups where it does not hold.
fn state_mismatch(c: &mut Client, schema: &str, group: Option<&str>) -> Option<String> {
    let (key, on) = match group {
        Some(g) => (
            format!("{g}, "),
            format!("s.{g} IS NOT DISTINCT FROM q.{g}"),
        ),
        None => (String::new(), "true".to_string()),
    };
    let mut bad = Vec::new();
    for j in 0..2 {
        let sql = format!(
            "SELECT coalesce(string_agg(concat_ws(' ', q.*::text, s.__pgt_sc{j}, \
             s.__pgt_scn{j}), '; '), '') FROM {schema}.st s JOIN (SELECT {key}m, \
             count(*) FILTER (WHERE scale(x) = m) AS n FROM (SELECT {key}x, coalesce(max(scale(x)) \
             OVER (PARTITION BY {}), 0) AS m FROM {schema}.t) w GROUP BY {key}m) q ON {on} \
             WHERE s.__pgt_sc{j} <> q.m OR NOT (s.__pgt_scn{j} BETWEEN least(q.n, 1) AND q.n)",
            group.unwrap_or("true")
        );
        let rows: String = c.query_one(&sql, &[]).expect("state").get(0);
        if !rows.is_empty() {
            bad.push(format!("aggregate {j}: {rows}"));
        }
    }
    (!bad.is_empty()).then(|| {
        format!(
            "scale state (group, scale, count; stored scale, count): {}",
            bad.join(" / ")
        )
    })
}

fn run(
    c: &mut Client,
    idx: usize,
    (query, state): (&str, Option<Option<&str>>),
    seed: u64,
) -> Result<(), String> {
    let schema = format!("nsc{idx}");
    // First a fixed story: a large value of scale 3 arrives and leaves again, then the group's
    // largest-scale rows go one by one.
    let fixed = [
        format!(
            "INSERT INTO {schema}.t VALUES (100, 0, 999999999999999.250, 1.000000), \
             (101, 0, 3, 2), (102, 0, 4.5, 0.5), (103, NULL, 0.000001, 7.000);"
        ),
        format!("DELETE FROM {schema}.t WHERE id = 100;"),
        format!("UPDATE {schema}.t SET x = 999999999999998 WHERE id = 101;"),
        format!("DELETE FROM {schema}.t WHERE id IN (102, 103);"),
    ];
    let run = Run {
        source: &SOURCE,
        schema: &schema,
        query,
        seed,
        batches_before: 3,
        fixed: &fixed,
        rounds: 40,
        consolidate_every: 3,
        full_every: None,
    };
    aggregates::run(c, &run, random_batch, |c, cols| {
        mismatch(c, &schema, cols, query)
            .or_else(|| text_mismatch(c, &schema, cols, query))
            .or_else(|| state.and_then(|g| state_mismatch(c, &schema, g)))
    })
}

#[test]
fn differential_numeric_sum_and_avg_keep_the_scale_of_the_current_rows() {
    run_seeds(
        QUERIES,
        |q| q.0,
        4,
        20_260_415,
        |c, idx, q, seed| run(c, idx, *q, seed),
    );
}

/// The identity the refresh relies on: over the same rows, `avg(x)` is the sum rounded to the
/// largest scale of the rows, divided by their count as numerics, to the last digit of its text.
#[test]
fn numeric_avg_is_the_sum_at_the_largest_scale_divided_by_the_count() {
    let cluster = Cluster::start();
    let mut c = connect(&cluster);
    c.batch_execute(
        "SELECT setseed(0.25); CREATE TABLE r AS SELECT (random() * 2000)::int AS g, \
         round(((random() - 0.5) * 10 ^ (random() * 15)::int)::numeric, (random() * 6)::int) \
         AS x FROM generate_series(1, 200000);",
    )
    .expect("data");
    let row = c
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE a::text IS DISTINCT FROM b::text), \
             count(*) FILTER (WHERE a::text IS DISTINCT FROM u::text) FROM (SELECT g, avg(x) AS a, \
             round(sum(x) + 0.0000000000, max(scale(x))) / count(x)::numeric AS b, \
             (sum(x) + 0.0000000000) / count(x)::numeric AS u FROM r GROUP BY g) q",
            &[],
        )
        .expect("compare");
    let (groups, differ, unrounded): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(groups > 1900, "{groups} groups");
    assert_eq!(
        differ, 0,
        "avg() differs from round(sum, max scale) / count"
    );
    // Without the rounding (a sum that kept a larger scale), most groups would differ.
    assert!(unrounded > groups / 2, "{unrounded} of {groups}");
}

/// Only numeric SUM and AVG over arguments whose values may have different scales keep the scale
/// state; those over integer, float and `numeric(p,s)` columns (one scale) have none. (Float and
/// numeric ones keep a finite sum and the counts of NaN and infinities: special_values_pg.rs.)
#[test]
fn scale_state_only_for_numeric_arguments() {
    let cols = |v: &[(&str, &str)]| v.iter().map(|(n, t)| ColumnDef::new(n, t)).collect();
    let t = SourceRelation {
        reference: RelationRef {
            schema: None,
            name: "t".into(),
        },
        resolved: StName {
            schema: Some("public".into()),
            name: "t".into(),
        },
        kind: RelationKind::Table,
        columns: cols(&[
            ("g", "integer"),
            ("i4", "integer"),
            ("i8", "bigint"),
            ("f", "double precision"),
            ("n", "numeric(12,2)"),
            ("n2", "numeric"),
        ]),
        primary_key: None,
        current: "public.t".into(),
        delta_key: Some(1),
    };
    let p = plan_stream_table(&PlanInput {
        stream_table: StName {
            schema: Some("public".into()),
            name: "st".into(),
        },
        storage: "public.st".into(),
        query: "SELECT g, sum(i4) AS a, avg(i4) AS b, sum(i8) AS c, avg(t.i8) AS d, avg(f) AS e, \
                sum(n) AS s, avg(t.n2) AS v, sum(i4 * 1.5) AS w FROM t GROUP BY g"
            .into(),
        refresh_mode: RefreshMode::Differential,
        columns: cols(&[
            ("g", "integer"),
            ("a", "bigint"),
            ("b", "numeric"),
            ("c", "numeric"),
            ("d", "numeric"),
            ("e", "double precision"),
            ("s", "numeric"),
            ("v", "numeric"),
            ("w", "numeric"),
        ]),
        relations: vec![t],
    })
    .expect("plan");
    assert_eq!(
        p.hidden_columns,
        [
            "__pgt_count",
            "__pgt_nn0",
            "__pgt_sum1",
            "__pgt_nn1",
            "__pgt_nn2",
            "__pgt_sum3",
            "__pgt_nn3",
            "__pgt_sum4",
            "__pgt_nn4",
            "__pgt_nan4",
            "__pgt_pinf4",
            "__pgt_ninf4",
            "__pgt_sum5",
            "__pgt_nn5",
            "__pgt_nan5",
            "__pgt_pinf5",
            "__pgt_ninf5",
            "__pgt_sum6",
            "__pgt_nn6",
            "__pgt_nan6",
            "__pgt_pinf6",
            "__pgt_ninf6",
            "__pgt_sc6",
            "__pgt_scn6",
            "__pgt_sum7",
            "__pgt_nn7",
            "__pgt_nan7",
            "__pgt_pinf7",
            "__pgt_ninf7",
            "__pgt_sc7",
            "__pgt_scn7",
            "__pgt_hash",
        ]
    );
}

/// Seq Scan lines of relation `name` that were executed (not "never executed").
fn executed_seq_scans(plan: &str, name: &str) -> Vec<String> {
    plan.lines()
        .filter(|l| {
            l.contains(&format!("Seq Scan on {name} "))
                || l.ends_with(&format!("Seq Scan on {name}"))
        })
        .filter(|l| !l.contains("never executed"))
        .map(str::to_string)
        .collect()
}

/// The scale state costs no re-scan where values share one scale (a `numeric(12,2)` column, say):
/// deleting and updating rows of a global SUM/AVG reads only the delta. Deleting the one row of
/// a larger scale re-scans (here: the whole source), and the result is still exact.
#[test]
fn scale_state_rescans_only_when_the_last_value_of_the_largest_scale_goes() {
    let cluster = Cluster::start();
    let mut c = connect(&cluster);
    let schema = "nscbig";
    SOURCE.create(&mut c, schema);
    c.batch_execute(&format!(
        "INSERT INTO {schema}.t SELECT i, i % 10, round((random() * 1e12)::numeric, 2), NULL \
         FROM generate_series(1, 50000) i; DELETE FROM {schema}.t__changes; \
         ANALYZE {schema}.t;"
    ))
    .unwrap();
    let query = "SELECT sum(x), avg(x) FROM t";
    let plan = plan(&mut c, schema, query, RefreshMode::Differential).unwrap();
    assert_eq!(plan.mode, EffectiveMode::Differential);
    for s in &plan.storage_ddl {
        c.batch_execute(s).unwrap();
    }
    refresh_consuming(
        &mut c,
        &plan.full_refresh,
        &[format!("{schema}.t__changes")],
    )
    .unwrap();
    let cols = vec!["\"sum\"".to_string(), "\"avg\"".to_string()];
    let stmts = differential_sql(&mut c, &plan).unwrap();
    let (stmt, setup) = stmts.split_last().unwrap();
    let batches = [
        (
            "DELETE FROM nscbig.t WHERE id IN (7, 8); UPDATE nscbig.t SET x = 0.25 WHERE id = 9;",
            false,
        ),
        (
            "INSERT INTO nscbig.t VALUES (60000, 1, 2.00001, NULL);",
            false,
        ),
        ("UPDATE nscbig.t SET x = x + 1 WHERE id IN (10, 11);", false),
        ("DELETE FROM nscbig.t WHERE id = 60000;", true),
        ("DELETE FROM nscbig.t WHERE id = 12;", false),
    ];
    for (batch, rescans) in batches {
        c.batch_execute(batch).unwrap();
        let mut tx = c
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .start()
            .unwrap();
        tx.batch_execute(&format!("SET LOCAL search_path = {REFRESH_SEARCH_PATH}"))
            .unwrap();
        for s in setup {
            tx.batch_execute(s).unwrap();
        }
        let text: String = tx
            .query(
                &format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {stmt}"),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0) + "\n")
            .collect();
        tx.batch_execute(&format!("DELETE FROM {schema}.t__changes"))
            .unwrap();
        tx.commit().unwrap();
        let scans = executed_seq_scans(&text, "t");
        assert_eq!(
            !scans.is_empty(),
            rescans,
            "{batch}: scans {scans:?} in\n{text}"
        );
        let m = mismatch(&mut c, schema, &cols, query)
            .or_else(|| text_mismatch(&mut c, schema, &cols, query));
        assert_eq!(m, None, "{batch}");
    }
}
