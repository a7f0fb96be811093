//! Who may poll a foreign source, and whose its mirror and change buffer are.
//!
//! The mirror and the buffer belong to the proxy's own role (the engine role, the writer
//! connection's `current_user`) exactly, never merely to a role it is a member of: whoever owns
//! them could add a trigger (run as the engine role by the poll's writes) or change their rows.
//! The catalog upgrade to version 5 drops those that another role owns, and nobody else may
//! create in `pgtrickle_changes`; this check refuses to write into one that is somebody else's
//! all the same. The source is polled for one role, recorded in
//! `pgtrickle.pgt_polled_sources.owner` (the first stream table's owner, whose FDW user mapping
//! reads it): only that role, or a member of it, may build stream tables over it, since the
//! mirror holds rows that role reads. Checked when a source is prepared and at every poll.

use pgtrickle_cdc::poll::mirror;
use tokio_postgres::Client;

use super::failure::Failure;
use crate::engine::catalog::polled_sources;

/// Checks, on the writer (as the engine role), that `role` may poll foreign table `oid`: the
/// recorded owner (if any) is `role` or a role it is a member of, and the mirror and buffer
/// (where they exist) belong to the engine role itself.
pub async fn check(client: &Client, oid: u32, role: &str) -> Result<(), Failure> {
    let row = client
        .query_one(
            &format!(
                "SELECT coalesce(p.owner::pg_catalog.text, $4::pg_catalog.text), \
               pg_catalog.pg_has_role($4::pg_catalog.text::pg_catalog.name, \
                 coalesce(p.owner, $4::pg_catalog.text::pg_catalog.name), 'MEMBER'), \
               (SELECT c.relowner::pg_catalog.regrole::pg_catalog.text FROM pg_catalog.pg_class c \
                WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($2::pg_catalog.text) \
                  AND c.relowner OPERATOR(pg_catalog.<>) me.oid), \
               (SELECT c.relowner::pg_catalog.regrole::pg_catalog.text FROM pg_catalog.pg_class c \
                WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($3::pg_catalog.text) \
                  AND c.relowner OPERATOR(pg_catalog.<>) me.oid), \
               current_user::pg_catalog.text \
             FROM (SELECT 1) one \
             CROSS JOIN LATERAL (SELECT {} AS owner) p \
             CROSS JOIN (SELECT r.oid FROM pg_catalog.pg_roles r \
                         WHERE r.rolname OPERATOR(pg_catalog.=) current_user) me",
                polled_sources::polled_for_sql("$1::pg_catalog.oid")
            ),
            &[
                &oid,
                &mirror::mirror_table(oid),
                &pgtrickle_cdc::buffer_table(oid),
                &role,
            ],
        )
        .await?;
    let owner: String = row.get(0);
    let member: bool = row.get(1);
    let engine: String = row.get(4);
    if !member {
        return Err(Failure::refused(
            "42501",
            format!(
                "foreign table {oid} is polled for the stream tables of role {owner}; only that \
                 role (or its members) can build stream tables over it"
            ),
        ));
    }
    for (what, other) in [
        (mirror::mirror_table(oid), row.get::<_, Option<String>>(2)),
        (
            pgtrickle_cdc::buffer_table(oid),
            row.get::<_, Option<String>>(3),
        ),
    ] {
        if let Some(other) = other {
            return Err(Failure::refused(
                "42501",
                format!(
                    "{what} belongs to role {other}, not to the proxy's role {engine}; a \
                     superuser should inspect and drop it (the next poll creates it again)"
                ),
            ));
        }
    }
    Ok(())
}
