//! The differential model of a defining query: which shapes can be maintained from changes
//! (select-project-join blocks over base relations, subqueries and CTEs, UNION ALL, and on top
//! one aggregate, DISTINCT or UNION), built from the AST. Anything else is reported as
//! [`Unsupported`] with the construct's name, so AUTO falls back to FULL and DIFFERENTIAL
//! fails with 0A000.

mod builder;
mod grouping;
mod keyed;
mod lateral;
mod outer;
mod scalar;
mod semi;
mod setops;
mod using;

use grouping::*;
pub use keyed::{KeyPart, KeyedInput, KeyedPlan, FILTER_HOLE, HASH_HOLE};
use outer::*;
use scalar::*;
use semi::*;
use using::*;

use std::collections::HashMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Distinct, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, Ident, JoinConstraint, JoinOperator, ObjectName, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, SetOperator, SetQuantifier, TableAlias, TableFactor,
    TableWithJoins, Value, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::api_call::{fold_ident, fold_name, quote_ident};
use crate::input::{RelationRef, SourceRelation};

/// Why a query cannot be maintained differentially: the construct, named for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

type R<T> = Result<T, Unsupported>;

fn unsupported<T>(what: impl Into<String>) -> R<T> {
    Err(Unsupported(what.into()))
}

/// A relation expression that has three weighted versions (new, old, delta).
#[derive(Debug, Clone)]
pub enum Body {
    /// One SELECT ... FROM ... WHERE block without aggregation.
    Block(Box<Block>),
    /// UNION ALL of bodies with the same columns.
    UnionAll(Vec<Body>),
    /// GROUP BY with plain keys and maintainable aggregates, below the top of the query (a
    /// subquery in FROM or a CTE).
    Grouped(Box<GroupedBody>),
    /// INTERSECT ALL (each row min(left, right) times) or EXCEPT ALL (max(left - right, 0)).
    SetAll(Box<SetAllBody>),
}

/// INTERSECT ALL / EXCEPT ALL of two bodies with the same number of columns.
#[derive(Debug, Clone)]
pub struct SetAllBody {
    /// Left input.
    pub left: Body,
    /// Right input.
    pub right: Body,
    /// INTERSECT ALL (else EXCEPT ALL).
    pub intersect: bool,
    /// Output column names (the left's).
    pub names: Vec<String>,
}

/// A grouped subquery: its groups are recomputed for the keys its input's changes reach.
#[derive(Debug, Clone)]
pub struct GroupedBody {
    /// The grouping plan (input block, keys, aggregates, outputs).
    pub plan: AggPlan,
    /// Output column names.
    pub names: Vec<String>,
    /// Output expressions over the grouped row: keys `__pgt_kI`, aggregates `__pgt_vJ`.
    pub out_exprs: Vec<String>,
    /// HAVING over the grouped row, likewise.
    pub having: Option<String>,
}

impl Body {
    /// Output column names (best effort, as PostgreSQL names them).
    pub fn names(&self) -> Vec<String> {
        match self {
            Body::Block(b) => b.names.clone(),
            Body::UnionAll(bs) => bs.first().map(|b| b.names()).unwrap_or_default(),
            Body::Grouped(g) => g.names.clone(),
            Body::SetAll(x) => x.names.clone(),
        }
    }
}

/// A select-project-join block.
#[derive(Debug, Clone)]
pub struct Block {
    /// Select items as SQL (wildcards expanded), in the block's scope.
    pub items: Vec<String>,
    /// Output column names.
    pub names: Vec<String>,
    /// Select items' expressions as SQL, without aliases.
    pub item_exprs: Vec<String>,
    /// The factors' aliases (folded), in FROM order.
    pub aliases: Vec<String>,
    /// The FROM clause as SQL, each factor replaced by its placeholder.
    pub from_sql: String,
    /// The factors, in FROM order.
    pub factors: Vec<Factor>,
    /// The WHERE predicate as SQL, without the semi/anti-join conjuncts.
    pub where_sql: Option<String>,
    /// `[NOT] EXISTS` / `IN (subquery)` conjuncts of the WHERE clause.
    pub preds: Vec<Pred>,
    /// For a block with outer joins: inner-join blocks whose union equals it (each outer join
    /// as an inner join, or as its null-padded anti-join side). The block itself is used for
    /// the new state; the variants for old state and delta.
    pub variants: Vec<Block>,
}

/// A semi-join (`EXISTS`, `IN (subquery)`) or anti-join (`NOT EXISTS`) conjunct. Its body may
/// reference the enclosing block's aliases (correlation).
#[derive(Debug, Clone)]
pub struct Pred {
    /// NOT EXISTS.
    pub negated: bool,
    /// The subquery (its select list is irrelevant).
    pub body: Body,
    /// Unique in the query; names the aliases of its generated subqueries.
    pub id: usize,
}

/// One relation in a FROM clause.
#[derive(Debug, Clone)]
pub struct Factor {
    /// Unique in the whole query; names the placeholder and the weight column.
    pub id: usize,
    /// Where its rows come from.
    pub source: FactorSource,
    /// Its column names.
    pub columns: Vec<String>,
}

impl Factor {
    /// The text standing for this factor in [`Block::from_sql`].
    pub fn placeholder(&self) -> String {
        match self.source {
            FactorSource::Constant => format!("__pgt_const{}__", self.id),
            FactorSource::Base(_) | FactorSource::NullRow(_) => format!("__pgt_f{}__", self.id),
            FactorSource::Derived(_) => format!("(SELECT __pgt_f{}__)", self.id),
        }
    }

    /// The weight column this factor carries in its old and delta versions.
    pub fn weight(&self) -> String {
        format!("__pgt_w{}", self.id)
    }
}

/// A factor's origin.
#[derive(Debug, Clone)]
pub enum FactorSource {
    /// A source relation: its index in the caller's list.
    Base(usize),
    /// A subquery in FROM or a CTE reference.
    Derived(Body),
    /// One row of NULLs with the columns of the given source (the padded side of an outer
    /// join's anti-join part); constant, so it has no delta.
    NullRow(Box<FactorSource>),
    /// A set-returning function, VALUES or a LATERAL subquery that reads no relation, kept
    /// as written in the FROM clause: a function of the rows of the factors before it (or
    /// constant), the same in every version, so it has no delta and carries no weight (see
    /// `lateral.rs`).
    Constant,
}

/// The top of a differentially maintainable query.
#[derive(Debug, Clone)]
pub enum Shape {
    /// A bag of rows: the storage holds each row as often as the query returns it.
    Bag(Body),
    /// One row per group: GROUP BY/aggregates, DISTINCT, UNION.
    Aggregate(Box<AggPlan>),
    /// Rows recomputed per key: window functions, DISTINCT ON, grouping sets, top-k.
    Keyed(Box<KeyedPlan>),
}

/// Grouping on top of a body.
#[derive(Debug, Clone)]
pub struct AggPlan {
    /// What is grouped.
    pub input: AggInput,
    /// Group key expressions (in the input block's scope, or `__pgt_kN` for a body).
    pub key_exprs: Vec<String>,
    /// For each key, the output column that holds it.
    pub key_outputs: Vec<usize>,
    /// Aggregate calls maintained from their state.
    pub aggs: Vec<Agg>,
    /// For each output column, where it comes from.
    pub outputs: Vec<OutCol>,
    /// Why every changed group is recomputed from the sources (None: algebraic maintenance,
    /// with a re-scan only when a MIN/MAX extremum is deleted).
    pub rescan_all: Option<String>,
}

/// The grouped input.
#[derive(Debug, Clone)]
pub enum AggInput {
    /// A GROUP BY block: its FROM/WHERE, original select items, GROUP BY and HAVING.
    Grouped {
        /// FROM/WHERE (its items are replaced when generating).
        block: Box<Block>,
        /// The original select items.
        items: Vec<String>,
        /// The GROUP BY expressions as written.
        group_by: Vec<String>,
        /// HAVING as written.
        having: Option<String>,
    },
    /// DISTINCT or UNION over a body: every column is a key.
    Distinct(Body),
}

/// Where an output column of an aggregate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutCol {
    /// Group key number i.
    Key(usize),
    /// Aggregate number j.
    Agg(usize),
    /// Another expression (only with `rescan_all`).
    Expr,
}

/// An aggregate function kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    /// `count(*)`
    CountStar,
    /// `count(x)`
    Count,
    /// `sum(x)`
    Sum,
    /// `avg(x)`
    Avg,
    /// `min(x)`
    Min,
    /// `max(x)`
    Max,
    /// `bool_and(x)`, `every(x)`
    BoolAnd,
    /// `bool_or(x)`
    BoolOr,
}

/// One maintained aggregate call.
#[derive(Debug, Clone)]
pub struct Agg {
    /// Which function.
    pub kind: AggKind,
    /// Its argument as SQL (None for count(*)).
    pub arg: Option<String>,
    /// Its FILTER predicate as SQL.
    pub filter: Option<String>,
    /// The argument's type as `format_type` prints it, when the planner can tell (the argument
    /// is a column of a source relation); None otherwise.
    pub arg_type: Option<String>,
    /// `agg(DISTINCT x)`: maintained by re-scanning (at the top) or regrouping (in subqueries).
    pub distinct: bool,
    /// The output column it fills.
    pub output: usize,
}

/// Aggregate functions of PostgreSQL (names), to tell aggregates from scalar functions.
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "bool_and",
    "bool_or",
    "every",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "bit_and",
    "bit_or",
    "bit_xor",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "mode",
    "percentile_cont",
    "percentile_disc",
    "xmlagg",
    "range_agg",
    "range_intersect_agg",
    "any_value",
];

fn aggregate_name(e: &Expr) -> Option<String> {
    if let Expr::Function(f) = e {
        if f.over.is_none() {
            let parts = fold_name(&f.name)?;
            let last = parts.last()?;
            if (parts.len() == 1 || parts[0] == "pg_catalog") && AGGREGATES.contains(&last.as_str())
            {
                return Some(last.clone());
            }
        }
    }
    None
}

/// Whether `e` calls an aggregate function anywhere (not counting window functions).
pub fn expr_has_aggregate(e: &Expr) -> bool {
    struct V;
    impl Visitor for V {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if aggregate_name(e).is_some() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    }
    e.visit(&mut V).is_break()
}

/// Rejects expressions the delta rules cannot pass through: subqueries and window functions.
fn check_expr(e: &Expr) -> R<()> {
    struct V(Option<Unsupported>);
    impl Visitor for V {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            let why = match e {
                Expr::Exists { negated: false, .. } => Some("EXISTS (subquery)"),
                Expr::Exists { negated: true, .. } => Some("NOT EXISTS (subquery)"),
                Expr::In {
                    target: sqlparser::ast::InTarget::Subquery(_),
                    ..
                } => Some("IN (subquery)"),
                Expr::Subquery(_) => Some("scalar subquery"),
                Expr::Function(f) if f.over.is_some() => Some("window function"),
                Expr::GroupingSets(_) | Expr::Cube(_) | Expr::Rollup(_) => {
                    Some("GROUPING SETS/CUBE/ROLLUP")
                }
                _ => None,
            };
            match why {
                Some(w) => {
                    self.0 = Some(Unsupported(w.into()));
                    ControlFlow::Break(())
                }
                None => ControlFlow::Continue(()),
            }
        }
    }
    let mut v = V(None);
    let _ = e.visit(&mut v);
    match v.0 {
        Some(u) => Err(u),
        None => Ok(()),
    }
}

/// Builds the model of a whole defining query.
pub fn build(q: &Query, relations: &[SourceRelation]) -> R<Shape> {
    let mut b = Builder {
        relations,
        ctes: HashMap::new(),
        next_id: 0,
        laterals: Vec::new(),
        hidden: Vec::new(),
    };
    b.top(q)
}

struct Builder<'a> {
    relations: &'a [SourceRelation],
    ctes: HashMap<String, Query>,
    next_id: usize,
    /// Ids of the factors that are LATERAL subqueries reading relations.
    laterals: Vec<usize>,
    /// Ids of the factors the builder added (lifted scalar subqueries): `*` does not expand
    /// to their columns.
    hidden: Vec<usize>,
}
