//! An API call answered on the client's own session: run it in the client's transaction (or
//! in a REPEATABLE READ transaction of its own when the client is not in one), and answer as
//! PostgreSQL answers a call of a void function, or with the error and the transaction status
//! PostgreSQL would leave.

use std::future::Future;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use pgtrickle_planner::api_call::{ApiFunction, RowCalls};
use pgtrickle_planner::{ApiRequest, PlanError};

use crate::engine::api::answer;
use crate::engine::api::outcome::Outcome;
use crate::engine::api::{alter, create, drop, refresh_call};
use crate::engine::background::poll::Poller;
use crate::engine::background::registry::Schedulers;
use crate::engine::catalog;
use crate::engine::error::EngineError;
use crate::engine::refresh::capture;
use crate::engine::refresh::run::refresh;
use crate::engine::settings::EngineSettings;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::{quote_literal, SqlError, SqlRunner, SqlRunnerExt};
use crate::metrics::ApiCalls;
use crate::protocol::command_complete::CommandComplete;
use crate::protocol::data_row::DataRow;
use crate::protocol::error_response::{ErrorResponse, Severity};
use crate::protocol::ready_for_query::{self, TransactionStatus};
use crate::protocol::row_description::Column;
use crate::session::intercept::{JobOutput, SessionJob};
use crate::session::session_sql::SessionSql;

/// How the client asked: the answer's shape differs.
#[derive(Debug, Clone)]
pub enum Protocol {
    /// A Query: RowDescription, DataRow, CommandComplete, ReadyForQuery.
    Simple,
    /// An Execute: DataRow and CommandComplete only (Describe and Sync answer the rest); an
    /// error sets the flag so that the batch is skipped up to Sync, as PostgreSQL does.
    Extended {
        /// Set when the call failed.
        failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    },
}

/// Attempts of a refresh that keeps colliding with concurrent refreshes.
const MAX_ATTEMPTS: u32 = 10;

/// Waits before attempt `attempt` + 1 of a refresh that collided: a random pause that grows with
/// the attempts, so that concurrent callers of one stream table (a pool's connections) do not
/// collide again in lockstep.
async fn back_off(attempt: u32) {
    let ceiling_ms = 10 * u64::from(attempt.min(8));
    let pause = rand::Rng::gen_range(&mut rand::thread_rng(), 1..=ceiling_ms.max(1));
    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
}

/// One API call to run on the session.
pub struct ApiJob {
    /// The bound request, or why it could not be bound.
    pub request: Result<ApiRequest, PlanError>,
    /// The result column's name.
    pub column: String,
    /// Told when a refresh or create committed (wakes the scheduler).
    pub on_change: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// The protocol of the call.
    pub protocol: Protocol,
    /// Polls foreign sources (creates, refreshes).
    pub poller: std::sync::Arc<Poller>,
    /// The schedulers: a stream table created in a database without one starts it.
    pub schedulers: std::sync::Arc<Schedulers>,
    /// Counts the call in `pgtrickle_api_calls_total`.
    pub api_calls: ApiCalls,
}

impl SessionJob for ApiJob {
    fn run<'a>(
        self: Box<Self>,
        sql: &'a mut SessionSql<'_>,
    ) -> Pin<Box<dyn Future<Output = JobOutput> + Send + 'a>> {
        Box::pin(async move { self.answer(sql).await })
    }
}

/// Trims the change buffers a committed refresh consumed from, after its answer went out: the
/// caller does not wait for the housekeeping, the session's next statement does.
struct TrimBuffers {
    sources: Vec<u32>,
    auth: Authority,
}

impl SessionJob for TrimBuffers {
    fn run<'a>(
        self: Box<Self>,
        sql: &'a mut SessionSql<'_>,
    ) -> Pin<Box<dyn Future<Output = JobOutput> + Send + 'a>> {
        Box::pin(async move {
            if sql.tx_status() == TransactionStatus::Idle {
                for oid in &self.sources {
                    capture::trim_committed(sql, &self.auth, *oid).await;
                }
            }
            JobOutput::from(Bytes::new())
        })
    }
}

async fn execute<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    request: &ApiRequest,
    populate_here: bool,
    poller: &Poller,
    settings: &EngineSettings,
) -> Result<Outcome, EngineError> {
    let done = |_| Outcome::default();
    match request {
        ApiRequest::ForEachRow(calls) => {
            Box::pin(for_each_row(sql, auth, calls, poller, settings)).await
        }
        ApiRequest::Pause { name } => refresh_call::pause(sql, auth, name).await.map(done),
        ApiRequest::Create(c) => {
            create::create(sql, auth, c, populate_here, poller, settings).await
        }
        ApiRequest::Alter(a) => alter::alter(sql, auth, a, populate_here, poller, settings).await,
        ApiRequest::Drop { name, cascade } => drop::drop(sql, auth, name, *cascade).await.map(done),
        ApiRequest::Refresh { name } => refresh_call::refresh_by_name(sql, auth, name, settings)
            .await
            .map(|r| Outcome {
                trim: r.sources,
                ..Outcome::default()
            }),
        ApiRequest::Resume { name } => refresh_call::resume(sql, auth, name).await.map(done),
        ApiRequest::Status | ApiRequest::Explain { .. } | ApiRequest::RefreshHistory { .. } => Err(
            EngineError::api("XX000", "read functions are answered by the server"),
        ),
    }
}

/// A call over the rows of a query: the query first (in the call's transaction), then the
/// call for each row, in order; each call's notices are kept. New stream tables are populated
/// in this transaction (as in a transaction block).
async fn for_each_row<R: SqlRunner>(
    sql: &mut R,
    auth: &Authority,
    calls: &RowCalls,
    poller: &Poller,
    settings: &EngineSettings,
) -> Result<Outcome, EngineError> {
    let rows = sql.rows(&calls.query).await?;
    let mut outcome = Outcome {
        calls: Some(rows.len()),
        ..Outcome::default()
    };
    for row in &rows {
        let request = calls.request(row)?;
        let one = execute(sql, auth, &request, true, poller, settings).await?;
        outcome.notices.extend(one.notices);
        outcome.trim.extend(one.trim);
    }
    Ok(outcome)
}

impl ApiJob {
    /// Runs the call and answers it (ending with ReadyForQuery), with housekeeping to run
    /// after the answer went out.
    pub(super) async fn answer(self, sql: &mut SessionSql<'_>) -> JobOutput {
        let out = BytesMut::new();
        let status = sql.tx_status();
        if status == TransactionStatus::Failed {
            // Let the server say it: 25P02, current transaction is aborted.
            let err = sql.simple_query("SELECT NULL").await.err();
            return self
                .failed(finish_error(out, sql, err.map(EngineError::Sql)).await)
                .into();
        }
        let in_block = status == TransactionStatus::InTransaction;
        let request = match &self.request {
            Ok(r) => r.clone(),
            Err(e) => {
                let bytes = self_error(out, sql, in_block, EngineError::Plan(e.clone())).await;
                return self.failed(bytes).into();
            }
        };
        // The catalog belongs to the proxy's role: it is created or upgraded in a committed
        // transaction of its own, on a connection of the proxy's, which also reads the key
        // under which the engine's own statements on this session are signed.
        let auth = match self.authority(sql, in_block).await {
            Ok(a) => a,
            Err(e) => {
                let bytes = self_error(out, sql, in_block, e).await;
                return self.failed(bytes).into();
            }
        };
        // A refresh asked for by a user first brings the foreign sources' mirrors up to date
        // (committed on the poller's connections, before the refresh takes its snapshot).
        let polled = match &request {
            ApiRequest::Refresh { name } => {
                refresh_call::poll_for_refresh(sql, name, &self.poller).await
            }
            _ => Ok(()),
        };
        let result = match polled {
            Err(e) => Err(e),
            Ok(()) if in_block => {
                let settings = self.schedulers.settings();
                execute(sql, &auth, &request, true, &self.poller, settings).await
            }
            Ok(()) => self.own_transactions(sql, &auth, &request).await,
        };
        if let (Ok(_), ApiRequest::Create(_) | ApiRequest::ForEachRow(_)) = (&result, &request) {
            if let Ok(Some(database)) = sql.value("SELECT pg_catalog.current_database()").await {
                self.schedulers.ensure(&database);
            }
        }
        match result {
            // Buffers are trimmed only after the client's own transaction committed: inside a
            // block the next refresh (or the scheduler) does it.
            Ok(mut outcome) => {
                self.api_calls.count(&request, true);
                let trim = std::mem::take(&mut outcome.trim);
                JobOutput {
                    answer: self.success(out, sql, outcome),
                    then: (!in_block && !trim.is_empty()).then(|| {
                        Box::new(TrimBuffers {
                            sources: trim,
                            auth,
                        }) as Box<dyn SessionJob>
                    }),
                }
            }
            Err(e) => {
                let bytes = self_error(out, sql, in_block, e).await;
                self.failed(bytes).into()
            }
        }
    }

    /// The authority under which the engine's own statements run on this session: the
    /// database's signing key and the session's backend pid. The catalog is created or upgraded
    /// first when needed, on a connection of the proxy's. Inside a transaction block the
    /// session's caches may still remember the catalog as missing: opening a relation this
    /// transaction has not locked yet makes the backend read other sessions' catalog changes.
    async fn authority(
        &self,
        sql: &mut SessionSql<'_>,
        in_block: bool,
    ) -> Result<Authority, EngineError> {
        let row = sql
            .rows("SELECT pg_catalog.current_database(), pg_catalog.pg_backend_pid()")
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        let database = row.first().cloned().flatten().unwrap_or_default();
        let pid: i32 = row
            .get(1)
            .cloned()
            .flatten()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| EngineError::api("XX000", "no backend pid"))?;
        let current = matches!(catalog::is_current(sql).await, Ok(true));
        let (key, oid) = self.poller.engine_key(&database, !current).await?;
        if in_block && !current {
            sql.run(&format!("SELECT pg_catalog.pg_relation_size({oid})"))
                .await?;
        }
        Ok(Authority::Signed { key, pid })
    }

    /// An error answer: in the extended protocol without the ReadyForQuery (Sync sends it) and
    /// with the batch marked failed.
    fn failed(&self, bytes: Bytes) -> Bytes {
        if let Ok(request) = &self.request {
            self.api_calls.count(request, false);
        }
        match &self.protocol {
            Protocol::Simple => bytes,
            Protocol::Extended { failed } => {
                failed.store(true, std::sync::atomic::Ordering::Release);
                ready_for_query::strip_trailing(&bytes)
            }
        }
    }

    /// Outside a transaction block the call gets transactions of its own: one for the change,
    /// then (for a new stream table) a REPEATABLE READ one for the population, whose snapshot
    /// is taken after the capture triggers are in place. A failed population undoes the create.
    async fn own_transactions(
        &self,
        sql: &mut SessionSql<'_>,
        auth: &Authority,
        request: &ApiRequest,
    ) -> Result<Outcome, EngineError> {
        let begin = match request {
            ApiRequest::Refresh { .. } => "BEGIN ISOLATION LEVEL REPEATABLE READ",
            ApiRequest::ForEachRow(c) if c.function() == ApiFunction::RefreshStreamTable => {
                "BEGIN ISOLATION LEVEL REPEATABLE READ"
            }
            _ => "BEGIN ISOLATION LEVEL READ COMMITTED",
        };
        // A refresh that collides with a concurrent one (the scheduler's, another proxy's)
        // fails with a serialization error; refreshing again is always right.
        let mut attempt = 0;
        let mut outcome = loop {
            attempt += 1;
            sql.simple_query(begin).await?;
            match execute(
                sql,
                auth,
                request,
                false,
                &self.poller,
                self.schedulers.settings(),
            )
            .await
            {
                Ok(o) => {
                    sql.simple_query("COMMIT").await?;
                    break o;
                }
                Err(e) => {
                    let _ = sql.simple_query("ROLLBACK").await;
                    if !(e.is_serialization_failure() && attempt < MAX_ATTEMPTS) {
                        return Err(e);
                    }
                    back_off(attempt).await;
                }
            }
        };
        if let Some(pgt_id) = outcome.populate {
            let mut attempt = 0;
            loop {
                attempt += 1;
                sql.simple_query("BEGIN ISOLATION LEVEL REPEATABLE READ")
                    .await?;
                match refresh(sql, auth, self.schedulers.settings(), pgt_id, true, false).await {
                    Ok(r) => {
                        sql.simple_query("COMMIT").await?;
                        outcome.trim.extend(r.sources);
                        break;
                    }
                    Err(e) => {
                        let _ = sql.simple_query("ROLLBACK").await;
                        if e.is_serialization_failure() && attempt < MAX_ATTEMPTS {
                            back_off(attempt).await;
                            continue;
                        }
                        sql.simple_query("BEGIN").await?;
                        let undone = drop::drop_by_id(sql, auth, pgt_id).await;
                        let _ = sql
                            .simple_query(if undone.is_ok() { "COMMIT" } else { "ROLLBACK" })
                            .await;
                        return Err(e);
                    }
                }
            }
        }
        Ok(outcome)
    }

    fn success(&self, mut out: BytesMut, sql: &SessionSql<'_>, outcome: Outcome) -> Bytes {
        if let Some(n) = &self.on_change {
            n.notify_one();
        }
        for notice in outcome.notices {
            out.extend_from_slice(&ErrorResponse::new(Severity::Notice, "00000", notice).encode());
        }
        // One void value per call (a call over the rows of a query makes one per row).
        let calls = outcome.calls.unwrap_or(1);
        match self.protocol {
            Protocol::Simple => out.extend_from_slice(&answer::rows_answer(
                &[Column::new(&self.column, answer::oid::VOID)],
                &vec![vec![Some(String::new())]; calls],
                sql.tx_status(),
            )),
            Protocol::Extended { .. } => {
                for _ in 0..calls {
                    DataRow::encode(&mut out, &[Some("")]);
                }
                CommandComplete::encode(&mut out, &format!("SELECT {calls}"));
            }
        }
        out.freeze()
    }
}

/// Reports an error so that the transaction ends up as PostgreSQL would leave it: a server
/// error has already failed the transaction; an engine error inside a transaction block is
/// raised through the server so that the block fails too.
async fn self_error(
    out: BytesMut,
    sql: &mut SessionSql<'_>,
    in_block: bool,
    e: EngineError,
) -> Bytes {
    if in_block && !matches!(e, EngineError::Sql(_)) {
        let raise = raise_sql(&e);
        let err = sql.simple_query(&raise).await.err();
        return finish_error(out, sql, err.map(EngineError::Sql).or(Some(e))).await;
    }
    finish_error(out, sql, Some(e)).await
}

/// A statement that fails with `e`'s SQLSTATE, message and hint when the server runs it.
pub(super) fn raise_sql(e: &EngineError) -> String {
    let hint = match e {
        EngineError::Api { hint: Some(h), .. } => format!(", HINT = {}", quote_literal(h)),
        _ => String::new(),
    };
    let body = format!(
        "BEGIN RAISE EXCEPTION USING ERRCODE = {}, MESSAGE = {}{hint}; END",
        quote_literal(&e.code()),
        quote_literal(&message_of(e)),
    );
    format!("DO {}", pgtrickle_cdc::dollar_quote(&body))
}

fn message_of(e: &EngineError) -> String {
    match e {
        EngineError::Sql(SqlError::Server { message, .. }) => message.clone(),
        EngineError::Api { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

async fn finish_error(
    mut out: BytesMut,
    sql: &mut SessionSql<'_>,
    e: Option<EngineError>,
) -> Bytes {
    match e {
        Some(EngineError::Sql(SqlError::Server { raw, .. })) if !raw.is_empty() => {
            out.extend_from_slice(&raw)
        }
        Some(e) => {
            let mut err = ErrorResponse::error(e.code(), message_of(&e));
            if let EngineError::Api { hint: Some(h), .. } = &e {
                err = err.with_hint(h.clone());
            }
            out.extend_from_slice(&err.encode());
        }
        None => {}
    }
    out.extend_from_slice(&sql.tx_status().encode());
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_sql_dollar_quotes_around_the_message() {
        let plain = raise_sql(&EngineError::api("42P01", "no such stream table"));
        assert_eq!(
            plain,
            "DO $pgt$BEGIN RAISE EXCEPTION USING ERRCODE = '42P01', \
             MESSAGE = 'no such stream table'; END$pgt$"
        );
        let sneaky =
            raise_sql(&EngineError::api("22023", "it's $pgt$ here\\").with_hint("a $pgt1$ hint"));
        assert_eq!(
            sneaky,
            "DO $pgt2$BEGIN RAISE EXCEPTION USING ERRCODE = '22023', \
             MESSAGE = E'it''s $pgt$ here\\\\', HINT = 'a $pgt1$ hint'; END$pgt2$"
        );
    }
}
