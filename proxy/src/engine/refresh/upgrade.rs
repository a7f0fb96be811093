//! The catalog, created or upgraded, and what an upgrade from an older catalog version repairs
//! in the same transaction. Older catalogs let other roles write the change schema, and their
//! capture objects belonged to the stream tables' owners (see the take-over in
//! [`crate::engine::catalog::schema`]): capture is installed again on every local source, as
//! the engine role, and removed where no stream table reads; every stream table gets its
//! execution view (see [`super::sandbox`]); foreign sources whose mirror was dropped are
//! forgotten (their next poll prepares them again); and every stream table's next refresh is
//! FULL, so that nothing another role could have put in a buffer reaches it.

use crate::engine::catalog::{schema, upgrade};
use crate::engine::error::EngineResult;
use crate::engine::refresh::{capture, sandbox};
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::SqlRunner;

/// Creates or upgrades the catalog when needed, on a connection of the proxy's own (whose role
/// becomes the catalog's owner; the caller provides the transaction), and returns the key under
/// which the engine signs its statements on clients' sessions.
pub async fn ensure_catalog<R: SqlRunner>(sql: &mut R) -> EngineResult<Vec<u8>> {
    let (key, upgraded) = schema::ensure(sql).await?;
    if upgraded {
        repair(sql).await?;
    }
    Ok(key)
}

async fn repair<R: SqlRunner>(sql: &mut R) -> EngineResult<()> {
    let auth = Authority::Own;
    for oid in upgrade::sources_without_capture(sql).await? {
        capture::install_oid(sql, &auth, oid).await?;
    }
    for oid in upgrade::unread_buffers(sql).await? {
        sql.run(&pgtrickle_cdc::uninstall_capture_sql(oid)).await?;
    }
    upgrade::forget_sources_without_mirror(sql).await?;
    for st in upgrade::without_exec_view(sql).await? {
        let name = sandbox::new_exec_name();
        let view = sandbox::exec_view(&name);
        sql.run(&format!(
            "{}; ALTER MATERIALIZED VIEW {view} OWNER TO {}; {}",
            sandbox::create_exec_view_sql(&name),
            st.owner,
            upgrade::set_exec_view_sql(st.pgt_id, &view),
        ))
        .await?;
    }
    upgrade::refresh_all_full(sql).await
}
