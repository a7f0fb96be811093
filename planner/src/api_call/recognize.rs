//! Finds a pgtrickle call in a parsed statement, as PostgreSQL resolves names (unquoted
//! identifiers fold to lower case), and reduces its arguments to raw literal values or `$n`
//! parameters.

use std::ops::ControlFlow;

use sqlparser::ast::{
    CastKind, DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgOperator,
    FunctionArguments, GroupByExpr, Ident, ObjectName, ObjectNamePart, SelectItem, SetExpr,
    Statement, TableFactor, UnaryOperator, Value, Visit, Visitor,
};

use super::signature::{ApiFunction, ParamType};
use crate::error::{PlanError, Result};

/// An argument value before binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawValue {
    /// A string literal of unknown type (coerces to any parameter type).
    Unknown(String),
    /// A value of a known type, as text: a number, a boolean, a cast literal.
    Typed(ParamType, String),
    /// `NULL`
    Null,
    /// `$n` (1-based), bound later.
    Param(usize),
    /// Column `i` (0-based) of a row of the call's row query (a call over the rows of a
    /// query), bound for each row.
    Column(usize),
}

/// One argument as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawArg {
    /// The name in named notation (case-folded), None for positional.
    pub name: Option<String>,
    /// The value.
    pub value: RawValue,
}

/// How the statement presents the call's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutput {
    /// `SELECT pgtrickle.f(...) [AS alias]`: one column with this name.
    Scalar {
        /// The result column's name: the alias, or the function's name.
        column: String,
    },
    /// `SELECT * FROM pgtrickle.f(...) [alias]`: the function's result columns.
    Table,
}

/// A call found in a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCall {
    /// Which function.
    pub function: ApiFunction,
    /// Its arguments as written.
    pub args: Vec<RawArg>,
    /// How the result is presented.
    pub output: CallOutput,
    /// For a call over the rows of a query (`SELECT pgtrickle.f(col) FROM ... WHERE ...`): the
    /// query that yields, as text columns, the arguments that are not literals
    /// ([`RawValue::Column`]); the call is made once per row, in order.
    pub rows: Option<String>,
}

/// Folds an identifier as PostgreSQL does: unquoted to lower case, quoted kept.
pub fn fold_ident(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// The folded parts of an object name; None when a part is not a plain identifier.
pub fn fold_name(n: &ObjectName) -> Option<Vec<String>> {
    n.0.iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(fold_ident(i)),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}

fn pgtrickle_function_name(n: &ObjectName) -> Option<String> {
    let parts = fold_name(n)?;
    match parts.as_slice() {
        [schema, f] if schema == "pgtrickle" => Some(f.clone()),
        _ => None,
    }
}

/// The API function `n` names. Other `pgtrickle.*` functions (the monitoring functions, the
/// refusals) are SQL functions in the database: the server answers them.
fn lookup(n: &ObjectName) -> Result<Option<ApiFunction>> {
    Ok(pgtrickle_function_name(n).and_then(|f| ApiFunction::by_name(&f)))
}

/// The changing API function `n` names, if any.
fn changing_function(n: &ObjectName) -> Option<ApiFunction> {
    pgtrickle_function_name(n)
        .and_then(|f| ApiFunction::by_name(&f))
        .filter(|f| f.changes_things())
}

/// Finds the pgtrickle call in `stmt`. Ok(None) when there is none; an error when there is one
/// in a place this proxy cannot answer (inside a larger expression, next to other columns).
pub fn find_call(stmt: &Statement) -> Result<Option<RawCall>> {
    if let Some(call) = top_level_call(stmt)? {
        return Ok(Some(call));
    }
    // Not in a supported position: is there a pgtrickle function call anywhere at all?
    let mut finder = CallFinder(None);
    let _ = stmt.visit(&mut finder);
    match finder.0 {
        None => Ok(None),
        Some(f) => Err(PlanError::FeatureNotSupported(format!(
            "pgtrickle.{f}() can only be called on its own, as SELECT pgtrickle.{f}(...), \
             SELECT * FROM pgtrickle.{f}(...) or over the rows of a query, SELECT \
             pgtrickle.{f}(column, ...) FROM ... [WHERE ...]"
        ))),
    }
}

struct CallFinder(Option<String>);

impl Visitor for CallFinder {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = e {
            if let Some(function) = changing_function(&f.name) {
                self.0 = Some(function.sql_name().to_string());
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            args: Some(_),
            ..
        } = t
        {
            if let Some(function) = changing_function(name) {
                self.0 = Some(function.sql_name().to_string());
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

fn top_level_call(stmt: &Statement) -> Result<Option<RawCall>> {
    let Statement::Query(q) = stmt else {
        return Ok(None);
    };
    if let Some(call) = call_over_rows(q)? {
        return Ok(Some(call));
    }
    if q.with.is_some()
        || q.order_by.is_some()
        || q.limit_clause.is_some()
        || q.fetch.is_some()
        || !q.locks.is_empty()
    {
        return Ok(None);
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return Ok(None);
    };
    let plain = s.distinct.is_none()
        && s.selection.is_none()
        && s.having.is_none()
        && matches!(&s.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        && s.into.is_none();
    if !plain {
        return Ok(None);
    }
    match (s.from.as_slice(), s.projection.as_slice()) {
        ([], [item]) => {
            let (expr, alias) = match item {
                SelectItem::UnnamedExpr(e) => (e, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(fold_ident(alias))),
                _ => return Ok(None),
            };
            let Expr::Function(f) = expr else {
                return Ok(None);
            };
            let Some(function) = lookup(&f.name)? else {
                return Ok(None);
            };
            let args = function_args(f)?;
            let column = alias.unwrap_or_else(|| function.sql_name().to_string());
            Ok(Some(RawCall {
                function,
                args,
                output: CallOutput::Scalar { column },
                rows: None,
            }))
        }
        ([from], [SelectItem::Wildcard(_)]) if from.joins.is_empty() => {
            let TableFactor::Table {
                name,
                args: Some(targs),
                ..
            } = &from.relation
            else {
                return Ok(None);
            };
            let Some(function) = lookup(name)? else {
                return Ok(None);
            };
            let args = targs.args.iter().map(raw_arg).collect::<Result<Vec<_>>>()?;
            Ok(Some(RawCall {
                function,
                args,
                output: CallOutput::Table,
                rows: None,
            }))
        }
        _ => Ok(None),
    }
}

/// `SELECT pgtrickle.f(args) [AS x] FROM ... [WHERE ...] [ORDER BY ...]` (or with WHERE
/// alone): a changing function called once per row of the rest of the statement. Arguments
/// that are literals or `$n` stay as they are; the others become the text columns of the row
/// query, which is the statement with its select list replaced by them. `$n` parameters in the
/// row query are refused.
fn call_over_rows(q: &sqlparser::ast::Query) -> Result<Option<RawCall>> {
    let SetExpr::Select(s) = q.body.as_ref() else {
        return Ok(None);
    };
    let (expr, alias) = match s.projection.as_slice() {
        [SelectItem::UnnamedExpr(e)] => (e, None),
        [SelectItem::ExprWithAlias { expr, alias }] => (expr, Some(fold_ident(alias))),
        _ => return Ok(None),
    };
    let Expr::Function(f) = expr else {
        return Ok(None);
    };
    let Some(function) = changing_function(&f.name) else {
        return Ok(None);
    };
    let plain = s.from.is_empty()
        && s.selection.is_none()
        && q.with.is_none()
        && q.order_by.is_none()
        && q.limit_clause.is_none()
        && q.fetch.is_none()
        && q.locks.is_empty()
        && s.distinct.is_none()
        && s.having.is_none()
        && matches!(&s.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if plain || s.into.is_some() {
        return Ok(None);
    }
    let FunctionArguments::List(list) = &f.args else {
        return Err(unsupported_arg(&f.name.to_string()));
    };
    if f.filter.is_some()
        || f.over.is_some()
        || !f.within_group.is_empty()
        || list.duplicate_treatment.is_some()
        || !list.clauses.is_empty()
    {
        return Err(unsupported_arg(&f.name.to_string()));
    }
    let mut args = Vec::new();
    let mut columns: Vec<SelectItem> = Vec::new();
    for a in &list.args {
        let (name, e) = match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => (None, e),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                operator: FunctionArgOperator::RightArrow | FunctionArgOperator::Assignment,
            } => (Some(fold_ident(name)), e),
            FunctionArg::ExprNamed {
                name: Expr::Identifier(name),
                arg: FunctionArgExpr::Expr(e),
                operator: FunctionArgOperator::RightArrow | FunctionArgOperator::Assignment,
            } => (Some(fold_ident(name)), e),
            other => return Err(raw_arg(other).expect_err("not an argument")),
        };
        let value = match raw_value(e) {
            Ok(v) => v,
            Err(_) => {
                columns.push(SelectItem::UnnamedExpr(Expr::Cast {
                    kind: CastKind::DoubleColon,
                    expr: Box::new(Expr::Nested(Box::new(e.clone()))),
                    data_type: DataType::Text,
                    format: None,
                }));
                RawValue::Column(columns.len() - 1)
            }
        };
        args.push(RawArg { name, value });
    }
    if columns.is_empty() {
        // Every argument a literal: the row query only counts the calls.
        columns.push(SelectItem::UnnamedExpr(Expr::Value(
            Value::Null.with_empty_span(),
        )));
    }
    let mut rows = q.clone();
    if let SetExpr::Select(sel) = rows.body.as_mut() {
        sel.projection = columns;
    }
    let mut finder = PlaceholderFinder(false);
    let _ = rows.visit(&mut finder);
    if finder.0 {
        return Err(PlanError::FeatureNotSupported(format!(
            "a call of pgtrickle.{}() over the rows of a query cannot use $n parameters in              the query; bind them as arguments of the call, or send the query with literals",
            function.sql_name()
        )));
    }
    let column = alias.unwrap_or_else(|| function.sql_name().to_string());
    Ok(Some(RawCall {
        function,
        args,
        output: CallOutput::Scalar { column },
        rows: Some(rows.to_string()),
    }))
}

struct PlaceholderFinder(bool);

impl Visitor for PlaceholderFinder {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if let Expr::Value(v) = e {
            if matches!(v.value, Value::Placeholder(_)) {
                self.0 = true;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

fn function_args(f: &Function) -> Result<Vec<RawArg>> {
    if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
        return Err(unsupported_arg(&f.name.to_string()));
    }
    match &f.args {
        FunctionArguments::None => Ok(vec![]),
        FunctionArguments::List(l) => {
            if l.duplicate_treatment.is_some() || !l.clauses.is_empty() {
                return Err(unsupported_arg(&f.name.to_string()));
            }
            l.args.iter().map(raw_arg).collect()
        }
        FunctionArguments::Subquery(_) => Err(unsupported_arg(&f.name.to_string())),
    }
}

fn unsupported_arg(what: &str) -> PlanError {
    PlanError::FeatureNotSupported(format!(
        "arguments of {what} must be literals, NULL or $n parameters"
    ))
}

fn raw_arg(a: &FunctionArg) -> Result<RawArg> {
    match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(RawArg {
            name: None,
            value: raw_value(e)?,
        }),
        FunctionArg::Named {
            name,
            arg: FunctionArgExpr::Expr(e),
            operator: FunctionArgOperator::RightArrow | FunctionArgOperator::Assignment,
        } => Ok(RawArg {
            name: Some(fold_ident(name)),
            value: raw_value(e)?,
        }),
        FunctionArg::ExprNamed {
            name: Expr::Identifier(name),
            arg: FunctionArgExpr::Expr(e),
            operator: FunctionArgOperator::RightArrow | FunctionArgOperator::Assignment,
        } => Ok(RawArg {
            name: Some(fold_ident(name)),
            value: raw_value(e)?,
        }),
        other => Err(PlanError::Syntax(format!(
            "syntax error at or near \"{other}\": arguments are written value, name => value \
             or name := value"
        ))),
    }
}

fn raw_value(e: &Expr) -> Result<RawValue> {
    match e {
        Expr::Value(v) => literal(&v.value, e),
        Expr::Nested(inner) => raw_value(inner),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match raw_value(expr)? {
            RawValue::Typed(ty @ (ParamType::Int | ParamType::Float), n) => {
                Ok(RawValue::Typed(ty, format!("-{n}")))
            }
            _ => Err(unsupported_arg(&e.to_string())),
        },
        Expr::Cast {
            kind: CastKind::DoubleColon | CastKind::Cast,
            expr,
            data_type,
            ..
        } => {
            let ty = cast_type(data_type).ok_or_else(|| unsupported_arg(&e.to_string()))?;
            match raw_value(expr)? {
                RawValue::Unknown(s) | RawValue::Typed(_, s) => Ok(RawValue::Typed(ty, s)),
                RawValue::Null => Ok(RawValue::Null),
                RawValue::Param(n) => Ok(RawValue::Param(n)),
                RawValue::Column(i) => Ok(RawValue::Column(i)),
            }
        }
        _ => Err(unsupported_arg(&e.to_string())),
    }
}

fn cast_type(t: &DataType) -> Option<ParamType> {
    match t {
        DataType::Text
        | DataType::Varchar(_)
        | DataType::CharacterVarying(_)
        | DataType::String(_) => Some(ParamType::Text),
        DataType::Boolean | DataType::Bool => Some(ParamType::Bool),
        DataType::Int(_) | DataType::Integer(_) | DataType::BigInt(_) | DataType::SmallInt(_) => {
            Some(ParamType::Int)
        }
        DataType::Float(_)
        | DataType::Float8
        | DataType::Float4
        | DataType::Real
        | DataType::Double(_)
        | DataType::DoublePrecision
        | DataType::Numeric(_)
        | DataType::Decimal(_) => Some(ParamType::Float),
        DataType::Custom(n, _) => match fold_name(n)?.last()?.as_str() {
            "text" | "varchar" | "name" | "regclass" => Some(ParamType::Text),
            "bool" => Some(ParamType::Bool),
            "int2" | "int4" | "int8" => Some(ParamType::Int),
            "float4" | "float8" | "numeric" => Some(ParamType::Float),
            _ => None,
        },
        _ => None,
    }
}

fn literal(v: &Value, e: &Expr) -> Result<RawValue> {
    Ok(match v {
        Value::SingleQuotedString(s)
        | Value::EscapedStringLiteral(s)
        | Value::UnicodeStringLiteral(s)
        | Value::NationalStringLiteral(s) => RawValue::Unknown(s.clone()),
        Value::DollarQuotedString(d) => RawValue::Unknown(d.value.clone()),
        Value::Number(n, _) => {
            if n.parse::<i64>().is_ok() {
                RawValue::Typed(ParamType::Int, n.clone())
            } else {
                // A numeric constant: PostgreSQL casts it implicitly to double precision.
                RawValue::Typed(ParamType::Float, n.clone())
            }
        }
        Value::Boolean(b) => RawValue::Typed(ParamType::Bool, b.to_string()),
        Value::Null => RawValue::Null,
        Value::Placeholder(p) => {
            let n = p
                .strip_prefix('$')
                .and_then(|d| d.parse::<usize>().ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| unsupported_arg(&e.to_string()))?;
            RawValue::Param(n)
        }
        _ => return Err(unsupported_arg(&e.to_string())),
    })
}
