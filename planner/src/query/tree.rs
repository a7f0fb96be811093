//! The operator tree of a defining query (scans, filters, projections, joins, aggregates,
//! distinct, set operations, subqueries), built from the sqlparser AST and printed as readable
//! indented text for `explain_st` and golden tests.

use std::fmt;

use sqlparser::ast::{
    Distinct, GroupByExpr, JoinConstraint, JoinOperator, Query, SelectItem, SetExpr, SetOperator,
    SetQuantifier, TableFactor, TableWithJoins,
};

/// One node of the operator tree. Expressions are kept as SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// Reads a relation (or a CTE) under an alias.
    Scan {
        /// The relation as written.
        relation: String,
        /// The alias it is read under, if any.
        alias: Option<String>,
    },
    /// Keeps the rows satisfying a predicate.
    Filter {
        /// The predicate.
        predicate: String,
        /// The input.
        input: Box<Operator>,
    },
    /// Computes the output columns.
    Project {
        /// The output expressions.
        columns: Vec<String>,
        /// The input.
        input: Box<Operator>,
    },
    /// Joins two inputs.
    Join {
        /// INNER, LEFT, RIGHT, FULL, CROSS.
        kind: String,
        /// The ON or USING condition.
        condition: Option<String>,
        /// Left input.
        left: Box<Operator>,
        /// Right input.
        right: Box<Operator>,
    },
    /// Groups and aggregates.
    Aggregate {
        /// GROUP BY expressions (empty: one group).
        group_by: Vec<String>,
        /// HAVING predicate.
        having: Option<String>,
        /// The input.
        input: Box<Operator>,
    },
    /// Removes duplicate rows.
    Distinct {
        /// The input.
        input: Box<Operator>,
    },
    /// UNION, INTERSECT, EXCEPT, with or without ALL.
    SetOp {
        /// The operation, e.g. `UNION ALL`.
        op: String,
        /// Left input.
        left: Box<Operator>,
        /// Right input.
        right: Box<Operator>,
    },
    /// A subquery in FROM, or a CTE definition, under a name.
    Subquery {
        /// Its alias.
        alias: String,
        /// Its plan.
        input: Box<Operator>,
    },
    /// ORDER BY / LIMIT (the stream table keeps the bag; order is not stored).
    Sort {
        /// ORDER BY ... [LIMIT ...] as written.
        spec: String,
        /// The input.
        input: Box<Operator>,
    },
    /// Anything else (VALUES, table functions, ...), as written.
    Other {
        /// The SQL text.
        sql: String,
    },
}

impl Operator {
    /// Builds the tree of a query.
    pub fn from_query(q: &Query) -> Operator {
        let mut op = from_set_expr(&q.body);
        if let Some(with) = &q.with {
            for cte in with.cte_tables.iter().rev() {
                op = Operator::Join {
                    kind: "WITH".into(),
                    condition: None,
                    left: Box::new(Operator::Subquery {
                        alias: cte.alias.name.to_string(),
                        input: Box::new(Operator::from_query(&cte.query)),
                    }),
                    right: Box::new(op),
                };
            }
        }
        if q.order_by.is_some() || q.limit_clause.is_some() {
            let mut spec = String::new();
            if let Some(o) = &q.order_by {
                spec.push_str(&o.to_string());
            }
            if let Some(l) = &q.limit_clause {
                spec.push_str(&l.to_string());
            }
            op = Operator::Sort {
                spec: spec.trim().to_string(),
                input: Box::new(op),
            };
        }
        op
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let pad = "  ".repeat(depth);
        match self {
            Operator::Scan { relation, alias } => match alias {
                Some(a) => writeln!(f, "{pad}Scan {relation} AS {a}"),
                None => writeln!(f, "{pad}Scan {relation}"),
            },
            Operator::Filter { predicate, input } => {
                writeln!(f, "{pad}Filter {predicate}")?;
                input.write(f, depth + 1)
            }
            Operator::Project { columns, input } => {
                writeln!(f, "{pad}Project {}", columns.join(", "))?;
                input.write(f, depth + 1)
            }
            Operator::Join {
                kind,
                condition,
                left,
                right,
            } => {
                match condition {
                    Some(c) => writeln!(f, "{pad}Join {kind} {c}")?,
                    None => writeln!(f, "{pad}Join {kind}")?,
                }
                left.write(f, depth + 1)?;
                right.write(f, depth + 1)
            }
            Operator::Aggregate {
                group_by,
                having,
                input,
            } => {
                write!(f, "{pad}Aggregate")?;
                if !group_by.is_empty() {
                    write!(f, " GROUP BY {}", group_by.join(", "))?;
                }
                if let Some(h) = having {
                    write!(f, " HAVING {h}")?;
                }
                writeln!(f)?;
                input.write(f, depth + 1)
            }
            Operator::Distinct { input } => {
                writeln!(f, "{pad}Distinct")?;
                input.write(f, depth + 1)
            }
            Operator::SetOp { op, left, right } => {
                writeln!(f, "{pad}{op}")?;
                left.write(f, depth + 1)?;
                right.write(f, depth + 1)
            }
            Operator::Subquery { alias, input } => {
                writeln!(f, "{pad}Subquery {alias}")?;
                input.write(f, depth + 1)
            }
            Operator::Sort { spec, input } => {
                writeln!(f, "{pad}Sort {spec}")?;
                input.write(f, depth + 1)
            }
            Operator::Other { sql } => writeln!(f, "{pad}{sql}"),
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0)
    }
}

fn from_set_expr(s: &SetExpr) -> Operator {
    match s {
        SetExpr::Select(sel) => {
            let mut op = match sel.from.split_first() {
                None => Operator::Other {
                    sql: "Result (no FROM)".into(),
                },
                Some((first, rest)) => {
                    let mut op = from_table_with_joins(first);
                    for t in rest {
                        op = Operator::Join {
                            kind: "CROSS".into(),
                            condition: None,
                            left: Box::new(op),
                            right: Box::new(from_table_with_joins(t)),
                        };
                    }
                    op
                }
            };
            if let Some(w) = &sel.selection {
                op = Operator::Filter {
                    predicate: w.to_string(),
                    input: Box::new(op),
                };
            }
            let group_by: Vec<String> = match &sel.group_by {
                GroupByExpr::Expressions(e, _) => e.iter().map(|e| e.to_string()).collect(),
                GroupByExpr::All(_) => vec!["ALL".into()],
            };
            let has_agg = !group_by.is_empty()
                || sel.having.is_some()
                || sel.projection.iter().any(item_has_aggregate);
            if has_agg {
                op = Operator::Aggregate {
                    group_by,
                    having: sel.having.as_ref().map(|h| h.to_string()),
                    input: Box::new(op),
                };
            }
            op = Operator::Project {
                columns: sel.projection.iter().map(|p| p.to_string()).collect(),
                input: Box::new(op),
            };
            if matches!(sel.distinct, Some(Distinct::Distinct)) {
                op = Operator::Distinct {
                    input: Box::new(op),
                };
            } else if let Some(d) = &sel.distinct {
                op = Operator::Other {
                    sql: format!("{d} (unsupported)"),
                };
            }
            op
        }
        SetExpr::Query(q) => Operator::from_query(q),
        SetExpr::SetOperation {
            left,
            op,
            set_quantifier,
            right,
        } => {
            let name = match op {
                SetOperator::Union => "UNION",
                SetOperator::Intersect => "INTERSECT",
                SetOperator::Except | SetOperator::Minus => "EXCEPT",
            };
            let all = matches!(set_quantifier, SetQuantifier::All);
            Operator::SetOp {
                op: if all {
                    format!("{name} ALL")
                } else {
                    name.to_string()
                },
                left: Box::new(from_set_expr(left)),
                right: Box::new(from_set_expr(right)),
            }
        }
        other => Operator::Other {
            sql: other.to_string(),
        },
    }
}

/// Whether a select item calls an aggregate function (by name, outside window functions).
fn item_has_aggregate(item: &SelectItem) -> bool {
    match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
            super::model::expr_has_aggregate(e)
        }
        _ => false,
    }
}

fn from_table_with_joins(t: &TableWithJoins) -> Operator {
    let mut op = from_factor(&t.relation);
    for j in &t.joins {
        let (kind, c) = match &j.join_operator {
            JoinOperator::Join(c) | JoinOperator::Inner(c) => ("INNER", Some(c)),
            JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => ("LEFT", Some(c)),
            JoinOperator::Right(c) | JoinOperator::RightOuter(c) => ("RIGHT", Some(c)),
            JoinOperator::FullOuter(c) => ("FULL", Some(c)),
            JoinOperator::CrossJoin(c) => ("CROSS", Some(c)),
            _ => ("OTHER", None),
        };
        let condition = match c {
            Some(JoinConstraint::On(e)) => Some(format!("ON {e}")),
            Some(JoinConstraint::Using(cols)) => Some(format!(
                "USING ({})",
                cols.iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(JoinConstraint::Natural) => Some("NATURAL".into()),
            _ => None,
        };
        op = Operator::Join {
            kind: kind.into(),
            condition,
            left: Box::new(op),
            right: Box::new(from_factor(&j.relation)),
        };
    }
    op
}

fn from_factor(f: &TableFactor) -> Operator {
    match f {
        TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => Operator::Scan {
            relation: name.to_string(),
            alias: alias.as_ref().map(|a| a.to_string()),
        },
        TableFactor::Derived {
            subquery, alias, ..
        } => Operator::Subquery {
            alias: alias
                .as_ref()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "(unnamed)".into()),
            input: Box::new(Operator::from_query(subquery)),
        },
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => from_table_with_joins(table_with_joins),
        other => Operator::Other {
            sql: other.to_string(),
        },
    }
}
