//! Recording each poll in `pgtrickle.pgt_poll_state` (an unlogged table: losing it in a crash
//! only costs one unskipped file scan, and a poll that changed nothing writes no WAL for it),
//! read through `pgtrickle.pgt_poll_status()`. A failure counts in `consecutive_errors` and
//! sets `next_poll_at` for a backoff of 2^n seconds, at most a minute.

use std::time::Duration;

use tokio_postgres::Client;

use super::failure::Failure;
use super::report::Scanned;
use crate::engine::catalog::polled_sources;

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
            let success = polled_sources::PollSuccess {
                ms,
                rows_scanned: i64::try_from(s.report.rows_scanned).unwrap_or(i64::MAX),
                rows_changed: i64::try_from(s.report.rows_changed).unwrap_or(i64::MAX),
                skipped: s.report.skipped,
                file: s
                    .file
                    .as_ref()
                    .map(|f| (f.size, f.mtime.as_str(), f.checked_at.as_str())),
            };
            polled_sources::record_success(client, oid, &success).await?;
        }
        Err(failure) => {
            let text = format!("{failure} (SQLSTATE {})", failure.code());
            polled_sources::record_failure(client, oid, ms, &text).await?;
        }
    }
    Ok(())
}
