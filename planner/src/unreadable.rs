//! Plans for defining queries PostgreSQL accepts but pgtrickle-proxy's SQL parser (sqlparser)
//! cannot read (`ROWS FROM (...)`, some rare syntax): without a parse there is no model, so
//! such a query is refreshed FULL, as PostgreSQL printed it, into plain storage. AUTO says why
//! in a notice; DIFFERENTIAL (and IMMEDIATE) are refused with 0A000 naming the reason. The
//! engine finds the sources from PostgreSQL's own dependencies of the query, not by parsing.

use crate::api_call::RefreshMode;
use crate::error::{PlanError, Result};
use crate::input::{PlanInput, RelationKind};
use crate::plan::{check_columns, EffectiveMode, StorageLayout, StreamPlan};

/// Plans `input` (whose query the parser cannot read, for the reason `why`) FULL.
pub fn plan_unreadable(input: &PlanInput, why: &str) -> Result<StreamPlan> {
    let reason = format!("pgtrickle-proxy's SQL parser cannot read its defining query ({why})");
    if matches!(
        input.refresh_mode,
        RefreshMode::Differential | RefreshMode::Immediate
    ) {
        return Err(PlanError::FeatureNotSupported(format!(
            "refresh_mode {} needs a query the proxy can read: {reason}; use refresh_mode => \
             'FULL' or 'AUTO'",
            input.refresh_mode
        )));
    }
    for r in &input.relations {
        if r.resolved == input.stream_table {
            return Err(PlanError::InvalidObjectDefinition(format!(
                "the defining query of stream table {} reads the stream table itself",
                input.stream_table
            )));
        }
        if r.kind == RelationKind::ForeignTable {
            return Err(PlanError::FeatureNotSupported(format!(
                "foreign table {} in a query that {reason}: foreign sources are read through \
                 their local mirror, which needs the query parsed",
                r.resolved
            )));
        }
    }
    check_columns(&input.columns)?;
    if input.query.contains('\0') {
        return Err(PlanError::FeatureNotSupported(
            "a NUL character in the defining query".into(),
        ));
    }
    let storage = &input.storage;
    let cols = &input.columns;
    let notice = (input.refresh_mode == RefreshMode::Auto).then(|| {
        format!(
            "stream table {} uses FULL refresh: {reason}",
            input.stream_table
        )
    });
    let mut explain = format!(
        "Stream table: {}\nRefresh mode: FULL (requested {})\n",
        input.stream_table, input.refresh_mode
    );
    explain.push_str(&format!("Note: {reason}\n"));
    explain.push_str(&format!(
        "Storage: {}\nOperator tree: none; every refresh recomputes the query as written:\n  {}\n",
        StorageLayout::Plain,
        input.query
    ));
    Ok(StreamPlan {
        mode: EffectiveMode::Full,
        notice,
        layout: StorageLayout::Plain,
        storage_ddl: vec![format!(
            "CREATE TABLE {storage} ({})",
            crate::sqlgen::col_defs(cols)
        )],
        hidden_columns: vec![],
        full_refresh: vec![
            format!("DELETE FROM {storage}"),
            format!(
                "INSERT INTO {storage} ({}) {}",
                crate::sqlgen::col_list(cols),
                input.query
            ),
        ],
        differential_refresh: None,
        explain,
        sources: (0..input.relations.len()).collect(),
    })
}
