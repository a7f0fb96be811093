//! The builder's walk over a query: top-level shapes, bodies (blocks and UNION ALL),
//! subqueries and CTEs, FROM clauses and their factors, select lists.

use super::*;

impl Builder<'_> {
    pub(super) fn top(&mut self, q: &Query) -> R<Shape> {
        self.register_ctes(q)?;
        if q.limit_clause.is_some() || q.fetch.is_some() {
            return self.top_k(q);
        }
        if let SetExpr::Select(s) = q.body.as_ref() {
            if Self::is_keyed_select(s) {
                return self.keyed_select(q, s);
            }
        }
        // ORDER BY alone does not change the bag: the stream table does not keep order.
        self.top_set_expr(&q.body)
    }

    pub(super) fn top_set_expr(&mut self, body: &SetExpr) -> R<Shape> {
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

    pub(super) fn register_ctes(&mut self, q: &Query) -> R<()> {
        if let Some(with) = &q.with {
            if with.recursive {
                return unsupported("WITH RECURSIVE");
            }
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

    pub(super) fn union_branches(&mut self, s: &SetExpr, out: &mut Vec<Body>) -> R<()> {
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

    /// A body: a plain block or UNION ALL of bodies.
    pub(super) fn body(&mut self, s: &SetExpr) -> R<Body> {
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

    pub(super) fn subquery(&mut self, q: &Query) -> R<Body> {
        if q.limit_clause.is_some() || q.fetch.is_some() {
            return unsupported("LIMIT in a subquery");
        }
        if q.with.is_some() {
            return unsupported("WITH inside a subquery");
        }
        self.body(&q.body)
    }

    pub(super) fn check_plain_select(&self, s: &Select) -> R<()> {
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
    pub(super) fn block(&mut self, s: &Select) -> R<Block> {
        self.check_plain_select(s)?;
        if !matches!(&s.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
            || s.having.is_some()
        {
            return unsupported("GROUP BY below the top of the query");
        }
        let mut b = self.scan_from_where(s)?;
        let s = &with_merged_columns(s, &b.merged);
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

    pub(super) fn scan_from_where(&mut self, s: &Select) -> R<FromWhere> {
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
        let merged: Vec<Merged> = outers
            .iter_mut()
            .flat_map(|o| std::mem::take(&mut o.merged))
            .collect();
        let s = &with_merged_columns(s, &merged);
        if !outers.is_empty()
            && factors.iter().any(|f| {
                matches!(f.source, FactorSource::Constant) || self.laterals.contains(&f.id)
            })
        {
            return unsupported("a function, VALUES or LATERAL subquery in FROM with outer joins");
        }
        let mut conjuncts = Vec::new();
        if let Some(w) = &s.selection {
            split_and(w, &mut conjuncts);
        }
        let mut rest = Vec::new();
        let mut preds = Vec::new();
        let mut enc = Enclosing {
            from: &mut from,
            factors: &mut factors,
            aliases: &mut alias_names,
            using: &mut using,
            extra: Vec::new(),
        };
        for c in conjuncts {
            match self.semi_join(c, enc.factors, enc.aliases)? {
                Some(p) => preds.push(p),
                None => {
                    let c = self.lift_where_conjunct(c, &mut enc)?;
                    check_expr(&c)?;
                    rest.push(c.to_string());
                }
            }
        }
        let having = match &s.having {
            Some(h) => Some(self.lift_having(h, &mut enc)?),
            None => None,
        };
        rest.append(&mut enc.extra);
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
            merged,
            having,
        };
        if !outers.is_empty() {
            fw.block.variants = self.outer_variants(&from, &fw.block, &outers)?;
        }
        Ok(fw)
    }

    pub(super) fn table_with_joins(
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
                        JoinConstraint::Using(cols) | JoinConstraint::UsingAlias(cols, _) => {
                            *using = true;
                            if let Some((twj, outers)) = place.as_ref() {
                                let earlier = merged_in_chain(outers, *twj);
                                if let Some(c) = cols.iter().find(|c| {
                                    earlier
                                        .iter()
                                        .any(|e| c.to_string().eq_ignore_ascii_case(e))
                                }) {
                                    return unsupported(format!(
                                        "JOIN ... USING ({c}) after an outer JOIN ... USING ({c})"
                                    ));
                                }
                            }
                        }
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
            let using_cols = match c {
                Some(JoinConstraint::Using(cols)) => Some(cols.clone()),
                _ => None,
            };
            let on = match (kind, c) {
                (Some(k), Some(JoinConstraint::On(e))) => {
                    check_expr(e)?;
                    Some((k, e.to_string()))
                }
                (Some(k), Some(JoinConstraint::Using(_))) => Some((k, String::new())),
                (Some(k), _) => return unsupported(format!("{} JOIN without ON", k.name())),
                _ => None,
            };
            self.factor(&mut j.relation, factors, aliases, using)?;
            if let Some((kind, mut on)) = on {
                let Some((twj, outers)) = place.as_mut() else {
                    return unsupported(format!("{} JOIN inside parentheses", kind.name()));
                };
                let mut merged = Vec::new();
                if let Some(cols) = &using_cols {
                    let right = factors.len() - 1;
                    let earlier = merged_in_chain(outers, *twj);
                    let (cond, m) = self.outer_using(
                        kind,
                        cols,
                        factors,
                        aliases,
                        first..right,
                        right,
                        &earlier,
                    )?;
                    on = cond.to_string();
                    merged = m;
                    let constraint = JoinConstraint::On(cond);
                    j.join_operator = match kind {
                        OuterKind::Left => JoinOperator::LeftOuter(constraint),
                        OuterKind::Right => JoinOperator::RightOuter(constraint),
                        OuterKind::Full => JoinOperator::FullOuter(constraint),
                    };
                }
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
                    merged,
                });
            }
        }
        Ok(())
    }

    pub(super) fn factor(
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
                        if rel.delta_key.is_none() {
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
                    FactorSource::Base(_) | FactorSource::NullRow(_) | FactorSource::Constant => {
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
            } if *lateral || matches!(subquery.body.as_ref(), SetExpr::Values(_)) => {
                let lateral = *lateral;
                self.lateral_factor(f, id, lateral, factors, aliases)
            }
            TableFactor::Table { args: Some(_), .. }
            | TableFactor::Function { .. }
            | TableFactor::UNNEST { .. }
            | TableFactor::TableFunction { .. } => self.constant_factor(f, id, factors, aliases),
            TableFactor::Derived {
                subquery, alias, ..
            } => {
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
            other => unsupported(other.to_string()),
        }
    }

    /// Select items as SQL with `*` and `alias.*` expanded, and their output names.
    pub(super) fn expand_items(
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
                        if self.hidden.contains(&f.id) {
                            continue;
                        }
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
}

pub(super) struct FromWhere {
    pub(super) block: Block,
    pub(super) alias_names: Vec<String>,
    pub(super) using: bool,
    /// Columns merged by outer `JOIN ... USING`, which the select list, GROUP BY and HAVING
    /// read through [`with_merged_columns`].
    pub(super) merged: Vec<Merged>,
    /// HAVING with its scalar subqueries lifted into the block.
    pub(super) having: Option<Expr>,
}

pub(super) fn placeholder_derived(id: usize, alias: Ident) -> R<TableFactor> {
    placeholder_derived_lateral(id, alias, false)
}

pub(super) fn placeholder_derived_lateral(
    id: usize,
    alias: Ident,
    lateral: bool,
) -> R<TableFactor> {
    let sql = format!("SELECT * FROM (SELECT __pgt_f{id}__) AS x");
    let q = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
        .ok()
        .and_then(|mut v| v.pop())
        .ok_or_else(|| Unsupported("internal placeholder".into()))?;
    if let sqlparser::ast::Statement::Query(q) = q {
        if let SetExpr::Select(s) = *q.body {
            if let Some(mut t) = s.from.into_iter().next() {
                if let TableFactor::Derived {
                    alias: a,
                    lateral: l,
                    ..
                } = &mut t.relation
                {
                    *l = lateral;
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
