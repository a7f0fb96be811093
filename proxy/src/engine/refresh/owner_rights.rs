//! What a stream table's owner may read of its sources, whoever asks for the refresh: every
//! source must still be readable by the owner (a change buffer keeps receiving a source's rows
//! after a REVOKE); a source the owner reads only in part (some columns) or through row-level
//! security is refreshed FULL, where PostgreSQL applies those limits, because its delta (filled
//! by the engine role from the change buffer, which holds every row and column) would show more.
//! The rights are PostgreSQL's, asked for the owner's role by OID (`has_*_privilege(role, ...)`),
//! so the query runs as any role.

use crate::engine::catalog::dependencies::{self, SourceRights};
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::sql::runner::SqlRunner;

/// The sources of stream table `pgt_id`, with the rights of the owner (role OID `owner`).
pub async fn sources<R: SqlRunner>(
    sql: &mut R,
    pgt_id: i64,
    owner: u32,
) -> EngineResult<Vec<SourceRights>> {
    dependencies::rights(sql, pgt_id, owner).await
}

/// Checks that the owner may still read every source (42501 otherwise, 42P01 for a source
/// dropped meanwhile); returns true when some source is not wholly readable by the owner.
pub fn check_sources(sources: &[SourceRights]) -> EngineResult<bool> {
    for d in sources {
        match d.readable {
            Some(true) => {}
            Some(false) => {
                return Err(EngineError::api(
                    "42501",
                    format!("permission denied for table {}", d.dependency.qualified()),
                )
                .with_hint(
                    "the stream table's owner can no longer read this source; grant it SELECT \
                     again or drop the stream table",
                ))
            }
            None => {
                return Err(EngineError::api(
                    "42P01",
                    format!(
                        "source relation {} of the stream table no longer exists",
                        d.dependency.qualified()
                    ),
                )
                .with_hint("drop the stream table, or create it again over the new relation"))
            }
        }
    }
    Ok(sources.iter().any(|d| !d.whole))
}
