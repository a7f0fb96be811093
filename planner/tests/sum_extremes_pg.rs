//! DIFFERENTIAL refreshes of SUM and AVG over values at the limits of their types (int2, int4,
//! int8) and over the other types sum/avg accept (numeric, float8, real, money, interval),
//! with randomised inserts, updates and deletes, and change weights of +1/-1 as captured and
//! other integers as a consolidated delta has them (the same row written several times in one
//! batch). After every refresh the stream table must be bag-equal to its defining query: the
//! per-group delta must not overflow where `sum()` of the source does not.

mod common;

use common::aggregates::{self, run_seeds, Run, Source};
use common::mismatch;
use postgres::Client;
use rand::rngs::StdRng;
use rand::Rng;

const COLUMNS: &str =
    "id int, g int, x2 smallint, x4 int, x8 bigint, xn numeric(29,3), xf float8, \
                       xr real, xm money, xi interval";
const NAMES: &str = "id, g, x2, x4, x8, xn, xf, xr, xm, xi";

const X2: &[&str] = &["-32768", "32767", "-32767", "32766", "0", "-1", "1"];
const X4: &[&str] = &[
    "-2147483648",
    "2147483647",
    "-2147483647",
    "2147483646",
    "0",
    "-1",
    "7",
];
const X8: &[&str] = &[
    "-9223372036854775808",
    "9223372036854775807",
    "-9223372036854775807",
    "9223372036854775806",
    "0",
    "-1",
    "7",
];
// A numeric(p,s) column: every value has scale 3, so the plan keeps no scale state for it
// (numeric_scale_pg.rs covers numeric without a type modifier, whose values mix scales).
const XN: &[&str] = &[
    "-99999999999999999999999999.125",
    "99999999999999999999999999.500",
    "0.001",
    "-3.000",
    "0.000",
];
// Exactly representable, with exact sums of a few of them.
const XF: &[&str] = &["1e12", "-1e12", "0.5", "-2.25", "3"];
const XR: &[&str] = &["1024", "-4096", "0.5", "-3.25", "3"];
const XM: &[&str] = &["'1.25'", "'-1000000.50'", "'0.01'", "'12345678.99'"];
const XI: &[&str] = &["'1 day 02:00'", "'-3 mons'", "'00:00:00.5'", "'-7 days'"];

/// Source `t`: its changes as captured, or consolidated per distinct row.
const SOURCE: Source = Source {
    columns: COLUMNS,
    names: NAMES,
    consolidated: NAMES,
    distinct_by: NAMES,
};

fn pick(rng: &mut StdRng, values: &[&str]) -> String {
    if rng.gen_bool(0.1) {
        "NULL".into()
    } else {
        values[rng.gen_range(0..values.len())].to_string()
    }
}

fn random_row(rng: &mut StdRng) -> String {
    let id = rng.gen_range(0..10);
    let g = rng.gen_range(0..3);
    format!(
        "({id}, {g}, {}, {}, {}, {}, {}, {}, {}, {})",
        pick(rng, X2),
        pick(rng, X4),
        pick(rng, X8),
        pick(rng, XN),
        pick(rng, XF),
        pick(rng, XR),
        pick(rng, XM),
        pick(rng, XI)
    )
}

/// Inserts (the same row several times, so a consolidated delta weighs it 2 or 3), deletes and
/// updates, several per batch.
fn random_batch(rng: &mut StdRng, schema: &str) -> String {
    let mut sql = String::new();
    for _ in 0..rng.gen_range(1..5) {
        match rng.gen_range(0..10) {
            0..=3 => {
                let row = random_row(rng);
                let mut rows = vec![row.clone()];
                for _ in 0..rng.gen_range(0..3) {
                    rows.push(row.clone());
                }
                rows.push(random_row(rng));
                sql.push_str(&format!(
                    "INSERT INTO {schema}.t VALUES {};",
                    rows.join(", ")
                ));
            }
            4..=6 => {
                let set = match rng.gen_range(0..5) {
                    0 => format!("x4 = {}, x2 = {}", pick(rng, X4), pick(rng, X2)),
                    1 => format!("x8 = {}, xn = {}", pick(rng, X8), pick(rng, XN)),
                    2 => format!("g = {}", rng.gen_range(0..3)),
                    3 => format!("xf = {}, xr = {}", pick(rng, XF), pick(rng, XR)),
                    _ => format!("xm = {}, xi = {}", pick(rng, XM), pick(rng, XI)),
                };
                sql.push_str(&format!(
                    "UPDATE {schema}.t SET {set} WHERE id = {};",
                    rng.gen_range(0..10)
                ));
            }
            _ => {
                let cond = match rng.gen_range(0..4) {
                    0 => format!("id = {}", rng.gen_range(0..10)),
                    1 => format!("x4 = {}", X4[rng.gen_range(0..X4.len())]),
                    2 => format!("x8 = {}", X8[rng.gen_range(0..X8.len())]),
                    _ => format!("x2 = {}", X2[rng.gen_range(0..X2.len())]),
                };
                sql.push_str(&format!("DELETE FROM {schema}.t WHERE {cond};"));
            }
        }
    }
    sql
}

const QUERIES: &[&str] = &[
    "SELECT g, sum(x2), avg(x2), count(*) FROM t GROUP BY g",
    "SELECT g, sum(x4), avg(x4), count(*) FROM t GROUP BY g",
    "SELECT g, sum(x8), avg(x8), count(*) FROM t GROUP BY g",
    "SELECT g, sum(xn), avg(xn), count(*) FROM t GROUP BY g",
    "SELECT g, sum(x2) AS s2, avg(x2) AS a2, sum(x4) AS s4, avg(x4) AS a4, sum(x8) AS s8, \
     avg(x8) AS a8, sum(xn) AS sn, avg(xn) AS an, count(*) AS c FROM t GROUP BY g",
    "SELECT g, sum(xf) AS sf, avg(xf) AS af, sum(xr) AS sr, avg(xr) AS ar, sum(xm) AS sm, \
     sum(xi) AS si, avg(xi) AS ai, count(*) AS c FROM t GROUP BY g",
    "SELECT sum(x4) FILTER (WHERE g = 0) AS s4, avg(x4) FILTER (WHERE x8 > 0) AS a4, \
     sum(x8) FILTER (WHERE x4 < 0) AS s8, avg(x8) AS a8, count(*) AS c FROM t",
];

fn run(c: &mut Client, idx: usize, query: &str, seed: u64) -> Result<(), String> {
    let schema = format!("ext{idx}");
    // First the plain case: captured +1/-1 rows at the limits (deleting -2147483648 must not
    // compute -1 * -2147483648 in int4), then random batches.
    let fixed = [
        format!(
            "INSERT INTO {schema}.t VALUES (100, 0, -32768, -2147483648, -9223372036854775808, \
             -1.000, -1e12, -4096, '-1000000.50', '-7 days'), (101, 0, 32767, 2147483647, \
             9223372036854775807, 1.000, 1e12, 1024, '12345678.99', '1 day 02:00');"
        ),
        format!("UPDATE {schema}.t SET g = 1 WHERE id IN (100, 101);"),
        format!("DELETE FROM {schema}.t WHERE id IN (100, 101);"),
    ];
    let run = Run {
        source: &SOURCE,
        schema: &schema,
        query,
        seed,
        batches_before: 3,
        fixed: &fixed,
        rounds: 19,
        consolidate_every: 2,
        full_every: None,
    };
    aggregates::run(c, &run, random_batch, |c, cols| {
        mismatch(c, &schema, cols, query)
    })
}

#[test]
fn differential_sum_and_avg_are_exact_at_the_limits_of_their_types() {
    run_seeds(
        QUERIES,
        |q| *q,
        3,
        20_260_301,
        |c, idx, q, seed| run(c, idx, q, seed),
    );
}
