//! A simple-query string of several statements that calls the pgtrickle API among other SQL,
//! run as PostgreSQL runs such a string: statement after statement, as one implicit
//! transaction when the client is not in a transaction block (an error rolls all of it back),
//! inside the client's block otherwise (an error leaves the block failed). Plain statements go
//! to the server one by one and their answers (rows, notices, errors) are relayed; the calls
//! are answered by [`ApiJob`]s at their place in the string. One ReadyForQuery ends it all.
//!
//! The answers are collected and sent when the string has run, so they are held in memory
//! until then: past [`ANSWER_BUDGET`] bytes the string fails (54000) and is undone, rather than
//! let one session's query fill the proxy's memory.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use crate::engine::api::job::{raise_sql, ApiJob};
use crate::engine::error::EngineError;
use crate::engine::sql::runner::SqlError;
use crate::protocol::ready_for_query::{self, TransactionStatus};
use crate::session::intercept::{JobOutput, SessionJob};
use crate::session::session_sql::SessionSql;

/// One statement of a [`ScriptJob`].
pub enum Step {
    /// Sent to the server as written.
    Sql(String),
    /// Answered by the engine.
    Call(Box<ApiJob>),
}

/// The statements of one query string, in order.
pub struct ScriptJob {
    /// The statements.
    pub steps: Vec<Step>,
    /// Told when the string committed writes (wakes the scheduler for `calculated` stream
    /// tables).
    pub on_change: Arc<Notify>,
}

impl SessionJob for ScriptJob {
    fn run<'a>(
        self: Box<Self>,
        sql: &'a mut SessionSql<'_>,
    ) -> Pin<Box<dyn Future<Output = JobOutput> + Send + 'a>> {
        Box::pin(async move { self.answer(sql).await.into() })
    }
}

/// The most bytes of answers a script may collect for its client.
pub const ANSWER_BUDGET: usize = 64 << 20;

impl ScriptJob {
    async fn answer(self, sql: &mut SessionSql<'_>) -> Bytes {
        let mut out = BytesMut::new();
        let implicit = sql.tx_status() == TransactionStatus::Idle;
        if implicit {
            if let Err(e) = sql.simple_query("BEGIN").await {
                return finish(out, sql, Some(e));
            }
        }
        let on_change = Arc::clone(&self.on_change);
        let (ok, wrote) = self.run_steps(sql, &mut out).await;
        let mut error = None;
        if implicit {
            let end = if ok { "COMMIT" } else { "ROLLBACK" };
            // A COMMIT can still fail (deferred constraints): its error is the string's.
            if let Err(e) = sql.simple_query(end).await {
                error = Some(e);
            }
        }
        if ok && error.is_none() && (wrote || implicit) {
            on_change.notify_one();
        }
        finish(out, sql, error)
    }

    /// Runs the steps up to the first failure; returns whether all succeeded and whether any
    /// plain statement wrote.
    async fn run_steps(self, sql: &mut SessionSql<'_>, out: &mut BytesMut) -> (bool, bool) {
        let mut wrote = false;
        for step in self.steps {
            match step {
                Step::Sql(text) => match sql
                    .relay(&text, ANSWER_BUDGET.saturating_sub(out.len()))
                    .await
                {
                    Ok(relayed) if relayed.overflowed => {
                        too_large(sql, out).await;
                        return (false, wrote);
                    }
                    Ok(relayed) => {
                        out.extend_from_slice(&relayed.messages);
                        wrote |= relayed.wrote;
                        if relayed.failed {
                            return (false, wrote);
                        }
                    }
                    Err(e) => {
                        append_error(out, &e);
                        return (false, wrote);
                    }
                },
                Step::Call(job) => {
                    let answer = (*job).answer(sql).await.answer;
                    out.extend_from_slice(ready_for_query::without_trailing(&answer));
                    if sql.tx_status() == TransactionStatus::Failed {
                        return (false, wrote);
                    }
                }
            }
        }
        (true, wrote)
    }
}

/// Fails the script's transaction (the client's block too) with 54000 through the server, so
/// that the transaction status is what the client is told.
async fn too_large(sql: &mut SessionSql<'_>, out: &mut BytesMut) {
    let e = EngineError::api(
        "54000",
        format!(
            "the answers of a query string with pgtrickle calls exceed {} MB",
            ANSWER_BUDGET >> 20
        ),
    )
    .with_hint("send the pgtrickle calls as statements of their own");
    match sql.relay(&raise_sql(&e), ANSWER_BUDGET).await {
        Ok(relayed) => out.extend_from_slice(&relayed.messages),
        Err(e) => append_error(out, &e),
    }
}

fn append_error(out: &mut BytesMut, e: &SqlError) {
    match e {
        SqlError::Server { raw, .. } if !raw.is_empty() => out.extend_from_slice(raw),
        other => out.extend_from_slice(
            &crate::protocol::error_response::ErrorResponse::error("08006", other.to_string())
                .encode(),
        ),
    }
}

fn finish(mut out: BytesMut, sql: &SessionSql<'_>, error: Option<SqlError>) -> Bytes {
    if let Some(e) = error {
        append_error(&mut out, &e);
    }
    out.extend_from_slice(&sql.tx_status().encode());
    out.freeze()
}
