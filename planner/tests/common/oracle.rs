//! The randomised oracle the PostgreSQL tests run per scenario: sources with random data, the
//! stream table planned under AUTO (its mode checked), then rounds of random writes, each
//! followed by a DIFFERENTIAL (or every fourth round a FULL) refresh and a bag comparison with
//! the defining query.

use super::scenarios::{Scenario, F};
use super::*;
use pgtrickle_planner::RefreshMode;
use rand::SeedableRng;

/// Runs scenario `sc` in schema `sc<idx>` with `seed`; the error says what went wrong where.
pub fn run(c: &mut postgres::Client, idx: usize, sc: &Scenario, seed: u64) -> Result<(), String> {
    let schema = format!("sc{idx}");
    let mut rng = StdRng::seed_from_u64(seed);
    create_sources(c, &schema, sc.tables);
    // Initial data before the stream table exists.
    for t in sc.tables {
        for _ in 0..3 {
            c.batch_execute(&random_batch(&mut rng, &schema, t))
                .map_err(|e| e.to_string())?;
        }
    }
    let plan = plan(c, &schema, sc.query, RefreshMode::Auto).map_err(|e| format!("plan: {e}"))?;
    if plan.mode != sc.mode {
        return Err(format!(
            "mode {:?}, expected {:?}: {:?}",
            plan.mode, sc.mode, plan.notice
        ));
    }
    if sc.mode == F && plan.notice.is_none() {
        return Err("AUTO fell back to FULL without a notice".into());
    }
    for s in &plan.storage_ddl {
        c.batch_execute(s).map_err(|e| format!("{e:?}\nDDL: {s}"))?;
    }
    let described = describe(c, &schema, sc.query)?;
    // json has no equality operator: such rows are compared by their text form.
    let compare = if described
        .iter()
        .any(|c| c.type_name.trim_end_matches("[]") == "json")
    {
        text_mismatch
    } else {
        mismatch
    };
    let cols: Vec<String> = described
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    refresh(c, &schema, sc.tables, &plan.full_refresh).map_err(|e| format!("full: {e}"))?;
    let differential = differential_sql(c, &plan);
    if let Some(m) = compare(c, &schema, &cols, sc.query) {
        return Err(format!("after initial FULL refresh: {m}"));
    }
    for round in 0..8 {
        let n_tables = rng.gen_range(1..=sc.tables.len());
        let mut batch = String::new();
        for t in &sc.tables[..n_tables] {
            batch.push_str(&random_batch(&mut rng, &schema, t));
        }
        c.batch_execute(&batch)
            .map_err(|e| format!("{e}: {batch}"))?;
        let (kind, stmts) = match &differential {
            Some(d) if round % 4 != 3 => ("DIFFERENTIAL", d),
            _ => ("FULL", &plan.full_refresh),
        };
        refresh(c, &schema, sc.tables, stmts).map_err(|e| format!("round {round} {kind}: {e}"))?;
        if let Some(m) = compare(c, &schema, &cols, sc.query) {
            return Err(format!(
                "round {round} after {kind} refresh of batch [{batch}]: {m}"
            ));
        }
    }
    Ok(())
}
