//! DIFFERENTIAL (and FULL) refreshes of SUM and AVG over float8, float4 and numeric values that
//! include NaN, 'Infinity' and '-Infinity'. A running sum cannot take a special value back
//! (Infinity - Infinity is NaN), and PostgreSQL's result depends on the special values alone:
//! NaN with a NaN or with both infinities, else the infinity there is, else the finite sum. The
//! batches insert, update and delete special values, delete every special value of a group or
//! of the table, and put both infinities in one group; after every refresh the stream table
//! must match its defining query as a bag (NaN = NaN for float and numeric, so EXCEPT ALL
//! matches NaN rows) and as text. Finite float values are small halves, whose sums are exact.

mod common;

use common::aggregates::{self, run_seeds, Run, Source};
use common::{mismatch, text_mismatch};
use postgres::Client;
use rand::rngs::StdRng;
use rand::Rng;

const COLUMNS: &str = "id int, g int, xf float8, xr real, xn numeric, xp numeric(10,2)";
const NAMES: &str = "id, g, xf, xr, xn, xp";

const SPECIAL: &[&str] = &["'NaN'", "'Infinity'", "'-Infinity'"];
const XF: &[&str] = &["1", "-2.5", "0.5", "3", "-0.5", "1024"];
const XR: &[&str] = &["1", "-2.5", "0.5", "3", "-4096"];
// Mixed scales, so that the scale state of unconstrained numeric is exercised too.
const XN: &[&str] = &["1.5", "-2", "0.25", "3.000", "-7.10", "100"];
// numeric(10,2) can hold NaN but no infinity.
const XP: &[&str] = &["1.25", "-3.00", "0.50", "'NaN'"];

/// Source `t`: its changes as captured, or consolidated per distinct row (weights other than
/// +1/-1; the numeric column is distinct as text, so that `3.000` and `3` stay apart).
const SOURCE: Source = Source {
    columns: COLUMNS,
    names: NAMES,
    consolidated: "id, g, xf, xr, xn::text::numeric, xp",
    distinct_by: "id, g, xf, xr, xn::text, xp",
};

/// A value of a float or unconstrained numeric column: often special, sometimes NULL.
fn value(rng: &mut StdRng, finite: &[&str]) -> String {
    match rng.gen_range(0..10) {
        0 => "NULL".into(),
        1..=3 => SPECIAL[rng.gen_range(0..SPECIAL.len())].to_string(),
        _ => finite[rng.gen_range(0..finite.len())].to_string(),
    }
}

fn constrained(rng: &mut StdRng) -> String {
    if rng.gen_bool(0.1) {
        "NULL".into()
    } else {
        XP[rng.gen_range(0..XP.len())].to_string()
    }
}

fn random_row(rng: &mut StdRng) -> String {
    let id = rng.gen_range(0..16);
    let g = if rng.gen_bool(0.1) {
        "NULL".to_string()
    } else {
        rng.gen_range(0..3).to_string()
    };
    format!(
        "({id}, {g}, {}, {}, {}, {})",
        value(rng, XF),
        value(rng, XR),
        value(rng, XN),
        constrained(rng)
    )
}

/// The condition that column `x` holds a special value.
fn special(x: &str) -> String {
    format!("{x} IN ('NaN', 'Infinity', '-Infinity')")
}

/// Inserts (the same row several times, so a consolidated delta weighs it 2 or more), updates
/// and deletes; on purpose: every special value of a group or of the table deleted or made
/// finite, one infinity of a group turned into the other, both infinities put in one group.
fn random_batch(rng: &mut StdRng, schema: &str) -> String {
    let t = format!("{schema}.t");
    let mut sql = String::new();
    for _ in 0..rng.gen_range(1..5) {
        let col = ["xf", "xr", "xn"][rng.gen_range(0..3)];
        let g = rng.gen_range(0..3);
        match rng.gen_range(0..13) {
            0..=3 => {
                let row = random_row(rng);
                let mut rows = vec![row.clone()];
                for _ in 0..rng.gen_range(0..3) {
                    rows.push(row.clone());
                }
                for _ in 0..rng.gen_range(0..3) {
                    rows.push(random_row(rng));
                }
                sql.push_str(&format!("INSERT INTO {t} VALUES {};", rows.join(", ")));
            }
            4 | 5 => {
                let set = match rng.gen_range(0..4) {
                    0 => format!("xf = {}, xr = {}", value(rng, XF), value(rng, XR)),
                    1 => format!("xn = {}, xp = {}", value(rng, XN), constrained(rng)),
                    2 => format!("g = {}", rng.gen_range(0..3)),
                    _ => format!("{col} = {}", SPECIAL[rng.gen_range(0..SPECIAL.len())]),
                };
                sql.push_str(&format!(
                    "UPDATE {t} SET {set} WHERE id = {};",
                    rng.gen_range(0..16)
                ));
            }
            6 => sql.push_str(&format!(
                "DELETE FROM {t} WHERE id = {};",
                rng.gen_range(0..16)
            )),
            7 => sql.push_str(&format!(
                "DELETE FROM {t} WHERE g = {g} AND {};",
                special(col)
            )),
            8 => sql.push_str(&format!("DELETE FROM {t} WHERE {};", special(col))),
            9 => sql.push_str(&format!(
                "UPDATE {t} SET {col} = 0.5 WHERE g IS NOT DISTINCT FROM {} AND {};",
                if rng.gen_bool(0.2) {
                    "NULL".to_string()
                } else {
                    g.to_string()
                },
                special(col)
            )),
            10 => sql.push_str(&format!(
                "UPDATE {t} SET {col} = -{col} WHERE g = {g} AND {col} IN ('Infinity', \
                 '-Infinity');"
            )),
            11 => sql.push_str(&format!(
                "INSERT INTO {t} VALUES ({id}, {g}, 'Infinity', 'Infinity', 'Infinity', 1.25), \
                 ({id}, {g}, '-Infinity', '-Infinity', '-Infinity', 'NaN');",
                id = rng.gen_range(0..16)
            )),
            _ => sql.push_str(&format!("DELETE FROM {t} WHERE xp = 'NaN' AND g = {g};")),
        }
    }
    sql
}

const QUERIES: &[&str] = &[
    "SELECT g, sum(xf) AS sf, avg(xf) AS af, sum(xr) AS sr, avg(xr) AS ar, sum(xn) AS sn, \
     avg(xn) AS an, count(*) AS c FROM t GROUP BY g",
    "SELECT sum(xf) AS sf, avg(xf) AS af, sum(xr) AS sr, avg(xr) AS ar, sum(xn) AS sn, \
     avg(xn) AS an, sum(xp) AS sp, avg(xp) AS ap FROM t",
    "SELECT g, sum(xf) FILTER (WHERE id % 2 = 0) AS sf, avg(xn) FILTER (WHERE id % 3 <> 0) AS \
     an, sum(xp) AS sp, avg(xp) AS ap, sum(xf * 2) AS sf2, avg(xr + 1) AS ar1, count(xn) AS cn \
     FROM t GROUP BY g",
];

fn run(c: &mut Client, idx: usize, query: &str, seed: u64) -> Result<(), String> {
    let schema = format!("spv{idx}");
    // First a fixed story in group 0: an infinity arrives and leaves, both infinities arrive,
    // one leaves, a NaN arrives and leaves, the other infinity leaves.
    let t = format!("{schema}.t");
    let fixed = [
        format!("INSERT INTO {t} VALUES (100, 0, 'Infinity', 'Infinity', 'Infinity', 'NaN');"),
        format!("DELETE FROM {t} WHERE id = 100;"),
        format!(
            "INSERT INTO {t} VALUES (101, 0, 'Infinity', 'Infinity', 'Infinity', 1.25), \
             (102, 0, '-Infinity', '-Infinity', '-Infinity', 'NaN'), (103, 0, 2.5, 2.5, 2.50, 1);"
        ),
        format!("DELETE FROM {t} WHERE id = 102;"),
        format!("INSERT INTO {t} VALUES (104, 0, 'NaN', 'NaN', 'NaN', 'NaN');"),
        format!("DELETE FROM {t} WHERE id = 104;"),
        format!("DELETE FROM {t} WHERE id = 101;"),
    ];
    let run = Run {
        source: &SOURCE,
        schema: &schema,
        query,
        seed,
        batches_before: 2,
        fixed: &fixed,
        rounds: 40,
        consolidate_every: 3,
        // Now and then a FULL refresh, whose state the DIFFERENTIAL ones continue from.
        full_every: Some(9),
    };
    aggregates::run(c, &run, random_batch, |c, cols| {
        mismatch(c, &schema, cols, query).or_else(|| text_mismatch(c, &schema, cols, query))
    })
}

#[test]
fn differential_sum_and_avg_are_exact_with_nan_and_infinities() {
    run_seeds(
        QUERIES,
        |q| *q,
        4,
        20_260_520,
        |c, idx, q, seed| run(c, idx, q, seed),
    );
}
