//! The differential model of a defining query: which shapes can be maintained from changes
//! (select-project-join blocks over base relations, subqueries and CTEs, UNION ALL, and on top
//! one aggregate, DISTINCT or UNION), built from the AST. Anything else is reported as
//! [`Unsupported`] with the construct's name, so AUTO falls back to FULL and DIFFERENTIAL
//! fails with 0A000.

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
}

/// The top of a differentially maintainable query.
#[derive(Debug, Clone)]
pub enum Shape {
    /// A bag of rows: the storage holds each row as often as the query returns it.
    Bag(Body),
    /// One row per group: GROUP BY/aggregates, DISTINCT, UNION.
    Aggregate(Box<AggPlan>),
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
    };
    b.top(q)
}

struct Builder<'a> {
    relations: &'a [SourceRelation],
    ctes: HashMap<String, Query>,
    next_id: usize,
}

impl Builder<'_> {
    fn top(&mut self, q: &Query) -> R<Shape> {
        self.register_ctes(q)?;
        if q.limit_clause.is_some() || q.fetch.is_some() {
            return unsupported("ORDER BY ... LIMIT (top-k)");
        }
        // ORDER BY alone does not change the bag: the stream table does not keep order.
        self.top_set_expr(&q.body)
    }

    fn top_set_expr(&mut self, body: &SetExpr) -> R<Shape> {
        match body {
            SetExpr::Select(s) => {
                let grouped = !matches!(&s.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
                    || s.having.is_some()
                    || s.projection.iter().any(|i| match i {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                            expr_has_aggregate(e)
                        }
                        _ => false,
                    });
                match (&s.distinct, grouped) {
                    (None, true) => self.grouped(s),
                    (Some(Distinct::Distinct), false) => {
                        let mut plain = s.as_ref().clone();
                        plain.distinct = None;
                        let body = Body::Block(Box::new(self.block(&plain)?));
                        Ok(distinct_plan(body))
                    }
                    (Some(Distinct::Distinct), true) => unsupported("DISTINCT with GROUP BY"),
                    (Some(_), _) => unsupported("DISTINCT ON"),
                    (None, false) => Ok(Shape::Bag(Body::Block(Box::new(self.block(s)?)))),
                }
            }
            SetExpr::SetOperation {
                op: SetOperator::Union,
                set_quantifier: SetQuantifier::Distinct | SetQuantifier::None,
                left,
                right,
            } => {
                // DISTINCT over the whole union absorbs any UNION / UNION ALL below it.
                let mut parts = Vec::new();
                self.union_branches(left, &mut parts)?;
                self.union_branches(right, &mut parts)?;
                Ok(distinct_plan(Body::UnionAll(parts)))
            }
            SetExpr::SetOperation {
                op: op @ (SetOperator::Intersect | SetOperator::Except),
                set_quantifier: SetQuantifier::Distinct | SetQuantifier::None,
                left,
                right,
            } => {
                let body = self.intersect_except(left, right, *op == SetOperator::Intersect)?;
                Ok(distinct_plan(body))
            }
            SetExpr::Query(q) if q.with.is_none() && q.limit_clause.is_none() => {
                self.top_set_expr(&q.body)
            }
            _ => self.body(body).map(Shape::Bag),
        }
    }

    fn register_ctes(&mut self, q: &Query) -> R<()> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                if !cte.alias.columns.is_empty() {
                    return unsupported("CTE column list");
                }
                self.ctes
                    .insert(fold_ident(&cte.alias.name), (*cte.query).clone());
            }
        }
        Ok(())
    }

    fn union_branches(&mut self, s: &SetExpr, out: &mut Vec<Body>) -> R<()> {
        match s {
            SetExpr::SetOperation {
                op: SetOperator::Union,
                left,
                right,
                ..
            } => {
                self.union_branches(left, out)?;
                self.union_branches(right, out)
            }
            _ => {
                out.push(self.body(s)?);
                Ok(())
            }
        }
    }

    /// `left INTERSECT right` as `left WHERE EXISTS (matching right row)`, `EXCEPT` with NOT
    /// EXISTS, matching NULLs as equal like set operations do; DISTINCT is applied on top.
    fn intersect_except(&mut self, left: &SetExpr, right: &SetExpr, intersect: bool) -> R<Body> {
        let l = self.body(left)?;
        let r = self.body(right)?;
        let names = l.names();
        let n = names.len();
        if r.names().len() != n {
            return unsupported("INTERSECT/EXCEPT of inputs with different column counts");
        }
        let (lid, rid, pid) = (self.next_id, self.next_id + 1, self.next_id + 2);
        self.next_id += 3;
        let cols: Vec<String> = (0..n).map(|i| format!("__pgt_c{i}")).collect();
        let lf = Factor {
            id: lid,
            source: FactorSource::Derived(l),
            columns: cols.clone(),
        };
        let rf = Factor {
            id: rid,
            source: FactorSource::Derived(r),
            columns: cols.clone(),
        };
        let alias_list = |f: &Factor| format!("({}, {})", cols.join(", "), f.weight());
        let matches = cols
            .iter()
            .map(|c| format!("__pgt_r.{c} IS NOT DISTINCT FROM __pgt_l.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let pred_body = Block {
            items: vec!["1".into()],
            names: vec!["?column?".into()],
            item_exprs: vec!["1".into()],
            aliases: vec!["__pgt_r".into()],
            from_sql: format!("{} AS __pgt_r{}", rf.placeholder(), alias_list(&rf)),
            factors: vec![rf],
            where_sql: Some(matches),
            preds: vec![],
            variants: vec![],
        };
        let exprs: Vec<String> = cols.iter().map(|c| format!("__pgt_l.{c}")).collect();
        let items: Vec<String> = exprs
            .iter()
            .zip(&names)
            .map(|(e, n)| format!("{e} AS {}", quote_ident(n)))
            .collect();
        let from_sql = format!("{} AS __pgt_l{}", lf.placeholder(), alias_list(&lf));
        Ok(Body::Block(Box::new(Block {
            items,
            names,
            item_exprs: exprs,
            aliases: vec!["__pgt_l".into()],
            from_sql,
            factors: vec![lf],
            where_sql: None,
            preds: vec![Pred {
                negated: !intersect,
                body: Body::Block(Box::new(pred_body)),
                id: pid,
            }],
            variants: vec![],
        })))
    }

    /// A body: a plain block or UNION ALL of bodies.
    fn body(&mut self, s: &SetExpr) -> R<Body> {
        match s {
            SetExpr::Select(sel) => {
                match &sel.distinct {
                    None => {}
                    Some(Distinct::Distinct) => {
                        let mut plain = sel.as_ref().clone();
                        plain.distinct = None;
                        let inner = self.body(&SetExpr::Select(Box::new(plain)))?;
                        let id = self.next_id;
                        self.next_id += 1;
                        return Ok(distinct_body(inner, id));
                    }
                    Some(_) => return unsupported("DISTINCT ON"),
                }
                let grouped = !matches!(&sel.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
                    || sel.having.is_some()
                    || sel.projection.iter().any(|i| match i {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                            expr_has_aggregate(e)
                        }
                        _ => false,
                    });
                if grouped {
                    return self.grouped_body(sel);
                }
                Ok(Body::Block(Box::new(self.block(sel)?)))
            }
            SetExpr::SetOperation {
                op: SetOperator::Union,
                set_quantifier: SetQuantifier::All,
                left,
                right,
            } => {
                let mut parts = Vec::new();
                for side in [left, right] {
                    match self.body(side)? {
                        Body::UnionAll(v) => parts.extend(v),
                        b => parts.push(b),
                    }
                }
                Ok(Body::UnionAll(parts))
            }
            SetExpr::SetOperation {
                op: SetOperator::Union,
                set_quantifier: SetQuantifier::Distinct | SetQuantifier::None,
                left,
                right,
            } => {
                let mut parts = Vec::new();
                self.union_branches(left, &mut parts)?;
                self.union_branches(right, &mut parts)?;
                let id = self.next_id;
                self.next_id += 1;
                Ok(distinct_body(Body::UnionAll(parts), id))
            }
            SetExpr::SetOperation {
                op: op @ (SetOperator::Intersect | SetOperator::Except),
                set_quantifier: SetQuantifier::Distinct | SetQuantifier::None,
                left,
                right,
            } => {
                let body = self.intersect_except(left, right, *op == SetOperator::Intersect)?;
                let id = self.next_id;
                self.next_id += 1;
                Ok(distinct_body(body, id))
            }
            SetExpr::SetOperation {
                op: op @ (SetOperator::Intersect | SetOperator::Except),
                set_quantifier: SetQuantifier::All,
                left,
                right,
            } => {
                let l = self.body(left)?;
                let r = self.body(right)?;
                let names = l.names();
                if r.names().len() != names.len() {
                    return unsupported("INTERSECT/EXCEPT of inputs with different column counts");
                }
                Ok(Body::SetAll(Box::new(SetAllBody {
                    left: l,
                    right: r,
                    intersect: *op == SetOperator::Intersect,
                    names,
                })))
            }
            SetExpr::SetOperation { op, .. } => {
                let name = match op {
                    SetOperator::Union => "UNION",
                    SetOperator::Intersect => "INTERSECT",
                    _ => "EXCEPT",
                };
                unsupported(format!("{name} ALL"))
            }
            SetExpr::Query(q) => self.subquery(q),
            SetExpr::Values(_) => unsupported("VALUES"),
            _ => unsupported(s.to_string()),
        }
    }

    fn subquery(&mut self, q: &Query) -> R<Body> {
        if q.limit_clause.is_some() || q.fetch.is_some() {
            return unsupported("LIMIT in a subquery");
        }
        if q.with.is_some() {
            return unsupported("WITH inside a subquery");
        }
        self.body(&q.body)
    }

    fn check_plain_select(&self, s: &Select) -> R<()> {
        if s.top.is_some()
            || !s.lateral_views.is_empty()
            || s.prewhere.is_some()
            || !s.connect_by.is_empty()
            || !s.named_window.is_empty()
            || s.qualify.is_some()
            || !s.cluster_by.is_empty()
            || !s.distribute_by.is_empty()
            || !s.sort_by.is_empty()
            || s.exclude.is_some()
        {
            return unsupported("this SELECT clause");
        }
        if s.from.is_empty() {
            return unsupported("SELECT without FROM");
        }
        Ok(())
    }

    /// A select-project-join block (no grouping).
    fn block(&mut self, s: &Select) -> R<Block> {
        self.check_plain_select(s)?;
        if !matches!(&s.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
            || s.having.is_some()
        {
            return unsupported("GROUP BY below the top of the query");
        }
        let mut b = self.scan_from_where(s)?;
        if b.using
            && s.projection
                .iter()
                .any(|i| matches!(i, SelectItem::Wildcard(_)))
        {
            return unsupported("SELECT * with JOIN ... USING");
        }
        let (items, names, item_exprs) =
            self.expand_items(&s.projection, &b.block.factors, &b.alias_names)?;
        for i in &s.projection {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = i {
                if expr_has_aggregate(e) {
                    return unsupported("aggregate below the top of the query");
                }
            }
        }
        for v in &mut b.block.variants {
            v.items = items.clone();
            v.names = names.clone();
            v.item_exprs = item_exprs.clone();
        }
        b.block.items = items;
        b.block.names = names;
        b.block.item_exprs = item_exprs;
        Ok(b.block)
    }

    fn scan_from_where(&mut self, s: &Select) -> R<FromWhere> {
        let mut from = s.from.clone();
        let mut factors = Vec::new();
        let mut alias_names = Vec::new();
        let mut using = false;
        let mut outers = Vec::new();
        for (i, twj) in from.iter_mut().enumerate() {
            self.table_with_joins(
                twj,
                &mut factors,
                &mut alias_names,
                &mut using,
                Some((i, &mut outers)),
            )?;
        }
        if outers.len() > 3 {
            return unsupported("more than 3 outer joins in one SELECT");
        }
        let mut conjuncts = Vec::new();
        if let Some(w) = &s.selection {
            split_and(w, &mut conjuncts);
        }
        let mut rest = Vec::new();
        let mut preds = Vec::new();
        for c in conjuncts {
            match self.semi_join(c, &factors, &alias_names)? {
                Some(p) => preds.push(p),
                None => {
                    check_expr(c)?;
                    rest.push(c.to_string());
                }
            }
        }
        let where_sql = match rest.len() {
            0 => None,
            1 => rest.pop(),
            _ => Some(
                rest.iter()
                    .map(|r| format!("({r})"))
                    .collect::<Vec<_>>()
                    .join(" AND "),
            ),
        };
        let from_sql = from
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mut fw = FromWhere {
            block: Block {
                items: vec![],
                names: vec![],
                item_exprs: vec![],
                aliases: alias_names.clone(),
                from_sql,
                factors,
                where_sql,
                preds,
                variants: vec![],
            },
            alias_names,
            using,
        };
        if !outers.is_empty() {
            fw.block.variants = self.outer_variants(&from, &fw.block, &outers)?;
        }
        Ok(fw)
    }

    fn table_with_joins(
        &mut self,
        t: &mut TableWithJoins,
        factors: &mut Vec<Factor>,
        aliases: &mut Vec<String>,
        using: &mut bool,
        place: Option<(usize, &mut Vec<Outer>)>,
    ) -> R<()> {
        let first = factors.len();
        let mut had_outer = false;
        self.factor(&mut t.relation, factors, aliases, using)?;
        let mut place = place;
        for (ji, j) in t.joins.iter_mut().enumerate() {
            let (kind, c) = match &j.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) | JoinOperator::CrossJoin(c) => {
                    match c {
                        JoinConstraint::On(e) => check_expr(e)?,
                        JoinConstraint::Using(_) | JoinConstraint::UsingAlias(..) => *using = true,
                        JoinConstraint::None => {}
                        JoinConstraint::Natural => return unsupported("NATURAL JOIN"),
                    }
                    (None, None)
                }
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => {
                    (Some(OuterKind::Left), Some(c))
                }
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => {
                    (Some(OuterKind::Right), Some(c))
                }
                JoinOperator::FullOuter(c) => (Some(OuterKind::Full), Some(c)),
                _ => return unsupported("this kind of JOIN"),
            };
            let on = match (kind, c) {
                (Some(k), Some(JoinConstraint::On(e))) => {
                    check_expr(e)?;
                    Some((k, e.to_string()))
                }
                (Some(k), _) => return unsupported(format!("{} JOIN without ON", k.name())),
                _ => None,
            };
            self.factor(&mut j.relation, factors, aliases, using)?;
            if let Some((kind, on)) = on {
                let Some((twj, outers)) = place.as_mut() else {
                    return unsupported(format!("{} JOIN inside parentheses", kind.name()));
                };
                if kind != OuterKind::Left && had_outer {
                    return unsupported(format!(
                        "{} JOIN after another outer join (write it as a LEFT JOIN)",
                        kind.name()
                    ));
                }
                had_outer = true;
                outers.push(Outer {
                    twj: *twj,
                    join: ji,
                    kind,
                    left: first,
                    right: factors.len() - 1,
                    on,
                });
            }
        }
        Ok(())
    }

    fn factor(
        &mut self,
        f: &mut TableFactor,
        factors: &mut Vec<Factor>,
        aliases: &mut Vec<String>,
        using: &mut bool,
    ) -> R<()> {
        let id = self.next_id;
        self.next_id += 1;
        match f {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                    return unsupported("table alias with a column list");
                }
                let parts = fold_name(name).ok_or_else(|| Unsupported(name.to_string()))?;
                let last_ident = match name.0.last() {
                    Some(sqlparser::ast::ObjectNamePart::Identifier(i)) => i.clone(),
                    _ => return unsupported(name.to_string()),
                };
                let cte = match parts.as_slice() {
                    [n] => self.ctes.get(n).cloned(),
                    _ => None,
                };
                let (source, columns) = match cte {
                    Some(cq) => {
                        let body = self.subquery(&cq)?;
                        let cols = body.names();
                        (FactorSource::Derived(body), cols)
                    }
                    None => {
                        let r = match parts.as_slice() {
                            [n] => RelationRef {
                                schema: None,
                                name: n.clone(),
                            },
                            [s, n] => RelationRef {
                                schema: Some(s.clone()),
                                name: n.clone(),
                            },
                            _ => return unsupported(name.to_string()),
                        };
                        let idx = self
                            .relations
                            .iter()
                            .position(|x| x.reference == r)
                            .ok_or_else(|| Unsupported(format!("unknown relation {r}")))?;
                        let rel = &self.relations[idx];
                        if rel.delta.is_none() {
                            return unsupported(format!(
                                "source {} without change capture",
                                rel.resolved
                            ));
                        }
                        let cols = rel.columns.iter().map(|c| c.name.clone()).collect();
                        (FactorSource::Base(idx), cols)
                    }
                };
                let alias_ident = alias.as_ref().map(|a| a.name.clone()).unwrap_or(last_ident);
                aliases.push(fold_ident(&alias_ident));
                let factor = Factor {
                    id,
                    source,
                    columns,
                };
                match &factor.source {
                    FactorSource::Base(_) | FactorSource::NullRow(_) => {
                        *name = ObjectName::from(vec![Ident::new(format!("__pgt_f{id}__"))]);
                        *alias = Some(TableAlias {
                            explicit: true,
                            name: alias_ident,
                            columns: vec![],
                            at: None,
                        });
                    }
                    FactorSource::Derived(_) => {
                        *f = placeholder_derived(id, alias_ident)?;
                    }
                }
                factors.push(factor);
                Ok(())
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                ..
            } => {
                if *lateral {
                    return unsupported("LATERAL subquery");
                }
                let Some(a) = alias.clone() else {
                    return unsupported("subquery in FROM without an alias");
                };
                if !a.columns.is_empty() {
                    return unsupported("subquery alias with a column list");
                }
                let body = self.subquery(subquery)?;
                let columns = body.names();
                aliases.push(fold_ident(&a.name));
                *f = placeholder_derived(id, a.name)?;
                factors.push(Factor {
                    id,
                    source: FactorSource::Derived(body),
                    columns,
                });
                Ok(())
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias: None,
            } => self.table_with_joins(table_with_joins, factors, aliases, using, None),
            TableFactor::Table { .. } | TableFactor::Function { .. } => {
                unsupported("table function in FROM")
            }
            other => unsupported(other.to_string()),
        }
    }

    /// The inner-join variants of a block with outer joins.
    fn outer_variants(
        &mut self,
        from: &[TableWithJoins],
        base: &Block,
        outers: &[Outer],
    ) -> R<Vec<Block>> {
        let alts: Vec<Vec<Alt>> = outers
            .iter()
            .map(|o| match o.kind {
                OuterKind::Left => vec![Alt::Inner, Alt::PadRight],
                OuterKind::Right => vec![Alt::Inner, Alt::PadLeft],
                OuterKind::Full => vec![Alt::Inner, Alt::PadRight, Alt::PadLeft],
            })
            .collect();
        let mut combos: Vec<Vec<Alt>> = vec![vec![]];
        for a in &alts {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    a.iter().map(move |x| {
                        let mut c = c.clone();
                        c.push(*x);
                        c
                    })
                })
                .collect();
        }
        let mut variants = Vec::new();
        for combo in combos {
            let mut ast = from.to_vec();
            let mut factors = base.factors.clone();
            let mut preds = base.preds.clone();
            let mut swaps: Vec<(String, String)> = Vec::new();
            for (o, alt) in outers.iter().zip(&combo) {
                let on_expr = |s: &str| -> R<Expr> {
                    Parser::new(&PostgreSqlDialect {})
                        .try_with_sql(s)
                        .and_then(|mut p| p.parse_expr())
                        .map_err(|e| Unsupported(format!("outer join condition ({e})")))
                };
                let cond = match alt {
                    Alt::Inner => on_expr(&o.on)?,
                    _ => on_expr("true")?,
                };
                ast[o.twj].joins[o.join].join_operator =
                    JoinOperator::Inner(JoinConstraint::On(cond));
                // The padded factors (one for LEFT, the whole chain before the join for
                // RIGHT/FULL) become one row of NULLs; the anti-join checks that no row of them
                // matches.
                let (range, pad_left) = match alt {
                    Alt::Inner => continue,
                    Alt::PadRight => (o.right..o.right + 1, false),
                    Alt::PadLeft => (o.left..o.right, true),
                };
                let true_on = on_expr("true")?;
                let mut body_from = if pad_left {
                    for j in &mut ast[o.twj].joins[..o.join] {
                        j.join_operator = JoinOperator::Inner(JoinConstraint::On(true_on.clone()));
                    }
                    TableWithJoins {
                        relation: from[o.twj].relation.clone(),
                        joins: from[o.twj].joins[..o.join].to_vec(),
                    }
                    .to_string()
                } else {
                    format!(
                        "{} AS {}",
                        factors[o.right].placeholder(),
                        quote_ident(&base.aliases[o.right])
                    )
                };
                let mut copies = Vec::new();
                for i in range.clone() {
                    let old = factors[i].clone();
                    let (null_id, copy_id) = (self.next_id, self.next_id + 1);
                    self.next_id += 2;
                    let null_row = Factor {
                        id: null_id,
                        source: FactorSource::NullRow(Box::new(old.source.clone())),
                        columns: old.columns.clone(),
                    };
                    swaps.push((old.placeholder(), null_row.placeholder()));
                    factors[i] = null_row;
                    let copy = Factor {
                        id: copy_id,
                        source: old.source.clone(),
                        columns: old.columns.clone(),
                    };
                    body_from = body_from.replacen(&old.placeholder(), &copy.placeholder(), 1);
                    copies.push(copy);
                }
                let body = Block {
                    items: vec!["1".into()],
                    names: vec!["?column?".into()],
                    item_exprs: vec!["1".into()],
                    aliases: base.aliases[range].to_vec(),
                    from_sql: body_from,
                    factors: copies,
                    where_sql: Some(o.on.clone()),
                    preds: vec![],
                    variants: vec![],
                };
                let id = self.next_id;
                self.next_id += 1;
                preds.push(Pred {
                    negated: true,
                    body: Body::Block(Box::new(body)),
                    id,
                });
            }
            let mut from_sql = ast
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            for (old, new) in swaps {
                from_sql = from_sql.replacen(&old, &new, 1);
            }
            variants.push(Block {
                from_sql,
                factors,
                preds,
                variants: vec![],
                ..base.clone()
            });
        }
        Ok(variants)
    }

    /// A WHERE conjunct that is `[NOT] EXISTS (subquery)` or `x IN (subquery)`, as a predicate.
    fn semi_join(
        &mut self,
        e: &Expr,
        outer: &[Factor],
        outer_aliases: &[String],
    ) -> R<Option<Pred>> {
        let (negated, q, in_expr) = match e {
            Expr::Exists { subquery, negated } => (*negated, subquery.as_ref(), None),
            Expr::UnaryOp {
                op: sqlparser::ast::UnaryOperator::Not,
                expr,
            } => match strip_nested(expr) {
                Expr::Exists {
                    subquery,
                    negated: false,
                } => (true, subquery.as_ref(), None),
                _ => return Ok(None),
            },
            // x NOT IN (SELECT y ...) is true exactly when no y makes x = y true or NULL.
            Expr::In {
                expr,
                target: sqlparser::ast::InTarget::Subquery(q),
                negated,
                ..
            } => (*negated, q.as_ref(), Some(expr.as_ref())),
            Expr::Nested(inner) => return self.semi_join(inner, outer, outer_aliases),
            _ => return Ok(None),
        };
        let mut body = self.subquery(q)?;
        if let Some(x) = in_expr {
            check_expr(x)?;
            let Body::Block(b) = &mut body else {
                return unsupported("IN (subquery with UNION)");
            };
            let [item] = b.item_exprs.as_slice() else {
                return unsupported("IN (subquery returning several columns)");
            };
            // The left side moves into the subquery: qualify its columns with the outer
            // aliases so the subquery's own columns cannot capture them.
            let x = qualify(x, outer, outer_aliases)?;
            let inner_cols: Vec<&String> = b.factors.iter().flat_map(|f| &f.columns).collect();
            let mut captured = false;
            let _ = x.visit(&mut ExprIdents(|e: &Expr| match e {
                Expr::Identifier(i) => captured |= inner_cols.contains(&&fold_ident(i)),
                Expr::CompoundIdentifier(v) if v.len() == 2 => {
                    captured |= b.aliases.contains(&fold_ident(&v[0]))
                }
                _ => {}
            }));
            if captured {
                return unsupported("IN (subquery) whose left side names the subquery's columns");
            }
            let eq = if negated {
                format!("(({x}) = ({item})) IS NOT FALSE")
            } else {
                format!("({x}) = ({item})")
            };
            b.where_sql = Some(match &b.where_sql {
                Some(w) => format!("({w}) AND {eq}"),
                None => eq,
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        Ok(Some(Pred { negated, body, id }))
    }

    /// Select items as SQL with `*` and `alias.*` expanded, and their output names.
    fn expand_items(
        &self,
        items: &[SelectItem],
        factors: &[Factor],
        aliases: &[String],
    ) -> R<(Vec<String>, Vec<String>, Vec<String>)> {
        let mut sql = Vec::new();
        let mut names = Vec::new();
        let mut exprs = Vec::new();
        let alias_sql = |i: usize| quote_ident(&aliases[i]);
        for item in items {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    check_expr(e)?;
                    sql.push(e.to_string());
                    exprs.push(e.to_string());
                    names.push(expr_name(e));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    check_expr(expr)?;
                    sql.push(item.to_string());
                    exprs.push(expr.to_string());
                    names.push(fold_ident(alias));
                }
                SelectItem::Wildcard(opts) => {
                    if opts.opt_exclude.is_some()
                        || opts.opt_except.is_some()
                        || opts.opt_replace.is_some()
                        || opts.opt_rename.is_some()
                        || opts.opt_ilike.is_some()
                    {
                        return unsupported("wildcard options");
                    }
                    for (i, f) in factors.iter().enumerate() {
                        for c in &f.columns {
                            sql.push(format!("{}.{}", alias_sql(i), quote_ident(c)));
                            exprs.push(format!("{}.{}", alias_sql(i), quote_ident(c)));
                            names.push(c.clone());
                        }
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(n),
                    _,
                ) => {
                    let parts = fold_name(n).ok_or_else(|| Unsupported(n.to_string()))?;
                    let [a] = parts.as_slice() else {
                        return unsupported(format!("{n}.*"));
                    };
                    let i = aliases
                        .iter()
                        .position(|x| x == a)
                        .ok_or_else(|| Unsupported(format!("{n}.*")))?;
                    for c in &factors[i].columns {
                        sql.push(format!("{}.{}", alias_sql(i), quote_ident(c)));
                        exprs.push(format!("{}.{}", alias_sql(i), quote_ident(c)));
                        names.push(c.clone());
                    }
                }
                other => return unsupported(other.to_string()),
            }
        }
        Ok((sql, names, exprs))
    }

    /// A GROUP BY subquery: keys and plain aggregates only (no HAVING, no DISTINCT
    /// aggregates, no expressions over aggregates), with at least one key.
    fn grouped_body(&mut self, s: &Select) -> R<Body> {
        let plan = match self.grouped(s)? {
            Shape::Aggregate(plan) => plan,
            Shape::Bag(b @ Body::Grouped(_)) => return Ok(b),
            Shape::Bag(_) => return unsupported("GROUP BY in a subquery"),
        };
        if let Some(why) = &plan.rescan_all {
            return unsupported(format!("{why} in a GROUP BY subquery"));
        }
        let names = s.projection.iter().map(item_name).collect();
        Ok(Body::Grouped(Box::new(GroupedBody { plan: *plan, names })))
    }

    fn grouped(&mut self, s: &Select) -> R<Shape> {
        self.check_plain_select(s)?;
        let group_exprs: Vec<Expr> = match &s.group_by {
            GroupByExpr::Expressions(e, m) if m.is_empty() => e.clone(),
            _ => return unsupported("GROUP BY ALL/ROLLUP/CUBE/GROUPING SETS"),
        };
        let fw = self.scan_from_where(s)?;
        // Output items: expressions with their aliases.
        let mut out_exprs: Vec<(Expr, Option<String>)> = Vec::new();
        let mut items = Vec::new();
        for i in &s.projection {
            match i {
                SelectItem::UnnamedExpr(e) => {
                    check_expr(e)?;
                    out_exprs.push((e.clone(), None));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    check_expr(expr)?;
                    out_exprs.push((expr.clone(), Some(fold_ident(alias))));
                }
                _ => return unsupported("* with GROUP BY"),
            }
            items.push(i.to_string());
        }
        let input_columns: Vec<&String> =
            fw.block.factors.iter().flat_map(|f| &f.columns).collect();
        // Resolve each GROUP BY entry to an expression and the output column holding it.
        let mut key_exprs = Vec::new();
        let mut key_outputs = Vec::new();
        let mut hidden_key: Option<String> = None;
        for g in &group_exprs {
            check_expr(g)?;
            let resolved: Expr = match g {
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => {
                        let k: usize = n
                            .parse()
                            .map_err(|_| Unsupported(format!("GROUP BY {n}")))?;
                        match k.checked_sub(1).and_then(|k| out_exprs.get(k)) {
                            Some((e, _)) => e.clone(),
                            None => return unsupported(format!("GROUP BY {n}")),
                        }
                    }
                    _ => g.clone(),
                },
                Expr::Identifier(id) if !input_columns.contains(&&fold_ident(id)) => {
                    let name = fold_ident(id);
                    match out_exprs
                        .iter()
                        .find(|(_, a)| a.as_deref() == Some(name.as_str()))
                    {
                        Some((e, _)) => e.clone(),
                        None => g.clone(),
                    }
                }
                _ => g.clone(),
            };
            let text = resolved.to_string();
            let out = match out_exprs.iter().position(|(e, _)| e.to_string() == text) {
                Some(o) => o,
                None => {
                    hidden_key.get_or_insert(format!(
                        "GROUP BY expression {g} that is not in the select list"
                    ));
                    usize::MAX
                }
            };
            key_exprs.push(text);
            key_outputs.push(out);
        }
        let mut aggs = Vec::new();
        let mut outputs = Vec::new();
        let mut rescan_all: Option<String> = None;
        for (i, (e, _)) in out_exprs.iter().enumerate() {
            let text = e.to_string();
            if let Some(k) = key_exprs.iter().position(|k| *k == text) {
                outputs.push(OutCol::Key(k));
                continue;
            }
            match classify_agg(e) {
                Some(Ok((kind, arg, filter))) => {
                    outputs.push(OutCol::Agg(aggs.len()));
                    aggs.push(Agg {
                        kind,
                        arg,
                        filter,
                        output: i,
                    });
                }
                Some(Err(why)) => {
                    rescan_all.get_or_insert(why);
                    outputs.push(OutCol::Expr);
                }
                None => {
                    rescan_all.get_or_insert(format!("output expression {e}"));
                    outputs.push(OutCol::Expr);
                }
            }
        }
        if let Some(h) = &s.having {
            check_expr(h)?;
            rescan_all.get_or_insert("HAVING".into());
        }
        if let Some(why) = hidden_key {
            // Stored per group only when every key is an output column; otherwise the grouped
            // result is kept as a bag, with the changed groups recomputed.
            if rescan_all.is_some() || key_exprs.is_empty() {
                return unsupported(why);
            }
            let plan = AggPlan {
                input: AggInput::Grouped {
                    block: Box::new(fw.block),
                    items,
                    group_by: group_exprs.iter().map(|g| g.to_string()).collect(),
                    having: None,
                },
                key_exprs,
                key_outputs,
                aggs,
                outputs,
                rescan_all: None,
            };
            let names = s.projection.iter().map(item_name).collect();
            return Ok(Shape::Bag(Body::Grouped(Box::new(GroupedBody {
                plan,
                names,
            }))));
        }
        Ok(Shape::Aggregate(Box::new(AggPlan {
            input: AggInput::Grouped {
                block: Box::new(fw.block),
                items,
                group_by: group_exprs.iter().map(|g| g.to_string()).collect(),
                having: s.having.as_ref().map(|h| h.to_string()),
            },
            key_exprs,
            key_outputs,
            aggs,
            outputs,
            rescan_all,
        })))
    }
}

/// Calls a closure on every expression node.
struct ExprIdents<F: FnMut(&Expr)>(F);

impl<F: FnMut(&Expr)> Visitor for ExprIdents<F> {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        (self.0)(e);
        ControlFlow::Continue(())
    }
}

/// `x` with each unqualified column of exactly one outer factor qualified by its alias.
fn qualify(x: &Expr, outer: &[Factor], aliases: &[String]) -> R<Expr> {
    use sqlparser::ast::{VisitMut, VisitorMut};
    struct Q<'a>(&'a [Factor], &'a [String]);
    impl VisitorMut for Q<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Identifier(id) = e {
                let name = fold_ident(id);
                let owners: Vec<usize> = (0..self.0.len())
                    .filter(|&i| self.0[i].columns.contains(&name))
                    .collect();
                if let [i] = owners.as_slice() {
                    *e = Expr::CompoundIdentifier(vec![
                        Ident::with_quote('"', self.1[*i].clone()),
                        id.clone(),
                    ]);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut x = x.clone();
    let _ = VisitMut::visit(&mut x, &mut Q(outer, aliases));
    Ok(x)
}

fn strip_nested(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(i) => strip_nested(i),
        _ => e,
    }
}

/// The AND-ed conjuncts of a predicate.
fn split_and<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: sqlparser::ast::BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: sqlparser::ast::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(inner, out)
        }
        _ => out.push(e),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OuterKind {
    Left,
    Right,
    Full,
}

impl OuterKind {
    fn name(self) -> &'static str {
        match self {
            OuterKind::Left => "LEFT",
            OuterKind::Right => "RIGHT",
            OuterKind::Full => "FULL",
        }
    }
}

/// An outer join in a FROM clause.
struct Outer {
    twj: usize,
    join: usize,
    kind: OuterKind,
    /// Index of the first factor of the join chain (the left side of a RIGHT/FULL join is
    /// every factor from here to `right`).
    left: usize,
    /// Factor index of the right side.
    right: usize,
    on: String,
}

/// How one outer join is taken in a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alt {
    Inner,
    PadRight,
    PadLeft,
}

struct FromWhere {
    block: Block,
    alias_names: Vec<String>,
    using: bool,
}

fn placeholder_derived(id: usize, alias: Ident) -> R<TableFactor> {
    let sql = format!("SELECT * FROM (SELECT __pgt_f{id}__) AS x");
    let q = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
        .ok()
        .and_then(|mut v| v.pop())
        .ok_or_else(|| Unsupported("internal placeholder".into()))?;
    if let sqlparser::ast::Statement::Query(q) = q {
        if let SetExpr::Select(s) = *q.body {
            if let Some(mut t) = s.from.into_iter().next() {
                if let TableFactor::Derived { alias: a, .. } = &mut t.relation {
                    *a = Some(TableAlias {
                        explicit: true,
                        name: alias,
                        columns: vec![],
                        at: None,
                    });
                }
                return Ok(t.relation);
            }
        }
    }
    unsupported("internal placeholder")
}

fn distinct_plan(body: Body) -> Shape {
    let n = body.names().len();
    Shape::Aggregate(Box::new(AggPlan {
        input: AggInput::Distinct(body),
        key_exprs: (0..n).map(|i| format!("__pgt_k{i}")).collect(),
        key_outputs: (0..n).collect(),
        aggs: vec![],
        outputs: (0..n).map(OutCol::Key).collect(),
        rescan_all: None,
    }))
}

/// The output name of a select item.
fn item_name(i: &SelectItem) -> String {
    match i {
        SelectItem::ExprWithAlias { alias, .. } => fold_ident(alias),
        SelectItem::UnnamedExpr(e) => expr_name(e),
        _ => "?column?".into(),
    }
}

/// DISTINCT over a body, as a grouped body whose keys are all its columns.
fn distinct_body(body: Body, id: usize) -> Body {
    let names = body.names();
    let n = names.len();
    let block = match body {
        Body::Block(b) if b.preds.is_empty() && b.variants.is_empty() => *b,
        other => {
            // Wrap the body as the one factor of a block.
            let cols: Vec<String> = (0..n).map(|i| format!("__pgt_c{i}")).collect();
            let f = Factor {
                id,
                source: FactorSource::Derived(other),
                columns: cols.clone(),
            };
            let items: Vec<String> = cols.iter().map(|c| format!("__pgt_u.{c}")).collect();
            Block {
                items: items.clone(),
                names: names.clone(),
                item_exprs: items,
                aliases: vec!["__pgt_u".into()],
                from_sql: format!(
                    "{} AS __pgt_u({}, {})",
                    f.placeholder(),
                    cols.join(", "),
                    f.weight()
                ),
                factors: vec![f],
                where_sql: None,
                preds: vec![],
                variants: vec![],
            }
        }
    };
    let plan = AggPlan {
        key_exprs: block.item_exprs.clone(),
        key_outputs: (0..n).collect(),
        aggs: vec![],
        outputs: (0..n).map(OutCol::Key).collect(),
        rescan_all: None,
        input: AggInput::Grouped {
            block: Box::new(block),
            items: vec![],
            group_by: vec![],
            having: None,
        },
    };
    Body::Grouped(Box::new(GroupedBody { plan, names }))
}

/// The name PostgreSQL gives an unaliased output expression.
fn expr_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => fold_ident(i),
        Expr::CompoundIdentifier(v) => v.last().map(fold_ident).unwrap_or_default(),
        Expr::Function(f) => fold_name(&f.name)
            .and_then(|p| p.last().cloned())
            .unwrap_or_else(|| "?column?".into()),
        Expr::Cast { expr, .. } => expr_name(expr),
        Expr::Nested(e) => expr_name(e),
        _ => "?column?".into(),
    }
}

type Classified = Result<(AggKind, Option<String>, Option<String>), String>;

/// None: not an aggregate call. Some(Err): an aggregate maintained by re-scanning groups.
fn classify_agg(e: &Expr) -> Option<Classified> {
    let name = aggregate_name(e)?;
    let Expr::Function(f) = e else { return None };
    let FunctionArguments::List(list) = &f.args else {
        return Some(Err(format!("{name}() without arguments")));
    };
    if matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct)) {
        return Some(Err(format!("{name}(DISTINCT ...)")));
    }
    if !list.clauses.is_empty() || !f.within_group.is_empty() {
        return Some(Err(format!("{name}(... ORDER BY ...)")));
    }
    let filter = f.filter.as_ref().map(|x| x.to_string());
    let kind = match name.as_str() {
        "count" => {
            if matches!(
                list.args.as_slice(),
                [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]
            ) {
                return Some(Ok((AggKind::CountStar, None, filter)));
            }
            AggKind::Count
        }
        "sum" => AggKind::Sum,
        "avg" => AggKind::Avg,
        "min" => AggKind::Min,
        "max" => AggKind::Max,
        "bool_and" | "every" => AggKind::BoolAnd,
        "bool_or" => AggKind::BoolOr,
        _ => return Some(Err(format!("{name}()"))),
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))] => {
            if expr_has_aggregate(a) {
                return Some(Err("nested aggregate".into()));
            }
            Some(Ok((kind, Some(a.to_string()), filter)))
        }
        _ => Some(Err(format!("{name}() with these arguments"))),
    }
}
