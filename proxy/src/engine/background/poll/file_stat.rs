//! Skipping the scan of a file_fdw source whose file did not change. The server reports the
//! file's size and modification time (`pg_stat_file`, asked on the poll's writer connection,
//! so the proxy's role needs superuser or an explicit grant; without it every poll scans). The scan is skipped when both equal those recorded at
//! the previous successful scan *and* the modification time was more than a second older than
//! that scan's start: modification times have whole seconds, so a file rewritten within the
//! second of a scan could otherwise keep its size and time. Replacing the file (written
//! elsewhere, then renamed over it) always gives it a new modification time.

use tokio_postgres::Client;

/// The file behind a file_fdw source, as seen just before a scan.
#[derive(Debug, Clone, PartialEq)]
pub struct FileStat {
    /// Size in bytes.
    pub size: i64,
    /// Modification time (text, as the server prints timestamptz).
    pub mtime: String,
    /// The server's clock when the file was looked at.
    pub checked_at: String,
    /// Same size and time as at the previous successful scan, long enough before it.
    pub unchanged: bool,
}

/// Looks at the file of source `oid` when it is a file_fdw table with a `filename` the server
/// may stat; None otherwise (or when the file is missing: the scan then reports the error).
pub async fn check(client: &Client, oid: u32) -> Result<Option<FileStat>, tokio_postgres::Error> {
    // Asked first: a plan that merely contains pg_stat_file fails for a role that may not
    // execute it, whatever its WHERE clause says.
    let may_stat: bool = client
        .query_one(
            "SELECT pg_catalog.has_function_privilege( \
               'pg_catalog.pg_stat_file(text, boolean)', 'EXECUTE')",
            &[],
        )
        .await?
        .get(0);
    if !may_stat {
        return Ok(None);
    }
    let row = client
        .query_opt(
            &format!(
                "SELECT f.size, f.modification::text, clock_timestamp()::text, \
               coalesce(st.consecutive_errors = 0 AND st.file_size = f.size \
                 AND st.file_mtime = f.modification \
                 AND f.modification < st.file_scanned_at - interval '1 second', false) \
             FROM pg_catalog.pg_foreign_table ft \
             JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver \
             JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw \
             CROSS JOIN LATERAL pg_catalog.pg_options_to_table(ft.ftoptions) o \
             CROSS JOIN LATERAL pg_catalog.pg_stat_file(o.option_value, true) f \
             LEFT JOIN LATERAL {} st ON true \
             WHERE ft.ftrelid = $1 AND w.fdwname = 'file_fdw' AND o.option_name = 'filename' \
               AND f.size IS NOT NULL",
                crate::engine::catalog::polled_sources::file_state_sql("ft.ftrelid")
            ),
            &[&oid],
        )
        .await?;
    Ok(row.map(|r| FileStat {
        size: r.get(0),
        mtime: r.get(1),
        checked_at: r.get(2),
        unchanged: r.get(3),
    }))
}
