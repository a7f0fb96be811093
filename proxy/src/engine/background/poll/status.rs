//! Recording each poll in `pgtrickle.pgt_poll_state` (an unlogged table: losing it in a crash
//! only costs one unskipped file scan, and a poll that changed nothing writes no WAL for it),
//! read through `pgtrickle.pgt_poll_status()`. A failure counts in `consecutive_errors` and
//! sets `next_poll_at` for a backoff of 2^n seconds, at most a minute.

use std::time::Duration;

use tokio_postgres::Client;

use super::failure::Failure;
use super::scan::Scanned;

/// Upserts the outcome of a poll of `oid` that took `elapsed`.
pub async fn record(
    client: &Client,
    oid: u32,
    outcome: &Result<Scanned, Failure>,
    elapsed: Duration,
) -> Result<(), tokio_postgres::Error> {
    let ms = elapsed.as_secs_f64() * 1000.0;
    match outcome {
        Ok(s) => {
            let scanned = i64::try_from(s.report.rows_scanned).unwrap_or(i64::MAX);
            let changed = i64::try_from(s.report.rows_changed).unwrap_or(i64::MAX);
            let (size, mtime, at) = match &s.file {
                Some(f) => (
                    Some(f.size),
                    Some(f.mtime.as_str()),
                    Some(f.checked_at.as_str()),
                ),
                None => (None, None, None),
            };
            client
                .execute(
                    "INSERT INTO pgtrickle.pgt_poll_state AS st (foreign_relid, last_poll_at, \
                       duration_ms, rows_scanned, rows_changed, scan_skipped, consecutive_errors, \
                       last_error, last_success_at, next_poll_at, file_size, file_mtime, \
                       file_scanned_at) \
                     VALUES ($1, now(), $2, $3, $4, $5, 0, NULL, now(), NULL, $6, \
                       $7::text::timestamptz, $8::text::timestamptz) \
                     ON CONFLICT (foreign_relid) DO UPDATE SET last_poll_at = now(), \
                       duration_ms = $2, rows_scanned = $3, rows_changed = $4, \
                       scan_skipped = $5, consecutive_errors = 0, last_error = NULL, \
                       last_success_at = now(), next_poll_at = NULL, \
                       file_size = CASE WHEN $5 THEN st.file_size ELSE $6 END, \
                       file_mtime = CASE WHEN $5 THEN st.file_mtime ELSE $7::text::timestamptz END, \
                       file_scanned_at = CASE WHEN $5 THEN st.file_scanned_at \
                                         ELSE $8::text::timestamptz END",
                    &[&oid, &ms, &scanned, &changed, &s.report.skipped, &size, &mtime, &at],
                )
                .await?;
        }
        Err(failure) => {
            let text = format!("{failure} (SQLSTATE {})", failure.code());
            client
                .execute(
                    "INSERT INTO pgtrickle.pgt_poll_state AS st (foreign_relid, last_poll_at, \
                       duration_ms, rows_scanned, rows_changed, scan_skipped, consecutive_errors, \
                       last_error, next_poll_at) \
                     VALUES ($1, now(), $2, 0, 0, false, 1, $3, now() + interval '1 second') \
                     ON CONFLICT (foreign_relid) DO UPDATE SET last_poll_at = now(), \
                       duration_ms = $2, rows_scanned = 0, rows_changed = 0, \
                       scan_skipped = false, consecutive_errors = st.consecutive_errors + 1, \
                       last_error = $3, \
                       next_poll_at = now() + make_interval(secs => \
                         least(60, 2 ^ (st.consecutive_errors + 1)))",
                    &[&oid, &ms, &text],
                )
                .await?;
        }
    }
    Ok(())
}
