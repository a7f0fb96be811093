//! The text `explain_st` shows: refresh mode (and why FULL, when AUTO fell back), storage
//! layout, the operator tree, and for a DIFFERENTIAL plan the delta SQL per source.
//!
//! The operator tree of a DIFFERENTIAL plan is printed from the model its statements are
//! generated from ([`Shape`]): what it shows is what the SQL does (an INTERSECT as a DISTINCT
//! over a semi-join, a subquery's GROUP BY recomputing its changed groups, ...). A FULL plan
//! has no operator tree of its own: its refresh runs the defining query as written, which is
//! what explain shows.

use std::fmt::Write;

use crate::api_call::quote_ident;
use crate::error::Result;
use crate::input::PlanInput;
use crate::plan::{body_sources, EffectiveMode, StreamPlan};
use crate::query::model::{
    Agg, AggInput, AggKind, AggPlan, Block, Body, FactorSource, GroupedBody, Shape,
};
use crate::sqlgen::relation::{RelGen, Version};
use crate::statement::RefreshStatement;

/// Renders the explain text of a plan. `query_sql` is the query the FULL refresh runs.
pub fn render(
    input: &PlanInput,
    plan: &StreamPlan,
    model: Option<&Shape>,
    query_sql: &str,
) -> Result<String> {
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
    let _ = writeln!(out, "Storage: {}", plan.layout);
    if !plan.hidden_columns.is_empty() {
        let _ = writeln!(out, "Hidden columns: {}", plan.hidden_columns.join(", "));
    }
    let (Some(shape), EffectiveMode::Differential) = (model, plan.mode) else {
        let _ = writeln!(
            out,
            "Operator tree: none; every refresh recomputes the query as written:\n  {query_sql}"
        );
        return Ok(out);
    };
    let _ = writeln!(out, "Operator tree:");
    Tree {
        input,
        out: &mut out,
    }
    .shape(shape);
    let delta_name = |key: u32| {
        input
            .relations
            .iter()
            .find(|r| r.delta_key == Some(key))
            .map(|r| format!("<delta of {}>", r.resolved))
            .unwrap_or_else(|| format!("<delta {key}>"))
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
            Shape::Keyed(p) => crate::sqlgen::keyed::affected(&rg, p),
        };
        let sql = RefreshStatement::from_generated(&sql)?.render(delta_name);
        let _ = writeln!(
            out,
            "Delta for changes of {}:\n  {sql}",
            input.relations[k].resolved
        );
    }
    Ok(out)
}

/// Prints a model as an indented tree, one operator per line, inputs below their consumer.
struct Tree<'a> {
    input: &'a PlanInput,
    out: &'a mut String,
}

impl Tree<'_> {
    fn line(&mut self, depth: usize, text: &str) {
        let _ = writeln!(self.out, "{}{text}", "  ".repeat(depth + 1));
    }

    fn shape(&mut self, shape: &Shape) {
        match shape {
            Shape::Bag(b) => self.body(b, 0),
            Shape::Aggregate(p) => self.aggregate(p, None, 0),
            Shape::Keyed(k) => self.keyed(k, 0),
        }
    }

    fn keyed(&mut self, k: &crate::query::model::KeyedPlan, depth: usize) {
        use crate::query::model::KeyedInput;
        match &k.input {
            KeyedInput::Whole(inner) => {
                self.line(
                    depth,
                    &format!("Recompute whole result on change ({})", k.what),
                );
                match inner.as_ref() {
                    Shape::Bag(b) => self.body(b, depth + 1),
                    Shape::Aggregate(p) => self.aggregate(p, None, depth + 1),
                    Shape::Keyed(k) => self.keyed(k, depth + 1),
                }
            }
            KeyedInput::Keys { body, exprs } => {
                let keys = if exprs.is_empty() {
                    "the whole result".to_string()
                } else {
                    exprs.join(", ")
                };
                self.line(
                    depth,
                    &format!(
                        "Recompute changed keys ({}): key {keys}; {} key set(s)",
                        k.what,
                        k.sets.len()
                    ),
                );
                self.body(body, depth + 1);
            }
        }
    }

    fn body(&mut self, body: &Body, depth: usize) {
        match body {
            Body::Block(b) => self.block(b, true, depth),
            Body::UnionAll(parts) => {
                self.line(depth, "UNION ALL");
                for p in parts {
                    self.body(p, depth + 1);
                }
            }
            Body::Grouped(g) => self.aggregate(&g.plan, Some(g), depth),
            Body::SetAll(x) => {
                self.line(
                    depth,
                    if x.intersect {
                        "INTERSECT ALL"
                    } else {
                        "EXCEPT ALL"
                    },
                );
                self.body(&x.left, depth + 1);
                self.body(&x.right, depth + 1);
            }
        }
    }

    /// Grouping: at the top of the query (`sub` None: one stored row per group) or in a
    /// subquery.
    fn aggregate(&mut self, plan: &AggPlan, sub: Option<&GroupedBody>, depth: usize) {
        let (block, items, having) = match &plan.input {
            AggInput::Distinct(body) => {
                self.line(depth, "Distinct");
                self.body(body, depth + 1);
                return;
            }
            AggInput::Grouped {
                block,
                items,
                having,
                ..
            } => (block, items, having),
        };
        if items.is_empty() && plan.aggs.is_empty() {
            // DISTINCT in a subquery: grouped on every column of its block.
            self.line(depth, "Distinct");
            self.block(block, true, depth + 1);
            return;
        }
        self.line(depth, &format!("Project {}", items.join(", ")));
        let mut text = "Aggregate".to_string();
        if !plan.key_exprs.is_empty() {
            let _ = write!(text, " GROUP BY {}", plan.key_exprs.join(", "));
        }
        if let Some(h) = having {
            let _ = write!(text, " HAVING {h}");
        }
        if !plan.aggs.is_empty() {
            let aggs: Vec<String> = plan.aggs.iter().map(agg_call).collect();
            let _ = write!(text, ": {}", aggs.join(", "));
        }
        match (sub, &plan.rescan_all) {
            (Some(_), _) => text.push_str("; each changed group recomputed from its input"),
            (None, Some(why)) => {
                let _ = write!(text, "; each changed group recomputed ({why})");
            }
            (None, None) => {}
        }
        self.line(depth + 1, &text);
        self.block(block, false, depth + 2);
    }

    /// A select-project-join block: its projection (when `project`), semi- and anti-joins,
    /// WHERE filter and FROM clause.
    fn block(&mut self, b: &Block, project: bool, mut depth: usize) {
        if project {
            self.line(depth, &format!("Project {}", b.items.join(", ")));
            depth += 1;
        }
        for p in b.preds.iter().rev() {
            self.line(
                depth,
                if p.negated {
                    "Anti-join NOT EXISTS"
                } else {
                    "Semi-join EXISTS"
                },
            );
            depth += 1;
        }
        // The semi- and anti-joins' subqueries come after their left input, innermost first.
        let preds_depth = depth;
        if let Some(w) = &b.where_sql {
            self.line(depth, &format!("Filter {w}"));
            depth += 1;
        }
        self.from(b, depth);
        for (i, p) in b.preds.iter().enumerate() {
            self.body(&p.body, preds_depth - i);
        }
    }

    /// The FROM clause: one scan or subquery, or the join as written (base relations by name,
    /// subqueries as `(subquery)`) with each of its relations below.
    fn from(&mut self, b: &Block, depth: usize) {
        let mut from = b.from_sql.clone();
        for f in &b.factors {
            let text = match &f.source {
                FactorSource::Base(i) => self.input.relations[*i].resolved.to_string(),
                FactorSource::Derived(_) => "(subquery)".to_string(),
                FactorSource::NullRow(_) => "(NULL row)".to_string(),
                FactorSource::Constant => f.placeholder(),
            };
            from = from.replacen(&f.placeholder(), &text, 1);
        }
        if let [f] = b.factors.as_slice() {
            match &f.source {
                FactorSource::Derived(body) => {
                    self.line(depth, &format!("Subquery {}", quote_ident(&b.aliases[0])));
                    self.body(body, depth + 1);
                }
                _ => self.line(depth, &format!("Scan {from}")),
            }
            return;
        }
        self.line(depth, &format!("Join {from}"));
        if !b.variants.is_empty() {
            self.line(
                depth + 1,
                &format!(
                    "(old state and changes: as {} inner-join variants, each outer join taken as \
                     an inner join or as its null-padded anti-join)",
                    b.variants.len()
                ),
            );
        }
        for (f, alias) in b.factors.iter().zip(&b.aliases) {
            let alias = quote_ident(alias);
            match &f.source {
                FactorSource::Base(i) => self.line(
                    depth + 1,
                    &format!("Scan {} AS {alias}", self.input.relations[*i].resolved),
                ),
                FactorSource::Derived(body) => {
                    self.line(depth + 1, &format!("Subquery {alias}"));
                    self.body(body, depth + 2);
                }
                FactorSource::NullRow(_) => self.line(depth + 1, &format!("NULL row AS {alias}")),
                FactorSource::Constant => self.line(
                    depth + 1,
                    &format!(
                        "Function or VALUES {alias} (per row of the items before it; no delta)"
                    ),
                ),
            }
        }
    }
}

/// An aggregate call as the model keeps it.
fn agg_call(a: &Agg) -> String {
    let name = match a.kind {
        AggKind::CountStar => return filtered("count(*)".into(), a),
        AggKind::Count => "count",
        AggKind::Sum => "sum",
        AggKind::Avg => "avg",
        AggKind::Min => "min",
        AggKind::Max => "max",
        AggKind::BoolAnd => "bool_and",
        AggKind::BoolOr => "bool_or",
    };
    let distinct = if a.distinct { "DISTINCT " } else { "" };
    filtered(
        format!("{name}({distinct}{})", a.arg.as_deref().unwrap_or_default()),
        a,
    )
}

fn filtered(call: String, a: &Agg) -> String {
    match &a.filter {
        Some(f) => format!("{call} FILTER (WHERE {f})"),
        None => call,
    }
}
