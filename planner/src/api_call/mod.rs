//! Recognising and binding calls of the `pgtrickle.*` SQL API: from statement text to a typed
//! [`ApiRequest`], through [`parse_api_call`] and [`ParsedApiCall::bind`].

mod bind;
mod recognize;
mod script;
mod signature;
mod values;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use recognize::{fold_ident, fold_name, CallOutput, RawArg, RawValue};
pub use script::{parse_api_script, ScriptStatement};
pub use signature::{ApiFunction, Default as ParamDefault, Param, ParamType};
pub use values::{quote_ident, CdcMode, RefreshMode, StName, StStatus};

use crate::error::{PlanError, Result};
use crate::limits::{check_api_bounds, parse_bounded};
use crate::schedule::Schedule;

/// Which create function was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateKind {
    /// `create_stream_table`: error if it exists.
    Create,
    /// `create_stream_table_if_not_exists`: no-op if it exists.
    IfNotExists,
    /// `create_or_replace_stream_table`: replace the definition if it exists.
    OrReplace,
}

/// What to do after each successful refresh (`post_refresh_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostRefreshAction {
    /// Nothing (`'none'`).
    Nothing,
    /// `ANALYZE` the storage table (`'analyze'`).
    Analyze,
}

impl PostRefreshAction {
    /// The catalog's text form (None for nothing).
    pub fn catalog_text(self) -> Option<&'static str> {
        match self {
            PostRefreshAction::Nothing => None,
            PostRefreshAction::Analyze => Some("analyze"),
        }
    }
}

/// The settings of pg_trickle's longer parameter lists that the proxy keeps (None: unchanged
/// for alter; the default for create), and the NOTICEs for parameters accepted without effect.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StOptions {
    /// `append_only` (kept and shown; the proxy's DIFFERENTIAL refresh needs no fast path).
    pub append_only: Option<bool>,
    /// `max_delta_fraction`: this stream table's AUTO threshold (None: the proxy's
    /// `--auto-full-threshold`).
    pub max_delta_fraction: Option<f64>,
    /// `post_refresh_action`.
    pub post_refresh_action: Option<PostRefreshAction>,
    /// NOTICEs to send: parameters given that have no effect behind the proxy, and why.
    pub notices: Vec<String>,
}

/// `create_stream_table` and its variants, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateStreamTable {
    /// Which variant.
    pub kind: CreateKind,
    /// The stream table's name.
    pub name: StName,
    /// The defining query.
    pub query: String,
    /// Default `calculated`.
    pub schedule: Schedule,
    /// Default `AUTO`.
    pub refresh_mode: RefreshMode,
    /// Default true: populate at creation.
    pub initialize: bool,
    /// Default NULL (None): the server-wide setting.
    pub cdc_mode: Option<CdcMode>,
    /// pg_trickle's other parameters, as far as the proxy keeps them.
    pub options: StOptions,
}

/// `alter_stream_table`: every None is "unchanged".
#[derive(Debug, Clone, PartialEq)]
pub struct AlterStreamTable {
    /// The stream table's name.
    pub name: StName,
    /// A new defining query.
    pub query: Option<String>,
    /// A new schedule.
    pub schedule: Option<Schedule>,
    /// A new refresh mode.
    pub refresh_mode: Option<RefreshMode>,
    /// Suspend or activate.
    pub status: Option<StStatus>,
    /// A new CDC mode.
    pub cdc_mode: Option<CdcMode>,
    /// pg_trickle's other parameters, as far as the proxy keeps them (None: unchanged).
    pub options: StOptions,
}

/// A fully bound API call.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiRequest {
    /// `create_stream_table`, `create_stream_table_if_not_exists`,
    /// `create_or_replace_stream_table`
    Create(CreateStreamTable),
    /// `alter_stream_table`
    Alter(AlterStreamTable),
    /// `drop_stream_table(name, cascade DEFAULT false)`
    Drop {
        /// The stream table.
        name: StName,
        /// Also drop stream tables reading this one.
        cascade: bool,
    },
    /// `refresh_stream_table(name)`
    Refresh {
        /// The stream table.
        name: StName,
    },
    /// `resume_stream_table(name)`
    Resume {
        /// The stream table.
        name: StName,
    },
    /// `pause_stream_table(name)`: an ACTIVE stream table becomes SUSPENDED.
    Pause {
        /// The stream table.
        name: StName,
    },
    /// `pgt_status()`
    Status,
    /// `explain_st(name)`
    Explain {
        /// The stream table.
        name: StName,
    },
    /// `get_refresh_history(name, max_rows DEFAULT 20)`
    RefreshHistory {
        /// The stream table.
        name: StName,
        /// How many rows at most.
        max_rows: i64,
    },
    /// A call over the rows of a query: the query first, then the call for each row, in
    /// order, all in one transaction.
    ForEachRow(Box<RowCalls>),
}

/// A call made once per row of a query (`SELECT pgtrickle.drop_stream_table(pgt_name) FROM
/// pgtrickle.pgt_stream_tables WHERE ...`).
#[derive(Debug, Clone, PartialEq)]
pub struct RowCalls {
    /// The query yielding the arguments (text columns).
    pub query: String,
    call: ParsedApiCall,
    params: Vec<Option<String>>,
    limits: ApiLimits,
}

impl RowCalls {
    /// Which function is called.
    pub fn function(&self) -> ApiFunction {
        self.call.function
    }

    /// The request for one row of the query (its columns as text, None for NULL).
    pub fn request(&self, row: &[Option<String>]) -> Result<ApiRequest> {
        bind::to_request(
            self.call.function,
            &self.call.slots,
            &self.params,
            row,
            self.limits.min_schedule,
        )
    }
}

/// Limits applied while binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// The shortest duration schedule accepted (pg_trickle's `min_schedule_seconds`, default 1s).
    pub min_schedule: Duration,
}

impl std::default::Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            min_schedule: Duration::from_secs(1),
        }
    }
}

/// A recognised API call whose arguments are matched to parameters, possibly still waiting for
/// `$n` values (extended protocol: Parse now, Bind later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedApiCall {
    function: ApiFunction,
    slots: Vec<Option<RawValue>>,
    output: CallOutput,
    rows: Option<String>,
}

impl ParsedApiCall {
    /// Which function is called.
    pub fn function(&self) -> ApiFunction {
        self.function
    }

    /// How the statement presents the result (one named column, or the function's rows).
    pub fn output(&self) -> &CallOutput {
        &self.output
    }

    /// The `$n` parameter numbers the call uses, ascending, without repeats. The statement's
    /// parameter count for Describe is the largest of them.
    pub fn params(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .slots
            .iter()
            .filter_map(|s| match s {
                Some(RawValue::Param(n)) => Some(*n),
                _ => None,
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The declared type of `$n`, for ParameterDescription (text when unused).
    pub fn param_type(&self, n: usize) -> ParamType {
        self.function
            .params()
            .iter()
            .zip(&self.slots)
            .find(|(_, s)| **s == Some(RawValue::Param(n)))
            .map(|(p, _)| p.ty)
            .unwrap_or(ParamType::Text)
    }

    /// Binds `$1..$n` from their text values (None is SQL NULL) and validates every argument.
    /// A call over the rows of a query binds its literal arguments for every row: the
    /// request is [`ApiRequest::ForEachRow`].
    pub fn bind(&self, params: &[Option<String>], limits: &ApiLimits) -> Result<ApiRequest> {
        if let Some(query) = &self.rows {
            // Check `$n` against the Bind now, as PostgreSQL would.
            for n in self.params() {
                if n > params.len() {
                    return Err(PlanError::ProtocolViolation(format!(
                        "bind message supplies {} parameters, but the statement requires ${n}",
                        params.len()
                    )));
                }
            }
            return Ok(ApiRequest::ForEachRow(Box::new(RowCalls {
                query: query.clone(),
                call: self.clone(),
                params: params.to_vec(),
                limits: *limits,
            })));
        }
        bind::to_request(self.function, &self.slots, params, &[], limits.min_schedule)
    }

    /// Validates a call without parameters (simple protocol). Same as `bind(&[], limits)`.
    pub fn request(&self, limits: &ApiLimits) -> Result<ApiRequest> {
        self.bind(&[], limits)
    }
}

/// Recognises a statement that calls the pgtrickle API: `SELECT pgtrickle.f(...) [AS x]` or
/// `SELECT * FROM pgtrickle.f(...)`, with PostgreSQL's name folding, named (`=>`, `:=`),
/// positional and mixed arguments, every string literal form and `$n` parameters.
///
/// Ok(None) for statements that do not call the API, and for text this parser cannot parse
/// (forward those unchanged: PostgreSQL will judge them). Errors for calls of unknown pgtrickle
/// functions, bad argument lists, and calls in positions the proxy cannot answer.
///
/// A statement that calls a function that changes things but is larger or more deeply nested
/// than [`crate::limits`] allows is an error (54000, 54001); any other statement over those
/// limits is Ok(None), for the server to judge.
pub fn parse_api_call(sql: &str) -> Result<Option<ParsedApiCall>> {
    let scan = crate::prefilter::scan_api_calls(sql.as_bytes());
    if !scan.calls_api {
        return Ok(None);
    }
    const WHAT: &str = "pgtrickle API statement";
    if let Err(e) = check_api_bounds(sql, WHAT) {
        return if scan.calls_changing {
            Err(e)
        } else {
            Ok(None)
        };
    }
    let statements = match parse_bounded(sql, WHAT) {
        Ok(statements) => statements,
        Err(Err(e)) if scan.calls_changing => return Err(e),
        Err(_) => return Ok(None),
    };
    let mut found = None;
    for stmt in &statements {
        if let Some(call) = recognize::find_call(stmt)? {
            if statements.len() > 1 {
                return Err(PlanError::FeatureNotSupported(format!(
                    "pgtrickle.{}() must be sent as a statement of its own, not in a \
                     multi-statement query string",
                    call.function.sql_name()
                )));
            }
            found = Some(call);
        }
    }
    let Some(call) = found else {
        return Ok(None);
    };
    let slots = bind::assign(call.function, &call.args)?;
    Ok(Some(ParsedApiCall {
        function: call.function,
        slots,
        output: call.output,
        rows: call.rows,
    }))
}
