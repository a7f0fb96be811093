//! The text `explain_st` shows: refresh mode (and why FULL, when AUTO fell back), storage
//! layout, the operator tree, and for a DIFFERENTIAL plan the delta SQL per source.

use std::fmt::Write;

use crate::input::PlanInput;
use crate::plan::{body_sources, EffectiveMode, StreamPlan};
use crate::query::model::Shape;
use crate::sqlgen::relation::{RelGen, Version};

/// Renders the explain text of a plan.
pub fn render(input: &PlanInput, plan: &StreamPlan, model: Option<&Shape>) -> String {
    let mut out = String::new();
    let mode = match plan.mode {
        EffectiveMode::Full => "FULL",
        EffectiveMode::Differential => "DIFFERENTIAL",
    };
    let _ = writeln!(out, "Stream table: {}", input.stream_table);
    let _ = writeln!(
        out,
        "Refresh mode: {mode} (requested {})",
        input.refresh_mode
    );
    if let Some(n) = &plan.notice {
        let _ = writeln!(out, "Note: {n}");
    }
    let _ = writeln!(out, "Storage: {:?}", plan.layout);
    if !plan.hidden_columns.is_empty() {
        let _ = writeln!(out, "Hidden columns: {}", plan.hidden_columns.join(", "));
    }
    let _ = writeln!(out, "Operator tree:");
    for line in plan.tree.to_string().lines() {
        let _ = writeln!(out, "  {line}");
    }
    let (Some(shape), EffectiveMode::Differential) = (model, plan.mode) else {
        return out;
    };
    for k in body_sources(shape) {
        let rg = RelGen {
            relations: &input.relations,
            only: Some(k),
        };
        let sql = match shape {
            Shape::Bag(b) => rg.body(b, Version::Delta, "__pgt_w"),
            // The grouped input's changes: group keys, aggregate arguments and filters.
            Shape::Aggregate(p) => crate::sqlgen::aggregate::input_delta(&rg, p),
        };
        let _ = writeln!(
            out,
            "Delta for changes of {}:\n  {sql}",
            input.relations[k].resolved
        );
    }
    out
}
