//! The engine's [`Interceptor`]: finds pgtrickle API calls among the client's messages (a cheap
//! substring prefilter first, a real parse only for candidates) and turns the ones that change
//! things into [`ApiJob`]s. Read functions (pgt_status, explain_st, get_refresh_history) are SQL
//! functions in the database and are forwarded.

use std::sync::Arc;

use bytes::Bytes;
use pgtrickle_planner::api_call::ApiFunction;
use pgtrickle_planner::api_call::CallOutput;
use pgtrickle_planner::{may_contain_api_call, parse_api_call, ApiLimits};
use tokio::sync::Notify;

use super::job::ApiJob;
use crate::session::intercept::{Interceptor, Verdict};
use crate::session::SessionState;

/// Intercepts API calls sent with the simple query protocol.
pub struct EngineInterceptor {
    /// Limits applied to API arguments.
    pub limits: ApiLimits,
    /// Woken when a call changed stream tables.
    pub on_change: Arc<Notify>,
}

impl Interceptor for EngineInterceptor {
    fn wants(&self, tag: u8) -> bool {
        tag == b'Q'
    }

    fn inspect(&self, _session: &SessionState, message: Bytes) -> Verdict {
        let body = &message[5..];
        let text = body.strip_suffix(b"\0").unwrap_or(body);
        if !may_contain_api_call(text) {
            return Verdict::Forward(message);
        }
        let Ok(sql) = std::str::from_utf8(text) else {
            return Verdict::Forward(message);
        };
        let call = match parse_api_call(sql) {
            Ok(None) => return Verdict::Forward(message),
            Ok(Some(call)) => call,
            Err(e) => {
                return Verdict::Run(Box::new(ApiJob {
                    request: Err(e),
                    column: String::new(),
                    on_change: None,
                }))
            }
        };
        if matches!(
            call.function(),
            ApiFunction::PgtStatus | ApiFunction::ExplainSt | ApiFunction::GetRefreshHistory
        ) {
            return Verdict::Forward(message);
        }
        let column = match call.output() {
            CallOutput::Scalar { column } => column.clone(),
            CallOutput::Table => call.function().sql_name().to_string(),
        };
        Verdict::Run(Box::new(ApiJob {
            request: call.request(&self.limits),
            column,
            on_change: Some(Arc::clone(&self.on_change)),
        }))
    }

    fn write_listener(&self) -> Option<Arc<Notify>> {
        Some(Arc::clone(&self.on_change))
    }
}
