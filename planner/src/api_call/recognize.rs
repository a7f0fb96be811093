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

fn lookup(n: &ObjectName) -> Result<Option<ApiFunction>> {
    match pgtrickle_function_name(n) {
        None => Ok(None),
        Some(f) => ApiFunction::by_name(&f).map(Some).ok_or_else(|| {
            PlanError::UndefinedFunction(format!(
                "function pgtrickle.{f} does not exist; pgtrickle functions: {}",
                ApiFunction::ALL.map(|f| f.sql_name()).join(", ")
            ))
        }),
    }
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
            "pgtrickle.{f}() can only be called on its own, as SELECT pgtrickle.{f}(...) or \
             SELECT * FROM pgtrickle.{f}(...)"
        ))),
    }
}

struct CallFinder(Option<String>);

impl Visitor for CallFinder {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = e {
            if let Some(name) = pgtrickle_function_name(&f.name) {
                self.0 = Some(name);
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
            if let Some(n) = pgtrickle_function_name(name) {
                self.0 = Some(n);
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
            }))
        }
        _ => Ok(None),
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
            RawValue::Typed(ParamType::Int, n) => {
                Ok(RawValue::Typed(ParamType::Int, format!("-{n}")))
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
        DataType::Custom(n, _) => match fold_name(n)?.last()?.as_str() {
            "text" | "varchar" | "name" | "regclass" => Some(ParamType::Text),
            "bool" => Some(ParamType::Bool),
            "int2" | "int4" | "int8" => Some(ParamType::Int),
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
                return Err(PlanError::UndefinedFunction(format!(
                    "numeric value {n} matches no pgtrickle parameter type (integer expected)"
                )));
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
