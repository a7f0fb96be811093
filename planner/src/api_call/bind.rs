//! Matches raw arguments to a function's parameters (positional, named, mixed, defaults) and
//! converts bound values to typed API requests.

use std::time::Duration;

use super::recognize::{RawArg, RawValue};
use super::signature::{ApiFunction, Default, ParamType};
use super::values::{CdcMode, RefreshMode, StName, StStatus};
use super::{AlterStreamTable, ApiRequest, CreateKind, CreateStreamTable};
use crate::error::{PlanError, Result};
use crate::schedule::{parse_schedule, Schedule};

/// Puts each argument in its parameter's slot; None slots take the default.
pub fn assign(function: ApiFunction, args: &[RawArg]) -> Result<Vec<Option<RawValue>>> {
    let params = function.params();
    let mut slots: Vec<Option<RawValue>> = vec![None; params.len()];
    let mut seen_named = false;
    let signature = || {
        let list: Vec<String> = params
            .iter()
            .map(|p| format!("{} {}", p.name, p.ty.sql_name()))
            .collect();
        format!("pgtrickle.{}({})", function.sql_name(), list.join(", "))
    };
    for (i, a) in args.iter().enumerate() {
        match &a.name {
            None => {
                if seen_named {
                    return Err(PlanError::Syntax(
                        "positional argument cannot follow named argument".into(),
                    ));
                }
                if i >= params.len() {
                    return Err(PlanError::UndefinedFunction(format!(
                        "function pgtrickle.{} takes at most {} arguments, {} given; \
                         signature: {}",
                        function.sql_name(),
                        params.len(),
                        args.len(),
                        signature()
                    )));
                }
                slots[i] = Some(a.value.clone());
            }
            Some(name) => {
                seen_named = true;
                let Some(idx) = params.iter().position(|p| p.name == name) else {
                    return Err(PlanError::UndefinedFunction(format!(
                        "function pgtrickle.{} has no parameter named \"{name}\"; signature: {}",
                        function.sql_name(),
                        signature()
                    )));
                };
                if slots[idx].is_some() {
                    return Err(PlanError::Syntax(format!(
                        "argument name \"{name}\" used more than once"
                    )));
                }
                slots[idx] = Some(a.value.clone());
            }
        }
    }
    for (p, s) in params.iter().zip(&slots) {
        if s.is_none() && p.default == Default::Required {
            return Err(PlanError::UndefinedFunction(format!(
                "function pgtrickle.{} requires argument \"{}\"; signature: {}",
                function.sql_name(),
                p.name,
                signature()
            )));
        }
    }
    for (p, s) in params.iter().zip(&slots) {
        if let Some(RawValue::Typed(ty, v)) = s {
            // PostgreSQL has no implicit cast between these types: no function matches.
            if *ty != p.ty {
                return Err(PlanError::UndefinedFunction(format!(
                    "argument \"{}\" of pgtrickle.{} must be of type {}, got {} value {v}",
                    p.name,
                    function.sql_name(),
                    p.ty.sql_name(),
                    ty.sql_name()
                )));
            }
        }
    }
    Ok(slots)
}

/// A parameter's value after binding: text (to be parsed per type) or NULL.
type Bound = Option<String>;

fn resolve(slot: &Option<RawValue>, default: Default, params: &[Option<String>]) -> Result<Bound> {
    match slot {
        None => Ok(match default {
            Default::Required | Default::Null => None,
            Default::Text(t) => Some(t.to_string()),
            Default::Bool(b) => Some(b.to_string()),
            Default::Int(i) => Some(i.to_string()),
        }),
        Some(RawValue::Null) => Ok(None),
        Some(RawValue::Unknown(s)) | Some(RawValue::Typed(_, s)) => Ok(Some(s.clone())),
        Some(RawValue::Param(n)) => match params.get(n - 1) {
            Some(v) => Ok(v.clone()),
            None => Err(PlanError::ProtocolViolation(format!(
                "bind message supplies {} parameters, but the statement requires ${n}",
                params.len()
            ))),
        },
    }
}

fn parse_bool(param: &str, s: &str) -> Result<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Ok(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Ok(false),
        _ => Err(PlanError::InvalidTextRepresentation(format!(
            "invalid input syntax for type boolean: \"{s}\" (argument \"{param}\")"
        ))),
    }
}

fn parse_int(param: &str, s: &str) -> Result<i64> {
    s.trim().parse::<i64>().map_err(|_| {
        PlanError::InvalidTextRepresentation(format!(
            "invalid input syntax for type integer: \"{s}\" (argument \"{param}\")"
        ))
    })
}

fn required(function: ApiFunction, param: &str, v: Bound) -> Result<String> {
    v.ok_or_else(|| {
        PlanError::NullValueNotAllowed(format!(
            "argument \"{param}\" of pgtrickle.{} must not be NULL",
            function.sql_name()
        ))
    })
}

/// Converts filled slots into a typed request.
pub fn to_request(
    function: ApiFunction,
    slots: &[Option<RawValue>],
    params: &[Option<String>],
    min_schedule: Duration,
) -> Result<ApiRequest> {
    let decl = function.params();
    let mut vals: Vec<Bound> = Vec::with_capacity(decl.len());
    for (p, s) in decl.iter().zip(slots) {
        let v = resolve(s, p.default, params)?;
        // Type-check text of bound parameters now (a typed literal was checked in `assign`).
        if let Some(text) = &v {
            match p.ty {
                ParamType::Bool => {
                    parse_bool(p.name, text)?;
                }
                ParamType::Int => {
                    parse_int(p.name, text)?;
                }
                ParamType::Text => {}
            }
        }
        vals.push(v);
    }
    let mut it = vals.into_iter();
    let mut next = || it.next().flatten();
    let name = |v: Bound| -> Result<StName> { StName::parse(&required(function, "name", v)?) };
    let sched = |v: String| parse_schedule(&v, min_schedule);
    Ok(match function {
        ApiFunction::CreateStreamTable
        | ApiFunction::CreateStreamTableIfNotExists
        | ApiFunction::CreateOrReplaceStreamTable => {
            let name = name(next())?;
            let query = required(function, "query", next())?;
            let schedule: Schedule = match next() {
                Some(s) => sched(s)?,
                None => Schedule::Calculated,
            };
            let refresh_mode = match next() {
                Some(m) => RefreshMode::parse(&m)?,
                None => RefreshMode::Auto,
            };
            let initialize = match next() {
                Some(b) => parse_bool("initialize", &b)?,
                None => true,
            };
            let cdc_mode = next().map(|c| CdcMode::parse(&c)).transpose()?;
            let kind = match function {
                ApiFunction::CreateStreamTableIfNotExists => CreateKind::IfNotExists,
                ApiFunction::CreateOrReplaceStreamTable => CreateKind::OrReplace,
                _ => CreateKind::Create,
            };
            ApiRequest::Create(CreateStreamTable {
                kind,
                name,
                query,
                schedule,
                refresh_mode,
                initialize,
                cdc_mode,
            })
        }
        ApiFunction::AlterStreamTable => ApiRequest::Alter(AlterStreamTable {
            name: name(next())?,
            query: next(),
            schedule: next().map(sched).transpose()?,
            refresh_mode: next().map(|m| RefreshMode::parse(&m)).transpose()?,
            status: next().map(|s| StStatus::parse(&s)).transpose()?,
            cdc_mode: next().map(|c| CdcMode::parse(&c)).transpose()?,
        }),
        ApiFunction::DropStreamTable => ApiRequest::Drop {
            name: name(next())?,
            cascade: match next() {
                Some(b) => parse_bool("cascade", &b)?,
                None => false,
            },
        },
        ApiFunction::RefreshStreamTable => ApiRequest::Refresh {
            name: name(next())?,
        },
        ApiFunction::ResumeStreamTable => ApiRequest::Resume {
            name: name(next())?,
        },
        ApiFunction::PgtStatus => ApiRequest::Status,
        ApiFunction::ExplainSt => ApiRequest::Explain {
            name: name(next())?,
        },
        ApiFunction::GetRefreshHistory => {
            let name = name(next())?;
            let max_rows = match next() {
                Some(n) => parse_int("max_rows", &n)?,
                None => 20,
            };
            ApiRequest::RefreshHistory { name, max_rows }
        }
    })
}
