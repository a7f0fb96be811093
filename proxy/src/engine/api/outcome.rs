//! What an API call tells the client besides its result, and looking up the stream table a
//! call names (with the ownership PostgreSQL requires for REFRESH, ALTER and DROP).

use pgtrickle_planner::StName;

use crate::engine::catalog::stream_tables::{self, StreamTableRef};
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::sql::runner::SqlRunner;

/// What an API call tells the client besides its result.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// NOTICE messages to send.
    pub notices: Vec<String>,
    /// A created stream table still to populate (FULL refresh) in a transaction of its own.
    pub populate: Option<i64>,
    /// Sources whose change buffers to trim after commit.
    pub trim: Vec<u32>,
    /// A call over the rows of a query: how many calls it made (one result row each).
    pub calls: Option<usize>,
}

/// The stream table `name` (42P01 when there is none).
pub async fn must_find<R: SqlRunner>(sql: &mut R, name: &StName) -> EngineResult<StreamTableRef> {
    stream_tables::find(sql, name).await?.ok_or_else(|| {
        EngineError::api(
            "42P01",
            format!("stream table \"{}\" does not exist", name.name),
        )
    })
}

/// The stream table `name`, which the current role must own or be a member of the owner of
/// (42501 otherwise).
pub async fn must_own<R: SqlRunner>(sql: &mut R, name: &StName) -> EngineResult<StreamTableRef> {
    let st = must_find(sql, name).await?;
    if !st.owned {
        return Err(EngineError::api(
            "42501",
            format!("must be owner of stream table {}", st.name.name),
        ));
    }
    Ok(st)
}
