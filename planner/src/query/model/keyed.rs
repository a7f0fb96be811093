//! Keyed recompute: the model of a query whose top operator partitions its rows by a key, so
//! that a change can only alter the result rows of the keys it touches.
//!
//! Delta rule: let K(r) be the key of an input row r and Q|S the query restricted to the input
//! rows whose key is in S. When the top operator computes each key's result rows from that
//! key's input rows only, Q = the union over keys k of Q|{k}, so with
//! A = { K(r) : r in the input's delta } (old and new rows alike),
//! Q_new = (Q_old minus the rows of keys in A) plus Q_new|A.
//! The refresh computes A from the deltas, deletes the stored rows of keys in A and inserts
//! Q_new|A, each in one set-based statement. Keys are compared by a 64-bit hash of the key
//! (`hash_record_extended`): the stored rows carry the hash of their key, and both the deletion
//! and the restricted query select by hash, so a collision only recomputes one more key.
//!
//! Used for:
//! - window functions: the key is the PARTITION BY list (the expressions every window
//!   partitions by; none: the whole result is one key);
//! - DISTINCT ON: the DISTINCT ON list;
//! - GROUPING SETS, ROLLUP, CUBE: the key of a result row is its grouping set (GROUPING() of
//!   every grouping column) and the values of the set's columns; an input row touches one
//!   group per grouping set;
//! - ORDER BY ... LIMIT / OFFSET (top-k): the whole result is one key, recomputed when the
//!   input changes (see [`KeyedInput::Whole`]).

use super::*;

/// A query maintained by recomputing the keys its changes touch.
#[derive(Debug, Clone)]
pub struct KeyedPlan {
    /// What partitions the result, for explain and messages.
    pub what: String,
    /// Where the affected keys come from.
    pub input: KeyedInput,
    /// The key sets: each input row has one key per set (one set except for grouping sets).
    pub sets: Vec<Vec<KeyPart>>,
    /// The key of a result row, as expressions in the select list's scope.
    pub output_keys: Vec<String>,
    /// The query with [`FILTER_HOLE`] in its top WHERE and an item `[HASH_HOLE] AS
    /// __pgt_kh` after its select list (unchanged for [`KeyedInput::Whole`]).
    pub restricted: Query,
}

/// Placeholder for the key filter in [`KeyedPlan::restricted`].
pub const FILTER_HOLE: &str = "__pgt_keyfilter__";
/// Placeholder for the result row's key hash in [`KeyedPlan::restricted`].
pub const HASH_HOLE: &str = "__pgt_keyhash__";

/// Where the affected keys come from.
#[derive(Debug, Clone)]
pub enum KeyedInput {
    /// A body over the input rows whose columns `__pgt_k0..` are the key expressions
    /// (`exprs`, as written in the top SELECT's FROM scope): its delta holds the changed rows'
    /// keys.
    Keys {
        /// The input rows projected on the key expressions.
        body: Body,
        /// The key expressions as SQL in the top SELECT's FROM/WHERE scope.
        exprs: Vec<String>,
    },
    /// One key for the whole result: recomputed when the model below changes at all.
    Whole(Box<Shape>),
}

/// One part of a key set's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// Key expression number i.
    Col(usize),
    /// Key expression number i's type, NULL (a grouping column outside the set).
    Null(usize),
    /// A constant (a grouping set's GROUPING() value).
    Const(String),
}

impl Builder<'_> {
    /// Whether a top SELECT needs the keyed recompute: window functions, DISTINCT ON or
    /// grouping sets.
    pub(super) fn is_keyed_select(s: &Select) -> bool {
        let windows = s.projection.iter().any(|i| match i {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => has_window(e),
            _ => false,
        });
        windows || matches!(s.distinct, Some(Distinct::On(_))) || grouping_sets(s).is_some()
    }

    /// The keyed plan of a top SELECT with window functions, DISTINCT ON or grouping sets.
    pub(super) fn keyed_select(&mut self, q: &Query, s: &Select) -> R<Shape> {
        self.check_plain_select_keyed(s)?;
        for i in &s.projection {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = i {
                no_subquery(e)?;
            }
        }
        if let Some(h) = &s.having {
            no_subquery(h)?;
        }
        let plain_group: Vec<Expr> = match &s.group_by {
            GroupByExpr::Expressions(e, m) if m.is_empty() => e.clone(),
            _ => return unsupported("GROUP BY ALL or a GROUP BY modifier"),
        };
        let windows = window_partitions(s)?;
        let (what, exprs, sets, output_keys) = if let Some(g) = grouping_sets(s) {
            if windows.is_some() || s.distinct.is_some() {
                return unsupported("window functions or DISTINCT with GROUPING SETS");
            }
            let sets = g?;
            let mut cols: Vec<Expr> = Vec::new();
            for set in &sets {
                for e in set {
                    let e = resolve_output_ref(e, s)?;
                    if !cols.iter().any(|c| c.to_string() == e.to_string()) {
                        cols.push(e);
                    }
                }
            }
            if cols.len() > 31 {
                return unsupported("more than 31 grouping columns");
            }
            let n = cols.len();
            let mut key_sets = Vec::new();
            for set in &sets {
                let texts: Vec<String> = set
                    .iter()
                    .map(|e| resolve_output_ref(e, s).map(|e| e.to_string()))
                    .collect::<R<_>>()?;
                let mut mask = 0u32;
                let mut parts = Vec::new();
                for (i, c) in cols.iter().enumerate() {
                    if texts.contains(&c.to_string()) {
                        parts.push(KeyPart::Col(i));
                    } else {
                        mask |= 1 << (n - 1 - i);
                        parts.push(KeyPart::Null(i));
                    }
                }
                parts.insert(0, KeyPart::Const(format!("{mask}::pg_catalog.int4")));
                key_sets.push(parts);
            }
            let texts: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
            let mut output = vec![format!("GROUPING({})", texts.join(", "))];
            output.extend(texts.iter().cloned());
            ("GROUPING SETS".to_string(), cols, key_sets, output)
        } else {
            // Windows and DISTINCT ON: the expressions every one of them partitions by.
            let mut lists: Vec<Vec<Expr>> = windows.unwrap_or_default();
            let mut what = Vec::new();
            if !lists.is_empty() {
                what.push("window functions");
            }
            if let Some(Distinct::On(on)) = &s.distinct {
                what.push("DISTINCT ON");
                lists.push(
                    on.iter()
                        .map(|e| resolve_output_ref(e, s))
                        .collect::<R<_>>()?,
                );
            }
            let mut keys: Vec<Expr> = Vec::new();
            if let Some(first) = lists.first() {
                for e in first {
                    let t = e.to_string();
                    if lists[1..]
                        .iter()
                        .all(|l| l.iter().any(|x| x.to_string() == t))
                        && !keys.iter().any(|k| k.to_string() == t)
                    {
                        keys.push(e.clone());
                    }
                }
            }
            if !plain_group.is_empty() || s.having.is_some() || has_aggregate_items(s) {
                // Over groups: a key must be a GROUP BY expression (a function of the group's
                // input rows); otherwise the whole result is one key.
                let group_texts: Vec<String> = plain_group
                    .iter()
                    .map(|g| resolve_output_ref(g, s).map(|g| g.to_string()))
                    .collect::<R<_>>()?;
                keys.retain(|k| group_texts.contains(&k.to_string()));
            }
            let n = keys.len();
            let texts: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            (
                what.join(" and "),
                keys,
                vec![(0..n).map(KeyPart::Col).collect()],
                texts,
            )
        };
        // The input rows projected on the key expressions.
        let mut ks = s.clone();
        ks.distinct = None;
        ks.group_by = GroupByExpr::Expressions(vec![], vec![]);
        ks.having = None;
        ks.named_window = vec![];
        ks.projection = if exprs.is_empty() {
            vec![SelectItem::ExprWithAlias {
                expr: Expr::value(Value::Number("0".into(), false)),
                alias: Ident::new("__pgt_k0"),
            }]
        } else {
            exprs
                .iter()
                .enumerate()
                .map(|(i, e)| SelectItem::ExprWithAlias {
                    expr: e.clone(),
                    alias: Ident::new(format!("__pgt_k{i}")),
                })
                .collect()
        };
        let body = Body::Block(Box::new(self.block(&ks)?));
        // The query restricted to the affected keys, with each row's key hash.
        let mut rs = s.clone();
        let hole = Expr::Identifier(Ident::new(FILTER_HOLE));
        rs.selection = Some(match rs.selection.take() {
            Some(w) => Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(w))),
                op: sqlparser::ast::BinaryOperator::And,
                right: Box::new(hole),
            },
            None => hole,
        });
        rs.projection.push(SelectItem::ExprWithAlias {
            expr: Expr::Identifier(Ident::new(HASH_HOLE)),
            alias: Ident::new("__pgt_kh"),
        });
        let mut restricted = q.clone();
        restricted.body = Box::new(SetExpr::Select(Box::new(rs)));
        Ok(Shape::Keyed(Box::new(KeyedPlan {
            what,
            input: KeyedInput::Keys {
                body,
                exprs: exprs.iter().map(|e| e.to_string()).collect(),
            },
            sets,
            output_keys,
            restricted,
        })))
    }

    /// `ORDER BY ... LIMIT/OFFSET/FETCH` at the top: the whole result is recomputed when the
    /// query below the limit changes.
    pub(super) fn top_k(&mut self, q: &Query) -> R<Shape> {
        if q.order_by.is_none() {
            return unsupported("LIMIT without ORDER BY");
        }
        struct V(bool);
        impl Visitor for V {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
                if matches!(
                    e,
                    Expr::Subquery(_)
                        | Expr::Exists { .. }
                        | Expr::In {
                            target: sqlparser::ast::InTarget::Subquery(_),
                            ..
                        }
                ) {
                    self.0 = true;
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            }
        }
        let mut v = V(false);
        let _ = q.limit_clause.visit(&mut v);
        let _ = q.fetch.visit(&mut v);
        let _ = q.order_by.visit(&mut v);
        if v.0 {
            return unsupported("a subquery in ORDER BY, LIMIT or OFFSET");
        }
        let mut below = q.clone();
        below.limit_clause = None;
        below.fetch = None;
        below.order_by = None;
        let inner = self.top(&below)?;
        Ok(Shape::Keyed(Box::new(KeyedPlan {
            what: "ORDER BY ... LIMIT (top-k)".into(),
            input: KeyedInput::Whole(Box::new(inner)),
            sets: vec![vec![]],
            output_keys: vec![],
            restricted: q.clone(),
        })))
    }

    fn check_plain_select_keyed(&self, s: &Select) -> R<()> {
        let mut plain = s.clone();
        plain.named_window = vec![];
        self.check_plain_select(&plain)
    }
}

fn has_window(e: &Expr) -> bool {
    struct V;
    impl Visitor for V {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Function(f) if f.over.is_some() => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    e.visit(&mut V).is_break()
}

fn has_aggregate_items(s: &Select) -> bool {
    s.projection.iter().any(|i| match i {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
            expr_has_aggregate(e)
        }
        _ => false,
    })
}

/// Refuses subqueries: they read relations whose changes the key's input would not see.
fn no_subquery(e: &Expr) -> R<()> {
    struct V;
    impl Visitor for V {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Subquery(_)
                | Expr::Exists { .. }
                | Expr::In {
                    target: sqlparser::ast::InTarget::Subquery(_),
                    ..
                } => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    if e.visit(&mut V).is_break() {
        return unsupported("a subquery next to window functions, DISTINCT ON or GROUPING SETS");
    }
    Ok(())
}

/// The PARTITION BY list of every window function of the select list (None: no window).
fn window_partitions(s: &Select) -> R<Option<Vec<Vec<Expr>>>> {
    let named = |name: &Ident| -> R<Vec<Expr>> {
        let n = fold_ident(name);
        for d in &s.named_window {
            if fold_ident(&d.0) == n {
                return match &d.1 {
                    sqlparser::ast::NamedWindowExpr::WindowSpec(spec) => {
                        Ok(spec.partition_by.clone())
                    }
                    _ => unsupported("a window defined as another window"),
                };
            }
        }
        unsupported(format!("window {name}"))
    };
    struct V<'a> {
        out: Vec<Vec<Expr>>,
        err: Option<Unsupported>,
        named: &'a dyn Fn(&Ident) -> R<Vec<Expr>>,
    }
    impl Visitor for V<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e {
                let got = match &f.over {
                    None => return ControlFlow::Continue(()),
                    Some(sqlparser::ast::WindowType::NamedWindow(n)) => (self.named)(n),
                    Some(sqlparser::ast::WindowType::WindowSpec(spec)) => {
                        match (&spec.window_name, spec.partition_by.is_empty()) {
                            (Some(n), true) => (self.named)(n),
                            _ => Ok(spec.partition_by.clone()),
                        }
                    }
                };
                match got {
                    Ok(p) => self.out.push(p),
                    Err(u) => {
                        self.err = Some(u);
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V {
        out: vec![],
        err: None,
        named: &named,
    };
    for i in &s.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = i {
            let _ = e.visit(&mut v);
        }
    }
    if let Some(u) = v.err {
        return Err(u);
    }
    Ok((!v.out.is_empty()).then_some(v.out))
}

/// The grouping sets of a GROUP BY with GROUPING SETS, ROLLUP or CUBE (None: none of them).
fn grouping_sets(s: &Select) -> Option<R<Vec<Vec<Expr>>>> {
    let GroupByExpr::Expressions(items, _) = &s.group_by else {
        return None;
    };
    if !items
        .iter()
        .any(|e| matches!(e, Expr::GroupingSets(_) | Expr::Rollup(_) | Expr::Cube(_)))
    {
        return None;
    }
    // The cross product of each entry's sets.
    let mut sets: Vec<Vec<Expr>> = vec![vec![]];
    for item in items {
        let item_sets: Vec<Vec<Expr>> = match item {
            Expr::GroupingSets(g) => g.clone(),
            Expr::Rollup(parts) => (0..=parts.len())
                .rev()
                .map(|n| parts[..n].concat())
                .collect(),
            Expr::Cube(parts) => {
                if parts.len() > 10 {
                    return Some(unsupported("CUBE of more than 10 entries"));
                }
                (0..(1u32 << parts.len()))
                    .rev()
                    .map(|m| {
                        parts
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| m & (1 << (parts.len() - 1 - i)) != 0)
                            .flat_map(|(_, p)| p.clone())
                            .collect()
                    })
                    .collect()
            }
            e => vec![vec![e.clone()]],
        };
        let mut next = Vec::new();
        for a in &sets {
            for b in &item_sets {
                let mut s = a.clone();
                s.extend(b.iter().cloned());
                next.push(s);
            }
        }
        if next.len() > 256 {
            return Some(unsupported("more than 256 grouping sets"));
        }
        sets = next;
    }
    Some(Ok(sets))
}

/// A GROUP BY or DISTINCT ON entry that names an output column (a position, or an output
/// alias) resolved to that column's expression; other entries as they are.
fn resolve_output_ref(e: &Expr, s: &Select) -> R<Expr> {
    let item_expr = |i: &SelectItem| match i {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e.clone()),
        _ => None,
    };
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => {
                let pos: usize = n
                    .parse()
                    .map_err(|_| Unsupported(format!("GROUP BY or DISTINCT ON {n}")))?;
                pos.checked_sub(1)
                    .and_then(|p| s.projection.get(p))
                    .and_then(item_expr)
                    .ok_or_else(|| Unsupported(format!("GROUP BY or DISTINCT ON position {n}")))
            }
            _ => Ok(e.clone()),
        },
        Expr::Identifier(id) => {
            let name = fold_ident(id);
            for i in &s.projection {
                if let SelectItem::ExprWithAlias { expr, alias } = i {
                    if fold_ident(alias) == name && expr.to_string() != e.to_string() {
                        return unsupported(format!(
                            "GROUP BY or DISTINCT ON output column name {id}"
                        ));
                    }
                }
            }
            Ok(e.clone())
        }
        _ => Ok(e.clone()),
    }
}
