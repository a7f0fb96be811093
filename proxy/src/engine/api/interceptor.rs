//! The engine's interceptor: finds pgtrickle API calls among a session's messages (a cheap
//! substring prefilter first, a real parse only for candidates) and turns the ones that change
//! things into [`ApiJob`]s, in the simple protocol (Query) and the extended protocol (Parse,
//! Bind, Describe, Execute, Close, Sync, with `$n` parameters bound at Bind). Read functions
//! (pgt_status, explain_st, get_refresh_history) are SQL functions in the database and are
//! forwarded.
//!
//! A query string of several statements with API calls among them becomes a [`ScriptJob`].
//!
//! Extended-protocol API calls are answered by the proxy (ParseComplete, BindComplete, the
//! call's row at Execute) at their place in any batch or pipeline: the pump first has the
//! server answer everything sent before them (see [`crate::session::pending`]); the messages
//! after them go to the server again. A batch the server or a call failed skips to its Sync,
//! which the server answers when it has part of the batch, the proxy otherwise.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pgtrickle_planner::api_call::{ApiFunction, CallOutput, ParamType};
use pgtrickle_planner::{
    parse_api_call, parse_api_script, scan_api_calls, ApiLimits, ApiRequest, ParsedApiCall,
    PlanError, ScriptStatement,
};
use tokio::sync::Notify;

use crate::engine::api::answer;
use crate::engine::api::job::{ApiJob, Protocol};
use crate::engine::api::parse_pool::ParsePool;
use crate::engine::api::script_job::{ScriptJob, Step};
use crate::engine::background::poll::Poller;
use crate::engine::background::registry::Schedulers;
use crate::metrics::ApiCalls;
use crate::protocol::bind::Bind;
use crate::protocol::bind_complete::BindComplete;
use crate::protocol::close::Close;
use crate::protocol::close_complete::CloseComplete;
use crate::protocol::describe::{Describe, Target};
use crate::protocol::error_response::ErrorResponse;
use crate::protocol::execute::Execute;
use crate::protocol::parameter_description::ParameterDescription;
use crate::protocol::parse::Parse;
use crate::protocol::parse_complete::ParseComplete;
use crate::protocol::query::Query;
use crate::protocol::row_description::{Column, RowDescription};
use crate::session::intercept::{Interceptor, InterceptorFactory, Verdict};
use crate::session::SessionState;

/// Makes an [`EngineInterceptor`] per session.
pub struct EngineInterceptorFactory {
    /// Limits applied to API arguments.
    pub limits: ApiLimits,
    /// Woken when a call changed stream tables or a session committed writes.
    pub on_change: Arc<Notify>,
    /// Polls foreign sources.
    pub poller: Arc<Poller>,
    /// The per-database schedulers.
    pub schedulers: Arc<Schedulers>,
    /// Where candidate statements are parsed.
    pub parse_pool: ParsePool,
    /// Counts API calls (`pgtrickle_api_calls_total`).
    pub api_calls: ApiCalls,
}

impl InterceptorFactory for EngineInterceptorFactory {
    fn for_session(&self) -> Box<dyn Interceptor> {
        Box::new(EngineInterceptor {
            limits: self.limits,
            on_change: Arc::clone(&self.on_change),
            poller: Arc::clone(&self.poller),
            schedulers: Arc::clone(&self.schedulers),
            parse_pool: self.parse_pool.clone(),
            api_calls: self.api_calls.clone(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            in_batch: false,
            failed: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// One session's interceptor.
pub struct EngineInterceptor {
    limits: ApiLimits,
    on_change: Arc<Notify>,
    poller: Arc<Poller>,
    schedulers: Arc<Schedulers>,
    parse_pool: ParsePool,
    api_calls: ApiCalls,
    /// Prepared statements that are API calls, by name.
    statements: HashMap<String, ParsedApiCall>,
    /// Portals bound to API statements, by name.
    portals: HashMap<String, (Result<ApiRequest, PlanError>, String)>,
    /// Answering an extended-protocol batch up to its Sync.
    in_batch: bool,
    /// The batch failed: skip to Sync.
    failed: Arc<AtomicBool>,
}

/// Statements up to this size are scanned for API calls on the session's own task; larger ones
/// on a parser thread.
const SCAN_IN_PLACE: usize = 64 * 1024;

/// The statement text of a held message (valid UTF-8, without its terminating NUL), kept as
/// a slice of the message's bytes so that it can go to a parser thread without a copy.
#[derive(Clone)]
struct Candidate {
    text: Bytes,
}

impl Candidate {
    /// `text`, decoded from `message`, as a slice of it.
    fn of(message: &Bytes, text: &str) -> Candidate {
        Candidate {
            text: message.slice_ref(text.as_bytes()),
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.text
    }

    fn text(&self) -> &str {
        std::str::from_utf8(self.bytes()).unwrap_or_default()
    }
}

/// What a parser thread made of a Query.
enum Parsed {
    Script(Result<Option<Vec<ScriptStatement>>, PlanError>),
    Call(Result<Option<ParsedApiCall>, PlanError>),
}

fn pool_error(e: crate::engine::api::parse_pool::ParsePoolError) -> PlanError {
    PlanError::Internal(format!("pgtrickle-proxy: {e}"))
}

/// The body of a whole message (the framer only hands over whole messages, header included).
fn body(message: &Bytes) -> &[u8] {
    message.get(5..).unwrap_or_default()
}

fn type_oid(t: ParamType) -> u32 {
    match t {
        ParamType::Bool => answer::oid::BOOL,
        ParamType::Int => answer::oid::INT4,
        _ => answer::oid::TEXT,
    }
}

fn column_of(call: &ParsedApiCall) -> String {
    match call.output() {
        CallOutput::Scalar { column } => column.clone(),
        CallOutput::Table => call.function().sql_name().to_string(),
    }
}

fn is_read_function(call: &ParsedApiCall) -> bool {
    matches!(
        call.function(),
        ApiFunction::PgtStatus | ApiFunction::ExplainSt | ApiFunction::GetRefreshHistory
    )
}

/// Decodes a Bind parameter of an API call (text format, or binary for text, bool and
/// integers) as text.
fn param_text(value: &[u8], binary: bool, ty: ParamType) -> Result<String, PlanError> {
    if !binary {
        return std::str::from_utf8(value).map(str::to_string).map_err(|_| {
            PlanError::InvalidTextRepresentation("parameter is not valid UTF-8".into())
        });
    }
    match (ty, value.len()) {
        (ParamType::Bool, 1) => Ok(if value[0] != 0 { "true" } else { "false" }.into()),
        (ParamType::Int, 4) => {
            Ok(i32::from_be_bytes([value[0], value[1], value[2], value[3]]).to_string())
        }
        (ParamType::Int, 8) => {
            Ok(i64::from_be_bytes(value.try_into().unwrap_or([0; 8])).to_string())
        }
        (_, _) => std::str::from_utf8(value).map(str::to_string).map_err(|_| {
            PlanError::InvalidTextRepresentation("binary parameter of an unsupported type".into())
        }),
    }
}

impl EngineInterceptor {
    fn job(
        &self,
        request: Result<ApiRequest, PlanError>,
        column: String,
        protocol: Protocol,
    ) -> Verdict {
        Verdict::Run(Box::new(self.api_job(request, column, protocol)))
    }

    fn api_job(
        &self,
        request: Result<ApiRequest, PlanError>,
        column: String,
        protocol: Protocol,
    ) -> ApiJob {
        ApiJob {
            request,
            column,
            on_change: Some(Arc::clone(&self.on_change)),
            protocol,
            poller: Arc::clone(&self.poller),
            schedulers: Arc::clone(&self.schedulers),
            api_calls: self.api_calls.clone(),
        }
    }

    async fn query(&mut self, message: Bytes) -> Verdict {
        // A query string without its NUL or not UTF-8 is the server's to refuse.
        let Some(query) = Query::decode(body(&message)) else {
            return Verdict::Forward(message);
        };
        let Some(candidate) = self.candidate(Candidate::of(&message, query.sql)).await else {
            return Verdict::Forward(message);
        };
        let parsed = self
            .parse_pool
            .run(move || {
                let sql = candidate.text();
                match parse_api_script(sql) {
                    Ok(None) => Parsed::Call(parse_api_call(sql)),
                    other => Parsed::Script(other),
                }
            })
            .await;
        match parsed {
            Ok(Parsed::Script(Ok(Some(statements)))) => self.script(statements),
            Ok(Parsed::Script(Err(e))) | Ok(Parsed::Call(Err(e))) => {
                self.job(Err(e), String::new(), Protocol::Simple)
            }
            Ok(Parsed::Script(Ok(None))) | Ok(Parsed::Call(Ok(None))) => Verdict::Forward(message),
            Ok(Parsed::Call(Ok(Some(call)))) if is_read_function(&call) => {
                Verdict::Forward(message)
            }
            Ok(Parsed::Call(Ok(Some(call)))) => {
                let request = call.request(&self.limits);
                self.job(request, column_of(&call), Protocol::Simple)
            }
            Err(e) => self.job(Err(pool_error(e)), String::new(), Protocol::Simple),
        }
    }

    /// The statement text of a Query or Parse message when it calls a pgtrickle function that
    /// changes things; None (forward it) otherwise. The lexical scan of a large text runs on a
    /// parser thread.
    async fn candidate(&self, candidate: Candidate) -> Option<Candidate> {
        if !pgtrickle_planner::may_contain_api_call(candidate.bytes()) {
            return None;
        }
        let calls = if candidate.bytes().len() <= SCAN_IN_PLACE {
            scan_api_calls(candidate.bytes()).calls_changing
        } else {
            let c = candidate.clone();
            self.parse_pool
                .run(move || scan_api_calls(c.bytes()).calls_changing)
                .await
                .unwrap_or(true)
        };
        calls.then_some(candidate)
    }

    /// A query string of several statements with API calls among them.
    fn script(&self, statements: Vec<ScriptStatement>) -> Verdict {
        let steps = statements
            .into_iter()
            .map(|statement| match statement {
                ScriptStatement::Sql(text) => Step::Sql(text),
                ScriptStatement::Call(call) => {
                    let column = call.as_ref().map(column_of).unwrap_or_default();
                    let request = call.and_then(|c| c.request(&self.limits));
                    Step::Call(Box::new(self.api_job(request, column, Protocol::Simple)))
                }
            })
            .collect();
        Verdict::Run(Box::new(ScriptJob {
            steps,
            on_change: Arc::clone(&self.on_change),
        }))
    }

    /// An error answered in the batch; the rest of the batch is skipped up to Sync.
    fn batch_error(&mut self, e: &PlanError) -> Verdict {
        self.failed.store(true, Ordering::Release);
        Verdict::Answer(ErrorResponse::error(e.sqlstate(), e.message()).encode())
    }

    async fn parse(&mut self, message: Bytes) -> Verdict {
        let Some(name) = Parse::statement_name(body(&message)) else {
            return Verdict::Forward(message);
        };
        let unnamed = name.is_empty();
        let name = name.to_string();
        // A query string without its NUL or not UTF-8 is the server's to refuse.
        let Some(parse) = Parse::decode(body(&message)) else {
            return self.forget_statement(unnamed, message);
        };
        let Some(candidate) = self.candidate(Candidate::of(&message, parse.query)).await else {
            return self.forget_statement(unnamed, message);
        };
        let parsed = self
            .parse_pool
            .run(move || parse_api_call(candidate.text()))
            .await
            .unwrap_or_else(|e| Err(pool_error(e)));
        match parsed {
            Ok(Some(call)) if !is_read_function(&call) => {
                self.in_batch = true;
                if self.failed.load(Ordering::Acquire) {
                    return Verdict::Answer(Bytes::new());
                }
                self.statements.insert(name, call);
                Verdict::Answer(ParseComplete::encode())
            }
            Err(e) => {
                self.in_batch = true;
                self.batch_error(&e)
            }
            _ => self.forget_statement(unnamed, message),
        }
    }

    /// A Parse of an ordinary statement: forwarded (see [`Self::not_api`]); when it goes to the
    /// server it replaces the unnamed statement, so an API call remembered under that name is
    /// forgotten (named statements cannot be redefined: the server refuses).
    fn forget_statement(&mut self, unnamed: bool, message: Bytes) -> Verdict {
        let verdict = self.not_api(message);
        if unnamed && matches!(verdict, Verdict::Forward(_)) {
            self.statements.remove("");
        }
        verdict
    }

    /// A message that is not an API call: forwarded, unless an API call of its batch failed
    /// (the batch then skips to Sync).
    fn not_api(&mut self, message: Bytes) -> Verdict {
        if self.in_batch && self.failed.load(Ordering::Acquire) {
            return Verdict::Answer(Bytes::new());
        }
        Verdict::Forward(message)
    }

    fn bind(&mut self, message: Bytes) -> Verdict {
        let Some((portal, stmt)) = Bind::target(body(&message)) else {
            return self.not_api(message);
        };
        let portal = portal.to_string();
        let Some(call) = self.statements.get(stmt) else {
            // An ordinary Bind replaces the unnamed portal (a named one cannot be redefined).
            let verdict = self.not_api(message);
            if portal.is_empty() && matches!(verdict, Verdict::Forward(_)) {
                self.portals.remove("");
            }
            return verdict;
        };
        self.in_batch = true;
        if self.failed.load(Ordering::Acquire) {
            return Verdict::Answer(Bytes::new());
        }
        let Some(bind) = Bind::decode(body(&message)) else {
            return self.batch_error(&PlanError::ProtocolViolation(
                "malformed Bind message".into(),
            ));
        };
        let params = call.params();
        let mut texts: Vec<Option<String>> = Vec::new();
        for (i, v) in bind.values.iter().enumerate() {
            let ty = params
                .get(i)
                .map(|&n| call.param_type(n))
                .unwrap_or(ParamType::Text);
            match v {
                None => texts.push(None),
                Some(v) => match param_text(v, bind.is_binary(i), ty) {
                    Ok(t) => texts.push(Some(t)),
                    Err(e) => return self.batch_error(&e),
                },
            }
        }
        let request = call.bind(&texts, &self.limits);
        let column = column_of(call);
        if let Err(e) = &request {
            let e = e.clone();
            return self.batch_error(&e);
        }
        self.portals.insert(portal, (request, column));
        Verdict::Answer(BindComplete::encode())
    }

    fn describe(&mut self, message: Bytes) -> Verdict {
        let Some(describe) = Describe::decode(body(&message)) else {
            return self.not_api(message);
        };
        let mut out = BytesMut::new();
        match describe.target {
            Target::Statement => {
                let Some(call) = self.statements.get(describe.name) else {
                    return self.not_api(message);
                };
                let types: Vec<u32> = call
                    .params()
                    .iter()
                    .map(|&n| type_oid(call.param_type(n)))
                    .collect();
                ParameterDescription::encode(&mut out, &types);
                RowDescription::encode(
                    &mut out,
                    &[Column::new(&column_of(call), answer::oid::VOID)],
                );
            }
            Target::Portal => {
                let Some((_, column)) = self.portals.get(describe.name) else {
                    return self.not_api(message);
                };
                RowDescription::encode(&mut out, &[Column::new(column, answer::oid::VOID)]);
            }
        }
        self.in_batch = true;
        if self.failed.load(Ordering::Acquire) {
            return Verdict::Answer(Bytes::new());
        }
        Verdict::Answer(out.freeze())
    }

    fn execute(&mut self, message: Bytes) -> Verdict {
        let Some(Execute { portal }) = Execute::decode(body(&message)) else {
            return self.not_api(message);
        };
        let Some((request, column)) = self.portals.get(portal).cloned() else {
            return self.not_api(message);
        };
        self.in_batch = true;
        if self.failed.load(Ordering::Acquire) {
            return Verdict::Answer(Bytes::new());
        }
        // An unnamed portal lasts until the end of the transaction; executing it again is a
        // no-op in PostgreSQL's terms for a function call, so drop it now.
        if portal.is_empty() {
            self.portals.remove(portal);
        }
        self.job(
            request,
            column,
            Protocol::Extended {
                failed: Arc::clone(&self.failed),
            },
        )
    }

    fn close(&mut self, message: Bytes) -> Verdict {
        let Some(close) = Close::decode(body(&message)) else {
            return self.not_api(message);
        };
        let removed = match close.target {
            Target::Statement => self.statements.remove(close.name).is_some(),
            Target::Portal => self.portals.remove(close.name).is_some(),
        };
        if !removed {
            return self.not_api(message);
        }
        self.in_batch = true;
        Verdict::Answer(CloseComplete::encode())
    }

    fn sync(&mut self, session: &SessionState, message: Bytes) -> Verdict {
        if !self.in_batch {
            return Verdict::Forward(message);
        }
        self.in_batch = false;
        self.failed.store(false, Ordering::Release);
        self.portals.remove("");
        // The server has part of this batch: its ReadyForQuery ends it.
        if session.unsynced() {
            return Verdict::Forward(message);
        }
        Verdict::Answer(Bytes::copy_from_slice(&session.tx_status().encode()))
    }
}

impl Interceptor for EngineInterceptor {
    fn wants(&self, tag: u8) -> bool {
        match tag {
            b'Q' | b'P' => true,
            b'B' | b'D' | b'E' | b'C' | b'S' | b'H' => {
                self.in_batch || !self.statements.is_empty() || !self.portals.is_empty()
            }
            _ => false,
        }
    }

    fn inspect<'a>(
        &'a mut self,
        session: &'a SessionState,
        message: Bytes,
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            match message[0] {
                b'Q' => self.query(message).await,
                b'P' => self.parse(message).await,
                b'B' => self.bind(message),
                b'D' => self.describe(message),
                b'E' => self.execute(message),
                b'C' => self.close(message),
                b'S' => self.sync(session, message),
                // Flush: everything the proxy answers is sent at once anyway; the server's part
                // of the batch gets it.
                b'H' if self.in_batch && !session.unsynced() => Verdict::Answer(Bytes::new()),
                _ => Verdict::Forward(message),
            }
        })
    }

    fn write_listener(&self) -> Option<Arc<Notify>> {
        Some(Arc::clone(&self.on_change))
    }
}
