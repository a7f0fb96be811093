//! Grouping: GROUP BY blocks at the top (per-group storage) and in subqueries, DISTINCT as
//! grouping on every column, classification of aggregate calls, output names.

use super::*;

impl Builder<'_> {
    /// A GROUP BY subquery: keys and plain aggregates only (no HAVING, no DISTINCT
    /// aggregates, no expressions over aggregates), with at least one key.
    pub(super) fn grouped_body(&mut self, s: &Select) -> R<Body> {
        let plan = match self.grouped(s)? {
            Shape::Aggregate(plan) => plan,
            Shape::Bag(b @ Body::Grouped(_)) => return Ok(b),
            Shape::Bag(_) | Shape::Keyed(_) => return unsupported("GROUP BY in a subquery"),
        };
        let mut plan = *plan;
        let names = s.projection.iter().map(item_name).collect();
        // Outputs and HAVING as expressions over the grouped row.
        let mut out_exprs = Vec::new();
        for (c, item) in s.projection.iter().enumerate() {
            let e = match plan.outputs[c] {
                OutCol::Key(i) => format!("__pgt_k{i}"),
                OutCol::Agg(j) => format!("__pgt_v{j}"),
                OutCol::Expr => {
                    let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) =
                        item
                    else {
                        return unsupported("this select item in a GROUP BY subquery");
                    };
                    over_grouped_row(e, &mut plan)?
                }
            };
            out_exprs.push(e);
        }
        let having = match &s.having {
            Some(h) => Some(over_grouped_row(h, &mut plan)?),
            None => None,
        };
        Ok(Body::Grouped(Box::new(GroupedBody {
            plan,
            names,
            out_exprs,
            having,
        })))
    }

    pub(super) fn grouped(&mut self, s: &Select) -> R<Shape> {
        self.check_plain_select(s)?;
        if !matches!(&s.group_by, GroupByExpr::Expressions(_, m) if m.is_empty()) {
            return unsupported("GROUP BY ALL/ROLLUP/CUBE/GROUPING SETS");
        }
        let fw = self.scan_from_where(s)?;
        let s = &with_merged_columns(s, &fw.merged);
        let group_exprs: Vec<Expr> = match &s.group_by {
            GroupByExpr::Expressions(e, _) => e.clone(),
            _ => return unsupported("GROUP BY ALL/ROLLUP/CUBE/GROUPING SETS"),
        };
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
                Some(Ok((kind, arg, filter, distinct))) => {
                    if distinct {
                        rescan_all.get_or_insert(format!("aggregate with DISTINCT ({e})"));
                    }
                    outputs.push(OutCol::Agg(aggs.len()));
                    let arg_type = self.agg_arg_type(e, &fw.block.factors, &fw.alias_names);
                    aggs.push(Agg {
                        kind,
                        arg,
                        filter,
                        arg_type,
                        distinct,
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
        if let Some(h) = &fw.having {
            check_expr(h)?;
            rescan_all.get_or_insert("HAVING".into());
        }
        if let Some(why) = hidden_key {
            // Stored per group only when every key is an output column; otherwise the grouped
            // result is kept as a bag, with the changed groups recomputed (HAVING and output
            // expressions over the grouped row, as in a GROUP BY subquery).
            if key_exprs.is_empty() {
                return unsupported(why);
            }
            let mut plan = AggPlan {
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
            let mut row_exprs = Vec::new();
            for (c, (e, _)) in out_exprs.iter().enumerate() {
                row_exprs.push(match plan.outputs[c] {
                    OutCol::Key(i) => format!("__pgt_k{i}"),
                    OutCol::Agg(j) => format!("__pgt_v{j}"),
                    OutCol::Expr => over_grouped_row(e, &mut plan)?,
                });
            }
            let having = match &s.having {
                Some(h) => Some(over_grouped_row(h, &mut plan)?),
                None => None,
            };
            return Ok(Shape::Bag(Body::Grouped(Box::new(GroupedBody {
                plan,
                names,
                out_exprs: row_exprs,
                having,
            }))));
        }
        Ok(Shape::Aggregate(Box::new(AggPlan {
            input: AggInput::Grouped {
                block: Box::new(fw.block),
                items,
                group_by: group_exprs.iter().map(|g| g.to_string()).collect(),
                having: fw.having.as_ref().map(|h| h.to_string()),
            },
            key_exprs,
            key_outputs,
            aggs,
            outputs,
            rescan_all,
        })))
    }
}

impl Builder<'_> {
    /// The type of the argument of aggregate call `e` when it is a column of a source relation
    /// in `factors` (named alone, unambiguously, or qualified by its factor's alias).
    fn agg_arg_type(&self, e: &Expr, factors: &[Factor], aliases: &[String]) -> Option<String> {
        let Expr::Function(f) = e else { return None };
        let FunctionArguments::List(list) = &f.args else {
            return None;
        };
        let [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))] = list.args.as_slice() else {
            return None;
        };
        let mut a: &Expr = a;
        while let Expr::Nested(inner) = a {
            a = inner;
        }
        let (factor, column) = match a {
            Expr::Identifier(c) => {
                let c = fold_ident(c);
                let mut holders = factors.iter().filter(|f| f.columns.contains(&c));
                match (holders.next(), holders.next()) {
                    (Some(f), None) => (f, c),
                    _ => return None,
                }
            }
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [t, c] => {
                    let t = fold_ident(t);
                    let mut holders = aliases.iter().enumerate().filter(|(_, a)| **a == t);
                    match (holders.next(), holders.next()) {
                        (Some((i, _)), None) => (factors.get(i)?, fold_ident(c)),
                        _ => return None,
                    }
                }
                _ => return None,
            },
            _ => return None,
        };
        let FactorSource::Base(r) = factor.source else {
            return None;
        };
        self.relations
            .get(r)?
            .columns
            .iter()
            .find(|col| col.name == column)
            .map(|col| col.type_name.clone())
    }
}

pub(super) fn distinct_plan(body: Body) -> Shape {
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
pub(super) fn item_name(i: &SelectItem) -> String {
    match i {
        SelectItem::ExprWithAlias { alias, .. } => fold_ident(alias),
        SelectItem::UnnamedExpr(e) => expr_name(e),
        _ => "?column?".into(),
    }
}

/// DISTINCT over a body, as a grouped body whose keys are all its columns.
pub(super) fn distinct_body(body: Body, id: usize) -> Body {
    let names = body.names();
    let n = names.len();
    let block = match body {
        Body::Block(b) if b.preds.is_empty() && b.variants.is_empty() => *b,
        other => body_as_block(other, id, "__pgt_u"),
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
    let out_exprs = (0..n).map(|i| format!("__pgt_k{i}")).collect();
    Body::Grouped(Box::new(GroupedBody {
        plan,
        names,
        out_exprs,
        having: None,
    }))
}

/// A body as the one factor (aliased `alias`, columns `__pgt_c0..`) of a block that selects
/// all its columns.
pub(super) fn body_as_block(body: Body, id: usize, alias: &str) -> Block {
    let names = body.names();
    let cols: Vec<String> = (0..names.len()).map(|i| format!("__pgt_c{i}")).collect();
    let f = Factor {
        id,
        source: FactorSource::Derived(body),
        columns: cols.clone(),
    };
    let items: Vec<String> = cols.iter().map(|c| format!("{alias}.{c}")).collect();
    Block {
        items: items.clone(),
        names,
        item_exprs: items,
        aliases: vec![alias.into()],
        from_sql: format!(
            "{} AS {alias}({}, {})",
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

/// The name PostgreSQL gives an unaliased output expression.
pub(super) fn expr_name(e: &Expr) -> String {
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

/// `e` (an output or HAVING of a grouped subquery) rewritten over the grouped row: group key
/// expressions become `__pgt_kI`, aggregate calls become `__pgt_vJ` (added to the plan as
/// hidden aggregates). Any other column reference makes it unsupported.
fn over_grouped_row(e: &Expr, plan: &mut AggPlan) -> R<String> {
    use sqlparser::ast::{VisitMut, VisitorMut};
    struct Rw<'a> {
        plan: &'a mut AggPlan,
        err: Option<Unsupported>,
    }
    impl VisitorMut for Rw<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            let text = e.to_string();
            if let Some(i) = self.plan.key_exprs.iter().position(|k| *k == text) {
                *e = Expr::Identifier(Ident::new(format!("__pgt_k{i}")));
                return ControlFlow::Continue(());
            }
            match classify_agg(e) {
                Some(Ok((kind, arg, filter, distinct))) => {
                    let j = self.plan.aggs.len();
                    self.plan.aggs.push(Agg {
                        kind,
                        arg,
                        filter,
                        arg_type: None,
                        distinct,
                        output: usize::MAX,
                    });
                    *e = Expr::Identifier(Ident::new(format!("__pgt_v{j}")));
                    ControlFlow::Continue(())
                }
                Some(Err(why)) => {
                    self.err = Some(Unsupported(format!("{why} in a GROUP BY subquery")));
                    ControlFlow::Break(())
                }
                None => match e {
                    Expr::Identifier(i) if i.value.starts_with("__pgt_") => {
                        ControlFlow::Continue(())
                    }
                    Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                        self.err = Some(Unsupported(format!(
                            "column {e} outside GROUP BY in a GROUP BY subquery"
                        )));
                        ControlFlow::Break(())
                    }
                    _ => ControlFlow::Continue(()),
                },
            }
        }
    }
    check_expr(e)?;
    let mut e = e.clone();
    let mut rw = Rw { plan, err: None };
    let _ = VisitMut::visit(&mut e, &mut rw);
    match rw.err {
        Some(u) => Err(u),
        None => Ok(e.to_string()),
    }
}

/// Kind, argument, FILTER predicate, DISTINCT.
pub(super) type Classified = Result<(AggKind, Option<String>, Option<String>, bool), String>;

/// None: not an aggregate call. Some(Err): an aggregate maintained by re-scanning groups.
pub(super) fn classify_agg(e: &Expr) -> Option<Classified> {
    let name = aggregate_name(e)?;
    let Expr::Function(f) = e else { return None };
    let FunctionArguments::List(list) = &f.args else {
        return Some(Err(format!("{name}() without arguments")));
    };
    let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
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
                return Some(Ok((AggKind::CountStar, None, filter, false)));
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
            Some(Ok((kind, Some(a.to_string()), filter, distinct)))
        }
        _ => Some(Err(format!("{name}() with these arguments"))),
    }
}
