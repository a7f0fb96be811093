//! Preparing a foreign source: its mirror, hash index and change buffer, its row in
//! `pgtrickle.pgt_polled_sources`, and the owner's right to read the mirror. Done by the first
//! poll of the source ([`super::Poller::prepare`], when a stream table over it is created) and again by
//! any poll that finds the mirror, the buffer or the row missing (the catalog upgrade to
//! version 5 drops mirrors another role owned; a superuser may drop one by hand), in the poll's
//! own transaction on the writer connection, as the engine role, which owns what it creates.
//! A source prepared again is filled like any poll (every row appears, recorded in the buffer),
//! and the stream tables reading it refresh FULL once. A mirror left behind by a create that
//! was rolled back is dropped later by [`super::due::drop_orphans`].

use pgtrickle_cdc::poll::mirror;
use pgtrickle_cdc::SourceTable;
use tokio_postgres::Client;

use super::failure::Failure;
use crate::engine::catalog::polled_sources;
use crate::engine::sql::runner::quote_ident;

/// On the writer, in the poll's transaction (after the source's poll lock, the column checks and
/// the ownership check): creates what is missing of `source`'s mirror, buffer and catalog row
/// (recording `role` as the owner the source is polled for), creates the indexes on
/// `key_columns`, and grants SELECT on the mirror to `role` (and, when the mirror or buffer was
/// missing, to every owner of a stream table reading it, and those stream tables refresh FULL
/// once). Returns true when the mirror or buffer had to be created.
pub async fn ensure(
    writer: &Client,
    source: &SourceTable,
    role: &str,
    key_columns: &[String],
) -> Result<bool, Failure> {
    let oid = source.oid;
    let mirror_table = mirror::mirror_table(oid);
    let missing: bool = writer
        .query_one(
            "SELECT pg_catalog.to_regclass($1::pg_catalog.text) IS NULL \
               OR pg_catalog.to_regclass($2::pg_catalog.text) IS NULL",
            &[&mirror_table, &pgtrickle_cdc::buffer_table(oid)],
        )
        .await?
        .get(0);
    if missing {
        writer
            .batch_execute(&mirror::create_mirror_sql(source))
            .await?;
    }
    for column in key_columns {
        if let Some(index) = mirror::index_column_sql(source, column) {
            writer.batch_execute(&index).await?;
        }
    }
    polled_sources::register(writer, oid, &source.schema, &source.name, role).await?;
    if missing {
        // A cached multiset describes the old mirror: a new poll_seq invalidates it. The
        // readers' contents may no longer match the changes to come: FULL once.
        polled_sources::mirror_rebuilt(writer, oid).await?;
    }
    let grantees =
        polled_sources::mirror_grantees(writer, &mirror_table, role, missing, oid).await?;
    for grantee in grantees {
        writer
            .batch_execute(&format!(
                "GRANT SELECT ON {mirror_table} TO {}",
                quote_ident(&grantee)
            ))
            .await?;
    }
    Ok(missing)
}
