//! The randomised DIFFERENTIAL runs of the aggregate tests (sum_extremes_pg.rs,
//! special_values_pg.rs, numeric_scale_pg.rs): one source `t` whose changes are captured into
//! `t__changes` and read through the view `t__delta`, either as captured (weights +1/-1) or
//! consolidated per distinct row (other integers, as a consolidated delta has them); a defining
//! query planned DIFFERENTIAL and refreshed after every batch of writes (fixed batches first,
//! then random ones), checked after every refresh; and the seeds each query runs with.

use pgtrickle_planner::{EffectiveMode, RefreshMode};
use pgtrickle_test_support::Cluster;
use postgres::Client;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{connect, describe, differential_sql, plan, refresh_consuming};

/// Source `t`: its columns, and how its consolidated delta tells rows apart.
pub struct Source {
    /// Column definitions of `t` (and of `t__changes`, before the weight).
    pub columns: &'static str,
    /// Column names of `t`, in order.
    pub names: &'static str,
    /// The consolidated delta's columns (before the summed weight), in the order of `names`.
    pub consolidated: &'static str,
    /// What the consolidated delta groups by: the rows it tells apart.
    pub distinct_by: &'static str,
}

impl Source {
    /// Creates schema `schema` with source `t`, its changes captured into `t__changes` (+1/-1
    /// per row, as the engine's triggers write them) and read through `t__delta`: the captured
    /// rows as they are, or (when `mode.consolidate` is set) summed per distinct row, so that
    /// weights other than +1/-1 occur.
    pub fn create(&self, c: &mut Client, schema: &str) {
        let Source {
            columns,
            names,
            consolidated,
            distinct_by,
        } = self;
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
             CREATE TABLE {schema}.t ({columns});
             CREATE TABLE {schema}.t__changes ({columns}, __pgt_weight int NOT NULL);
             CREATE TABLE {schema}.mode (consolidate boolean NOT NULL);
             INSERT INTO {schema}.mode VALUES (false);
             CREATE VIEW {schema}.t__delta AS
               SELECT {names}, __pgt_weight FROM {schema}.t__changes
               WHERE NOT (SELECT consolidate FROM {schema}.mode)
               UNION ALL
               SELECT {consolidated}, sum(__pgt_weight)::int
               FROM {schema}.t__changes WHERE (SELECT consolidate FROM {schema}.mode)
               GROUP BY {distinct_by} HAVING sum(__pgt_weight) <> 0;
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
}

/// One randomised run of a defining query over a [`Source`].
pub struct Run<'a> {
    /// The source, created afresh in `schema`.
    pub source: &'a Source,
    pub schema: &'a str,
    /// The defining query (over `t`, with `search_path = schema`).
    pub query: &'a str,
    pub seed: u64,
    /// Random batches written before the stream table is planned and filled.
    pub batches_before: usize,
    /// Batches of the first rounds, in order; random batches follow.
    pub fixed: &'a [String],
    /// Rounds of one batch and one refresh.
    pub rounds: usize,
    /// After the fixed rounds, rounds with `round % consolidate_every == 1` read a consolidated
    /// delta.
    pub consolidate_every: usize,
    /// After the fixed rounds, rounds with `round % n == 0` refresh FULL instead (whose state
    /// the DIFFERENTIAL ones continue from); None: DIFFERENTIAL only.
    pub full_every: Option<usize>,
}

/// Creates the source, writes `batches_before` random batches, plans the query DIFFERENTIAL
/// (any other mode is an error), creates and fills its storage with the FULL refresh, then
/// runs the rounds: a batch, a refresh consuming `t__changes`, and `check` (given the storage's
/// quoted columns) after each, as after the FULL refresh. Returns the first failure.
pub fn run(
    c: &mut Client,
    r: &Run,
    random_batch: fn(&mut StdRng, &str) -> String,
    check: impl Fn(&mut Client, &[String]) -> Option<String>,
) -> Result<(), String> {
    let schema = r.schema;
    let mut rng = StdRng::seed_from_u64(r.seed);
    r.source.create(c, schema);
    for _ in 0..r.batches_before {
        c.batch_execute(&random_batch(&mut rng, schema))
            .map_err(|e| e.to_string())?;
    }
    let plan =
        plan(c, schema, r.query, RefreshMode::Differential).map_err(|e| format!("plan: {e}"))?;
    if plan.mode != EffectiveMode::Differential {
        return Err(format!("mode {:?}: {:?}", plan.mode, plan.notice));
    }
    let differential = &differential_sql(c, &plan).ok_or("no differential refresh")?;
    for s in &plan.storage_ddl {
        c.batch_execute(s).map_err(|e| format!("{e:?}\nDDL: {s}"))?;
    }
    let cols: Vec<String> = describe(c, schema, r.query)?
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    let changes = [format!("{schema}.t__changes")];
    refresh_consuming(c, &plan.full_refresh, &changes).map_err(|e| format!("full: {e}"))?;
    if let Some(m) = check(c, &cols) {
        return Err(format!("after the initial FULL refresh: {m}"));
    }
    for round in 0..r.rounds {
        let consolidate = round > r.fixed.len() && round % r.consolidate_every == 1;
        let batch = match r.fixed.get(round) {
            Some(b) => b.clone(),
            None => random_batch(&mut rng, schema),
        };
        c.batch_execute(&format!(
            "{batch} UPDATE {schema}.mode SET consolidate = {consolidate};"
        ))
        .map_err(|e| format!("{e}: {batch}"))?;
        let full = r
            .full_every
            .is_some_and(|n| round > r.fixed.len() && round % n == 0);
        let how = match r.full_every {
            Some(_) => format!("consolidated: {consolidate}, full: {full}"),
            None => format!("consolidated: {consolidate}"),
        };
        let statements = if full {
            &plan.full_refresh
        } else {
            differential
        };
        refresh_consuming(c, statements, &changes)
            .map_err(|e| format!("round {round} ({how}) batch [{batch}]: {e}"))?;
        if let Some(m) = check(c, &cols) {
            return Err(format!("round {round} ({how}) after batch [{batch}]: {m}"));
        }
    }
    Ok(())
}

/// On one fresh cluster, runs `run(client, index, query, seed)` for each of `queries`, `reps`
/// times with the seeds `base + 1000 * index + rep` (`base`: the environment's `PGTRICKLE_SEED`,
/// or `default_base`), up to the first failure of each query; fails the test with all failures,
/// each query named by `label` with its seed.
pub fn run_seeds<Q>(
    queries: &[Q],
    label: impl Fn(&Q) -> &str,
    reps: u64,
    default_base: u64,
    mut run: impl FnMut(&mut Client, usize, &Q, u64) -> Result<(), String>,
) {
    let cluster = Cluster::start();
    let mut c = connect(&cluster);
    let base: u64 = std::env::var("PGTRICKLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_base);
    let mut failures = Vec::new();
    for (idx, q) in queries.iter().enumerate() {
        for rep in 0..reps {
            let seed = base.wrapping_add(idx as u64 * 1000 + rep);
            if let Err(e) = run(&mut c, idx, q, seed) {
                failures.push(format!("{} (seed {seed}): {e}", label(q)));
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
