//! Preparing a foreign source the first time a stream table reads it: its mirror, hash index
//! and change buffer, and its row in `pgtrickle.pgt_polled_sources`, created in a transaction
//! of their own on the poller's connection (so the poll that fills the mirror can run before
//! the stream table is populated, even when the create runs inside a client's transaction
//! block). A mirror left behind by a create that was rolled back is dropped later by
//! [`super::due::drop_orphans`].

use pgtrickle_cdc::poll::mirror;

use super::super::error::{EngineError, EngineResult};
use super::poller::Poller;
use super::scan;

impl Poller {
    /// Creates the mirror of foreign table `oid` of `database` (if needed) as `role`, indexed on
    /// `key_columns` (the new stream table's join keys on it), then polls it.
    pub async fn prepare(
        &self,
        database: &str,
        role: &str,
        oid: u32,
        name: &str,
        key_columns: &[String],
    ) -> EngineResult<super::PollReport> {
        let fail = |(code, message): (String, String)| EngineError::Poll {
            source_name: name.to_string(),
            code,
            message,
        };
        let client = self.connect(database, role).await.map_err(fail)?;
        let result = async {
            client
                .batch_execute(&format!("BEGIN; {}", mirror::poll_lock_sql(oid)))
                .await
                .map_err(|e| scan::describe_error(&e))?;
            let source = scan::describe(&client, oid).await?;
            super::ownership::check(&client, oid).await?;
            client
                .batch_execute(&mirror::create_mirror_sql(&source))
                .await
                .map_err(|e| scan::describe_error(&e))?;
            for column in key_columns {
                if let Some(index) = mirror::index_column_sql(&source, column) {
                    client
                        .batch_execute(&index)
                        .await
                        .map_err(|e| scan::describe_error(&e))?;
                }
            }
            client
                .execute(
                    "INSERT INTO pgtrickle.pgt_polled_sources (foreign_relid, source_schema, \
                     source_name) VALUES ($1, $2, $3) ON CONFLICT (foreign_relid) DO NOTHING",
                    &[&oid, &source.schema, &source.name],
                )
                .await
                .map_err(|e| scan::describe_error(&e))?;
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| scan::describe_error(&e))
        }
        .await;
        result.map_err(fail)?;
        self.poll(database, role, oid, name).await
    }
}
