//! Where the engine's SQL runs: on a client session's own connection (so an API call is part
//! of the client's transaction) or on a connection of the proxy's own (the scheduler). Both
//! speak the simple query protocol and return text.

use std::future::Future;

use crate::session::session_sql::SessionSql;
pub use crate::session::session_sql::{ResultSet, SqlError};

/// Runs SQL text and returns one result per statement.
pub trait SqlRunner: Send {
    /// Runs `sql` (one or more statements).
    fn run(&mut self, sql: &str) -> impl Future<Output = Result<Vec<ResultSet>, SqlError>> + Send;
}

impl SqlRunner for SessionSql<'_> {
    fn run(&mut self, sql: &str) -> impl Future<Output = Result<Vec<ResultSet>, SqlError>> + Send {
        self.simple_query(sql)
    }
}

/// Convenience queries over a [`SqlRunner`].
pub trait SqlRunnerExt: SqlRunner {
    /// The result of the last statement of `sql` (with its column names).
    fn last_result(
        &mut self,
        sql: &str,
    ) -> impl Future<Output = Result<ResultSet, SqlError>> + Send {
        let fut = self.run(sql);
        async move { Ok(fut.await?.pop().unwrap_or_default()) }
    }

    /// The rows of the last statement of `sql`.
    fn rows(
        &mut self,
        sql: &str,
    ) -> impl Future<Output = Result<Vec<Vec<Option<String>>>, SqlError>> + Send {
        let fut = self.run(sql);
        async move { Ok(fut.await?.pop().map(|r| r.rows).unwrap_or_default()) }
    }

    /// The first column of the first row of the last statement, if any.
    fn value(
        &mut self,
        sql: &str,
    ) -> impl Future<Output = Result<Option<String>, SqlError>> + Send {
        let fut = self.rows(sql);
        async move {
            Ok(fut
                .await?
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next().flatten()))
        }
    }
}

impl<T: SqlRunner + ?Sized> SqlRunnerExt for T {}

/// The engine quotes identifiers (always quoted) and literals (E'' when the text holds a
/// backslash) with the cdc crate's functions, the workspace's one implementation.
pub use pgtrickle_cdc::quote::{
    quote_ident, quote_ident_as_needed, quote_literal, quote_text_array,
};

/// Sets `search_path` to `path` for the rest of the transaction (in one round trip) and returns
/// the value it had, which a second call with it restores.
pub async fn swap_search_path<R: SqlRunner + ?Sized>(
    sql: &mut R,
    path: &str,
) -> Result<String, SqlError> {
    let results = sql
        .run(&format!(
            "SELECT pg_catalog.current_setting('search_path'); \
             SELECT pg_catalog.set_config('search_path', {}, true)",
            quote_literal(path)
        ))
        .await?;
    Ok(results
        .first()
        .and_then(|r| r.rows.first())
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_default())
}
