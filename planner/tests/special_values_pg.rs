//! DIFFERENTIAL (and FULL) refreshes of SUM and AVG over float8, float4 and numeric values that
//! include NaN, 'Infinity' and '-Infinity'. A running sum cannot take a special value back
//! (Infinity - Infinity is NaN), and PostgreSQL's result depends on the special values alone:
//! NaN with a NaN or with both infinities, else the infinity there is, else the finite sum. The
//! batches insert, update and delete special values, delete every special value of a group or
//! of the table, and put both infinities in one group; after every refresh the stream table
//! must match its defining query as a bag (NaN = NaN for float and numeric, so EXCEPT ALL
//! matches NaN rows) and as text. Finite float values are small halves, whose sums are exact.

mod common;

use common::{
    connect, describe, differential_sql, mismatch, plan, refresh_consuming, text_mismatch,
};
use pgtrickle_planner::{EffectiveMode, RefreshMode};
use pgtrickle_test_support::Cluster;
use postgres::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const COLUMNS: &str = "id int, g int, xf float8, xr real, xn numeric, xp numeric(10,2)";
const NAMES: &str = "id, g, xf, xr, xn, xp";

const SPECIAL: &[&str] = &["'NaN'", "'Infinity'", "'-Infinity'"];
const XF: &[&str] = &["1", "-2.5", "0.5", "3", "-0.5", "1024"];
const XR: &[&str] = &["1", "-2.5", "0.5", "3", "-4096"];
// Mixed scales, so that the scale state of unconstrained numeric is exercised too.
const XN: &[&str] = &["1.5", "-2", "0.25", "3.000", "-7.10", "100"];
// numeric(10,2) can hold NaN but no infinity.
const XP: &[&str] = &["1.25", "-3.00", "0.50", "'NaN'"];

/// Source `t`, its changes captured into `t__changes` and read through `t__delta`: as captured,
/// or summed per distinct row when `mode.consolidate` is set (weights other than +1/-1; the
/// numeric column is distinct as text, so that `3.000` and `3` stay apart).
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
           SELECT id, g, xf, xr, xn::text::numeric, xp, sum(__pgt_weight)::int
           FROM {schema}.t__changes WHERE (SELECT consolidate FROM {schema}.mode)
           GROUP BY id, g, xf, xr, xn::text, xp HAVING sum(__pgt_weight) <> 0;
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
    let mut rng = StdRng::seed_from_u64(seed);
    create_source(c, &schema);
    for _ in 0..2 {
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
    let check = |c: &mut Client| {
        mismatch(c, &schema, &cols, query).or_else(|| text_mismatch(c, &schema, &cols, query))
    };
    if let Some(m) = check(c) {
        return Err(format!("after the initial FULL refresh: {m}"));
    }
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
    for round in 0..40 {
        let consolidate = round > fixed.len() && round % 3 == 1;
        let batch = match fixed.get(round) {
            Some(b) => b.clone(),
            None => random_batch(&mut rng, &schema),
        };
        c.batch_execute(&format!(
            "{batch} UPDATE {schema}.mode SET consolidate = {consolidate};"
        ))
        .map_err(|e| format!("{e}: {batch}"))?;
        // Now and then a FULL refresh, whose state the DIFFERENTIAL ones continue from.
        let full = round > fixed.len() && round % 9 == 0;
        let statements = if full {
            &plan.full_refresh
        } else {
            differential
        };
        refresh_consuming(c, statements, &[format!("{schema}.t__changes")]).map_err(|e| {
            format!(
                "round {round} (consolidated: {consolidate}, full: {full}) batch [{batch}]: {e}"
            )
        })?;
        if let Some(m) = check(c) {
            return Err(format!(
                "round {round} (consolidated: {consolidate}, full: {full}) after batch \
                 [{batch}]: {m}"
            ));
        }
    }
    Ok(())
}

#[test]
fn differential_sum_and_avg_are_exact_with_nan_and_infinities() {
    let cluster = Cluster::start();
    let mut c = connect(&cluster);
    let base: u64 = std::env::var("PGTRICKLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_260_520);
    let mut failures = Vec::new();
    for (idx, q) in QUERIES.iter().enumerate() {
        for rep in 0..4u64 {
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
