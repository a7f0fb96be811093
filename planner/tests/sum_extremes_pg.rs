//! DIFFERENTIAL refreshes of SUM and AVG over values at the limits of their types (int2, int4,
//! int8) and over the other types sum/avg accept (numeric, float8, real, money, interval),
//! with randomised inserts, updates and deletes, and change weights of +1/-1 as captured and
//! other integers as a consolidated delta has them (the same row written several times in one
//! batch). After every refresh the stream table must be bag-equal to its defining query: the
//! per-group delta must not overflow where `sum()` of the source does not.

mod common;

use common::{connect, describe, differential_sql, mismatch, plan, refresh_consuming};
use pgtrickle_planner::{EffectiveMode, RefreshMode};
use pgtrickle_test_support::Cluster;
use postgres::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

/// Source `t` with its changes captured into `t__changes` (+1/-1 per row, as the engine's
/// triggers write them) and read through `t__delta`: the captured rows as they are, or (when
/// `consolidate` is set) summed per distinct row, so that weights other than +1/-1 occur.
fn create_source(c: &mut Client, schema: &str) {
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t ({COLUMNS});
         CREATE TABLE {schema}.t__changes ({COLUMNS}, __pgt_weight int NOT NULL);
         CREATE TABLE {schema}.mode (consolidate boolean NOT NULL);
         INSERT INTO {schema}.mode VALUES (false);
         CREATE VIEW {schema}.t__delta AS
           SELECT {NAMES}, __pgt_weight FROM {schema}.t__changes
           WHERE NOT (SELECT consolidate FROM {schema}.mode)
           UNION ALL
           SELECT {NAMES}, sum(__pgt_weight)::int FROM {schema}.t__changes
           WHERE (SELECT consolidate FROM {schema}.mode)
           GROUP BY {NAMES} HAVING sum(__pgt_weight) <> 0;
         CREATE FUNCTION {schema}.t__capture() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           IF TG_OP IN ('DELETE', 'UPDATE') THEN
             INSERT INTO {schema}.t__changes SELECT o.*, -1 FROM old_rows o;
           END IF;
           IF TG_OP IN ('INSERT', 'UPDATE') THEN
             INSERT INTO {schema}.t__changes SELECT n.*, 1 FROM new_rows n;
           END IF;
           RETURN NULL;
         END $f$;
         CREATE TRIGGER cap_i AFTER INSERT ON {schema}.t REFERENCING NEW TABLE AS new_rows
           FOR EACH STATEMENT EXECUTE FUNCTION {schema}.t__capture();
         CREATE TRIGGER cap_u AFTER UPDATE ON {schema}.t
           REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
           FOR EACH STATEMENT EXECUTE FUNCTION {schema}.t__capture();
         CREATE TRIGGER cap_d AFTER DELETE ON {schema}.t REFERENCING OLD TABLE AS old_rows
           FOR EACH STATEMENT EXECUTE FUNCTION {schema}.t__capture();"
    ))
    .expect("create source");
}

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
    let mut rng = StdRng::seed_from_u64(seed);
    create_source(c, &schema);
    for _ in 0..3 {
        c.batch_execute(&random_batch(&mut rng, &schema))
            .map_err(|e| e.to_string())?;
    }
    let plan =
        plan(c, &schema, query, RefreshMode::Differential).map_err(|e| format!("plan: {e}"))?;
    if plan.mode != EffectiveMode::Differential {
        return Err(format!("mode {:?}: {:?}", plan.mode, plan.notice));
    }
    let differential = &differential_sql(c, &plan).ok_or("no differential refresh")?;
    for s in &plan.storage_ddl {
        c.batch_execute(s).map_err(|e| format!("{e:?}\nDDL: {s}"))?;
    }
    let cols: Vec<String> = describe(c, &schema, query)?
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    refresh_consuming(c, &plan.full_refresh, &[format!("{schema}.t__changes")])
        .map_err(|e| format!("full: {e}"))?;
    if let Some(m) = mismatch(c, &schema, &cols, query) {
        return Err(format!("after the initial FULL refresh: {m}"));
    }
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
    for round in 0..19 {
        let consolidate = round > fixed.len() && round % 2 == 1;
        let batch = match fixed.get(round) {
            Some(b) => b.clone(),
            None => random_batch(&mut rng, &schema),
        };
        c.batch_execute(&format!(
            "{batch} UPDATE {schema}.mode SET consolidate = {consolidate};"
        ))
        .map_err(|e| format!("{e}: {batch}"))?;
        refresh_consuming(c, differential, &[format!("{schema}.t__changes")]).map_err(|e| {
            format!("round {round} (consolidated: {consolidate}) batch [{batch}]: {e}")
        })?;
        if let Some(m) = mismatch(c, &schema, &cols, query) {
            return Err(format!(
                "round {round} (consolidated: {consolidate}) after batch [{batch}]: {m}"
            ));
        }
    }
    Ok(())
}

#[test]
fn differential_sum_and_avg_are_exact_at_the_limits_of_their_types() {
    let cluster = Cluster::start();
    let mut c = connect(&cluster);
    let base: u64 = std::env::var("PGTRICKLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_260_301);
    let mut failures = Vec::new();
    for (idx, q) in QUERIES.iter().enumerate() {
        for rep in 0..3u64 {
            let seed = base.wrapping_add(idx as u64 * 1000 + rep);
            if let Err(e) = run(&mut c, idx, q, seed) {
                failures.push(format!("{q} (seed {seed}): {e}"));
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
