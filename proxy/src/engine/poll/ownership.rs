//! Who may poll a foreign source. The mirror and the change buffer receive the foreign table's
//! rows, so they must belong to the role the source is polled for (recorded in
//! `pgtrickle.pgt_polled_sources.owner`): a table of the same name that another role created
//! beforehand ("planted", possibly readable by that role) would otherwise receive rows that role
//! may not read. Checked when a source is prepared and at every poll.

use pgtrickle_cdc::poll::mirror;
use tokio_postgres::Client;

use super::scan::{describe_error, Failure};

fn refuse(message: String) -> Failure {
    ("42501".to_string(), message)
}

/// Checks, as the connection's current role, that it may poll foreign table `oid`: the
/// recorded owner (if any) is this role or one it is a member of, and the mirror and buffer
/// (where they exist) belong to that owner.
pub async fn check(client: &Client, oid: u32) -> Result<(), Failure> {
    let row = client
        .query_one(
            "SELECT coalesce(p.owner::text, current_user::text), \
               p.owner IS NULL OR pg_catalog.pg_has_role(p.owner, 'MEMBER'), \
               (SELECT c.relowner::regrole::text FROM pg_catalog.pg_class c \
                WHERE c.oid = pg_catalog.to_regclass($2) AND c.relowner <> o.oid), \
               (SELECT c.relowner::regrole::text FROM pg_catalog.pg_class c \
                WHERE c.oid = pg_catalog.to_regclass($3) AND c.relowner <> o.oid) \
             FROM (SELECT 1) one \
             LEFT JOIN pgtrickle.pgt_polled_sources p ON p.foreign_relid = $1 \
             CROSS JOIN LATERAL (SELECT r.oid FROM pg_catalog.pg_roles r \
                                 WHERE r.rolname = coalesce(p.owner, current_user)) o",
            &[
                &oid,
                &mirror::mirror_table(oid),
                &pgtrickle_cdc::buffer_table(oid),
            ],
        )
        .await
        .map_err(|e| describe_error(&e))?;
    let owner: String = row.get(0);
    let member: bool = row.get(1);
    if !member {
        return Err(refuse(format!(
            "foreign table {oid} is polled for the stream tables of role {owner}; only that role \
             (or its members) can build stream tables over it"
        )));
    }
    for (what, other) in [
        (mirror::mirror_table(oid), row.get::<_, Option<String>>(2)),
        (
            pgtrickle_cdc::buffer_table(oid),
            row.get::<_, Option<String>>(3),
        ),
    ] {
        if let Some(other) = other {
            return Err(refuse(format!(
                "{what} belongs to role {other}, not to role {owner} for which the source is \
                 polled; drop it before creating a stream table over this foreign table"
            )));
        }
    }
    Ok(())
}
