//! A refresh reads with its stream table owner's rights, whoever asks for it: this module
//! switches the transaction to the owner's role (a superuser or another member of the owner's
//! role refreshing by hand must not put into the stream table what the owner cannot read), checks
//! that the owner may still read every source (change buffers keep receiving a source's rows
//! after a REVOKE), and finds sources whose rows the owner sees only through row-level security
//! (their change buffers hold every row, so those stream tables are refreshed FULL, where the
//! policies apply).

use super::capture::Dep;
use super::error::{EngineError, EngineResult};
use super::sql::{quote_ident, quote_literal, SqlRunner};

/// The role setting to restore after the refresh, when it switched roles.
pub struct Switched {
    previous: String,
}

/// Makes `owner` the current role for the rest of the refresh (`SET LOCAL ROLE`), unless the
/// caller (its `current_user` and its `role` setting) already is it.
pub async fn become_owner<R: SqlRunner>(
    sql: &mut R,
    owner: &str,
    (current_user, role): &(String, String),
) -> EngineResult<Option<Switched>> {
    if current_user == owner {
        return Ok(None);
    }
    sql.run(&format!("SET LOCAL ROLE {}", quote_ident(owner)))
        .await?;
    Ok(Some(Switched {
        previous: role.clone(),
    }))
}

/// Restores the role the caller had before [`become_owner`].
pub async fn restore<R: SqlRunner>(sql: &mut R, switched: Option<Switched>) -> EngineResult<()> {
    if let Some(s) = switched {
        sql.run(&format!(
            "SELECT pg_catalog.set_config('role', {}, true)",
            quote_literal(&s.previous)
        ))
        .await?;
    }
    Ok(())
}

/// Checks that the current role (the owner) may still read every source, as [`Dep::readable`]
/// says (42501 otherwise, 42P01 for a source dropped meanwhile); returns true when row-level
/// security filters some source's rows for it.
pub fn check_sources(deps: &[Dep]) -> EngineResult<bool> {
    for d in deps {
        match d.readable {
            Some(true) => {}
            Some(false) => {
                return Err(EngineError::api(
                    "42501",
                    format!("permission denied for table {}", d.name),
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
                        d.name
                    ),
                )
                .with_hint("drop the stream table, or create it again over the new relation"))
            }
        }
    }
    Ok(deps.iter().any(|d| d.row_filtered))
}
