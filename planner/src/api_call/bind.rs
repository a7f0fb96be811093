//! Matches raw arguments to a function's parameters (positional, named, mixed, defaults) and
//! converts bound values to typed API requests.

use std::time::Duration;

use super::recognize::{RawArg, RawValue};
use super::signature::{ApiFunction, Default, ParamType};
use super::values::{CdcMode, RefreshMode, StName, StStatus};
use super::{
    AlterStreamTable, ApiRequest, CreateKind, CreateStreamTable, PostRefreshAction, StOptions,
};
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
            if *ty != p.ty && !(*ty == ParamType::Int && p.ty == ParamType::Float) {
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

fn resolve(
    slot: &Option<RawValue>,
    default: Default,
    params: &[Option<String>],
    row: &[Option<String>],
) -> Result<Bound> {
    match slot {
        None => Ok(match default {
            Default::Required | Default::Null => None,
            Default::Text(t) => Some(t.to_string()),
            Default::Bool(b) => Some(b.to_string()),
            Default::Int(i) => Some(i.to_string()),
            Default::Float(f) => Some(f.to_string()),
        }),
        Some(RawValue::Null) => Ok(None),
        Some(RawValue::Unknown(s)) | Some(RawValue::Typed(_, s)) => Ok(Some(s.clone())),
        Some(RawValue::Column(i)) => Ok(row.get(*i).cloned().flatten()),
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

fn parse_float(param: &str, s: &str) -> Result<f64> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|f| !f.is_nan())
        .ok_or_else(|| {
            PlanError::InvalidTextRepresentation(format!(
                "invalid input syntax for type double precision: \"{s}\" (argument \"{param}\")"
            ))
        })
}

fn invalid(message: String) -> PlanError {
    PlanError::InvalidParameterValue(message)
}

fn refused(message: String, hint: &str) -> PlanError {
    PlanError::FeatureNotSupported(format!("{message}; {hint}"))
}

/// The bound arguments of one call, by parameter name.
struct Args<'a> {
    function: ApiFunction,
    names: Vec<&'static str>,
    vals: Vec<Bound>,
    min_schedule: Duration,
    _p: std::marker::PhantomData<&'a ()>,
}

impl Args<'_> {
    fn get(&self, name: &str) -> Bound {
        self.names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| self.vals[i].clone())
    }
    fn name(&self) -> Result<StName> {
        StName::parse(&required(self.function, "name", self.get("name"))?)
    }
    fn flag(&self, name: &str) -> Result<Option<bool>> {
        self.get(name).map(|b| parse_bool(name, &b)).transpose()
    }
    fn float(&self, name: &str) -> Result<Option<f64>> {
        self.get(name).map(|b| parse_float(name, &b)).transpose()
    }
    fn schedule(&self) -> Result<Option<Schedule>> {
        self.get("schedule")
            .map(|s| parse_schedule(&s, self.min_schedule))
            .transpose()
    }
    fn refresh_mode(&self) -> Result<Option<RefreshMode>> {
        self.get("refresh_mode")
            .map(|m| RefreshMode::parse(&m))
            .transpose()
    }
    fn cdc_mode(&self) -> Result<Option<CdcMode>> {
        self.get("cdc_mode").map(|c| CdcMode::parse(&c)).transpose()
    }

    /// pg_trickle's parameters beyond the proxy's core ones: each implemented, accepted with a
    /// NOTICE saying it has no effect behind the proxy, or refused (0A000) naming the
    /// alternative (docs/COMPATIBILITY.md lists the decisions). `mode` is the refresh mode the
    /// call asks for, if any.
    fn options(&self, mode: Option<RefreshMode>) -> Result<StOptions> {
        let f = self.function.sql_name();
        let mut o = StOptions::default();
        let mut no_effect = |param: &str, why: &str| {
            o.notices.push(format!(
                "pgtrickle.{f}: {param} has no effect behind pgtrickle-proxy: {why}"
            ));
        };
        let has = |name: &str| self.names.contains(&name);
        if let Some(v) = self.get("diamond_consistency") {
            match v.trim().to_ascii_lowercase().as_str() {
                "atomic" | "none" => no_effect(
                    "diamond_consistency",
                    "stream tables over stream tables refresh in dependency order, each in a \
                     transaction of its own, and every refresh reads one consistent snapshot",
                ),
                _ => {
                    return Err(invalid(format!(
                        "invalid value for diamond_consistency: \"{v}\" (expected 'atomic' or \
                         'none')"
                    )))
                }
            }
        }
        if let Some(v) = self.get("diamond_schedule_policy") {
            match v.trim().to_ascii_lowercase().as_str() {
                "fastest" | "slowest" => no_effect(
                    "diamond_schedule_policy",
                    "each stream table refreshes on its own schedule, after the stream tables \
                     it reads",
                ),
                _ => {
                    return Err(invalid(format!(
                        "invalid value for diamond_schedule_policy: \"{v}\" (expected \
                         'fastest' or 'slowest')"
                    )))
                }
            }
        }
        if has("append_only") {
            o.append_only = self.flag("append_only")?;
            if o.append_only == Some(true) {
                if matches!(mode, Some(RefreshMode::Full | RefreshMode::Immediate)) {
                    return Err(invalid(
                        "append_only => true is not compatible with refresh_mode FULL or \
                         IMMEDIATE"
                            .into(),
                    ));
                }
                no_effect(
                    "append_only",
                    "it is recorded, but a DIFFERENTIAL refresh already applies only the \
                     captured changes, and applies deletes when they occur",
                );
            }
        }
        if self.flag("pooler_compatibility_mode")? == Some(true) {
            no_effect(
                "pooler_compatibility_mode",
                "refreshes never use PREPARE/EXECUTE nor NOTIFY",
            );
        }
        if self.get("partition_by").is_some() {
            return Err(refused(
                "partition_by is not supported behind pgtrickle-proxy: the storage table is \
                 a plain table"
                    .into(),
                "omit partition_by (partitioned tables may be sources)",
            ));
        }
        if let Some(v) = self.get("max_differential_joins") {
            parse_int("max_differential_joins", &v)?;
            no_effect(
                "max_differential_joins",
                "the proxy's differential statements have no cap on join combinations",
            );
        }
        if let Some(v) = self.float("max_delta_fraction")? {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(format!(
                    "max_delta_fraction must be between 0.0 and 1.0, got {v}"
                )));
            }
            o.max_delta_fraction = Some(v);
        }
        if self.get("output_distribution_column").is_some() {
            return Err(refused(
                "output_distribution_column is not supported behind pgtrickle-proxy: it \
                 distributes the storage table with Citus"
                    .into(),
                "omit it, or distribute the storage table yourself",
            ));
        }
        if self.flag("temporal")? == Some(true) {
            return Err(refused(
                "temporal => true is not supported behind pgtrickle-proxy".into(),
                "keep effective-time columns in the query and filter them when reading",
            ));
        }
        if self.get("storage_backend").is_some() {
            return Err(refused(
                "storage_backend is not supported behind pgtrickle-proxy: the storage table is \
                 a heap table"
                    .into(),
                "omit storage_backend",
            ));
        }
        if self.get("sink").is_some() {
            return Err(refused(
                "sink is not supported behind pgtrickle-proxy".into(),
                "read the stream table, or publish it with logical replication",
            ));
        }
        if let Some(v) = self.get("tier") {
            match v.trim().to_ascii_lowercase().as_str() {
                "hot" | "warm" | "cold" | "frozen" => no_effect(
                    "tier",
                    "there is no tiered scheduling (as pg_trickle without \
                     pg_trickle.tiered_scheduling); use schedule, or status => 'SUSPENDED' \
                     to stop refreshes",
                ),
                _ => {
                    return Err(invalid(format!(
                        "invalid value for tier: \"{v}\" (expected 'hot', 'warm', 'cold' or \
                         'frozen')"
                    )))
                }
            }
        }
        if let Some(v) = self.get("fuse") {
            match v.trim().to_ascii_lowercase().as_str() {
                "off" => {}
                "on" | "auto" => {
                    return Err(refused(
                        format!("fuse => '{v}' is not supported behind pgtrickle-proxy: there is no circuit breaker"),
                        "use refresh_mode => 'AUTO' with max_delta_fraction to refresh FULL \
                         when too much changed",
                    ))
                }
                _ => {
                    return Err(invalid(format!(
                        "invalid value for fuse: \"{v}\" (expected 'off', 'on' or 'auto')"
                    )))
                }
            }
        }
        for p in ["fuse_ceiling", "fuse_sensitivity"] {
            if let Some(v) = self.get(p) {
                parse_int(p, &v)?;
                no_effect(p, "there is no circuit breaker (fuse)");
            }
        }
        if let Some(v) = self.get("post_refresh_action") {
            o.post_refresh_action =
                Some(match v.trim().to_ascii_lowercase().as_str() {
                    "analyze" => PostRefreshAction::Analyze,
                    "none" => PostRefreshAction::Nothing,
                    "reindex" => return Err(refused(
                        "post_refresh_action => 'reindex' is not supported behind \
                         pgtrickle-proxy: it cannot measure index drift"
                            .into(),
                        "use post_refresh_action => 'analyze', and REINDEX from a scheduled job",
                    )),
                    _ => {
                        return Err(invalid(format!(
                            "invalid value for post_refresh_action: \"{v}\" (expected 'analyze', \
                         'reindex' or 'none')"
                        )))
                    }
                });
        }
        if self.float("reindex_drift_threshold")?.is_some() {
            no_effect(
                "reindex_drift_threshold",
                "post_refresh_action => 'reindex' is not supported",
            );
        }
        Ok(o)
    }

    fn create(
        &self,
        kind: CreateKind,
        schedule: Option<Schedule>,
        refresh_mode: Option<RefreshMode>,
    ) -> Result<CreateStreamTable> {
        let name = self.name()?;
        let query = required(self.function, "query", self.get("query"))?;
        let schedule = match schedule {
            Some(s) => s,
            None => self.schedule()?.unwrap_or(Schedule::Calculated),
        };
        let refresh_mode = match refresh_mode {
            Some(m) => m,
            None => self.refresh_mode()?.unwrap_or(RefreshMode::Auto),
        };
        let initialize = self.flag("initialize")?.unwrap_or(true);
        let cdc_mode = self.cdc_mode()?;
        let mut options = self.options(Some(refresh_mode))?;
        options.append_only.get_or_insert(false);
        Ok(CreateStreamTable {
            kind,
            name,
            query,
            schedule,
            refresh_mode,
            initialize,
            cdc_mode,
            options,
        })
    }
}

/// Converts filled slots into a typed request.
pub fn to_request(
    function: ApiFunction,
    slots: &[Option<RawValue>],
    params: &[Option<String>],
    row: &[Option<String>],
    min_schedule: Duration,
) -> Result<ApiRequest> {
    let decl = function.params();
    let mut vals: Vec<Bound> = Vec::with_capacity(decl.len());
    for (p, s) in decl.iter().zip(slots) {
        let v = resolve(s, p.default, params, row)?;
        // Type-check text of bound parameters now (a typed literal was checked in `assign`).
        if let Some(text) = &v {
            match p.ty {
                ParamType::Bool => {
                    parse_bool(p.name, text)?;
                }
                ParamType::Int => {
                    parse_int(p.name, text)?;
                }
                ParamType::Float => {
                    parse_float(p.name, text)?;
                }
                ParamType::Text => {}
            }
        }
        vals.push(v);
    }
    let a = Args {
        function,
        names: decl.iter().map(|p| p.name).collect(),
        vals,
        min_schedule,
        _p: std::marker::PhantomData,
    };
    let dur = |text: &str| parse_schedule(text, min_schedule);
    Ok(match function {
        ApiFunction::CreateStreamTable => {
            ApiRequest::Create(a.create(CreateKind::Create, None, None)?)
        }
        ApiFunction::CreateStreamTableIfNotExists => {
            ApiRequest::Create(a.create(CreateKind::IfNotExists, None, None)?)
        }
        ApiFunction::CreateOrReplaceStreamTable => {
            ApiRequest::Create(a.create(CreateKind::OrReplace, None, None)?)
        }
        ApiFunction::CreateFastAppendOnly => {
            let mut c = a.create(CreateKind::Create, None, Some(RefreshMode::Differential))?;
            c.options.append_only = Some(true);
            ApiRequest::Create(c)
        }
        ApiFunction::CreateRealtime => ApiRequest::Create(a.create(
            CreateKind::Create,
            Some(dur("1s")?),
            Some(RefreshMode::Differential),
        )?),
        ApiFunction::CreateBatch => ApiRequest::Create(a.create(
            CreateKind::Create,
            Some(dur("5m")?),
            Some(RefreshMode::Auto),
        )?),
        ApiFunction::CreateCostOptimized => ApiRequest::Create(a.create(
            CreateKind::Create,
            Some(dur("15m")?),
            Some(RefreshMode::Auto),
        )?),
        ApiFunction::AlterStreamTable => {
            let refresh_mode = a.refresh_mode()?;
            ApiRequest::Alter(AlterStreamTable {
                name: a.name()?,
                query: a.get("query"),
                schedule: a.schedule()?,
                refresh_mode,
                status: a.get("status").map(|s| StStatus::parse(&s)).transpose()?,
                cdc_mode: a.cdc_mode()?,
                options: a.options(refresh_mode)?,
            })
        }
        ApiFunction::SetRefreshPolicy => {
            let mode =
                RefreshMode::parse(&required(function, "refresh_mode", a.get("refresh_mode"))?)?;
            if mode == RefreshMode::Immediate {
                return Err(invalid(
                    "invalid refresh_mode for set_stream_table_refresh_policy: 'IMMEDIATE' \
                     (expected 'DIFFERENTIAL', 'FULL' or 'AUTO'); use alter_stream_table"
                        .into(),
                ));
            }
            ApiRequest::Alter(AlterStreamTable {
                name: a.name()?,
                query: None,
                schedule: None,
                refresh_mode: Some(mode),
                status: None,
                cdc_mode: None,
                options: StOptions::default(),
            })
        }
        ApiFunction::DropStreamTable => ApiRequest::Drop {
            name: a.name()?,
            cascade: a.flag("cascade")?.unwrap_or(false),
        },
        ApiFunction::RefreshStreamTable => ApiRequest::Refresh { name: a.name()? },
        ApiFunction::ResumeStreamTable => ApiRequest::Resume { name: a.name()? },
        ApiFunction::PauseStreamTable => ApiRequest::Pause { name: a.name()? },
        ApiFunction::PgtStatus => ApiRequest::Status,
        ApiFunction::ExplainSt => ApiRequest::Explain { name: a.name()? },
        ApiFunction::GetRefreshHistory => {
            let name = a.name()?;
            let max_rows = match a.get("max_rows") {
                Some(n) => parse_int("max_rows", &n)?,
                None => 20,
            };
            ApiRequest::RefreshHistory { name, max_rows }
        }
    })
}
