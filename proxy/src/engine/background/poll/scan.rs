//! One poll of one foreign source: under the source's poll lock, on the writer, check that the
//! foreign table may be read ([`super::guard::check_columns`]) and polled by the role asking
//! ([`super::ownership`]), prepare it again if its mirror is missing ([`super::prepare`]),
//! check that it still has its mirror's columns, and skip an unchanged file; then stream the
//! table on the reader (after [`super::guard::begin_read`]), hash and compare every row, stage
//! what appeared, and apply appeared and disappeared rows to the mirror and the change buffer
//! in one transaction. Nothing is written when nothing changed.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use pgtrickle_cdc::poll::{
    hash_row, mirror, Comparison, HashMultiset, LineSplitter, MultisetBuilder, RowHash, Seen,
};
use pgtrickle_cdc::SourceTable;
use tokio_postgres::{Client, CopyInSink};

use super::cache::MultisetCache;
use super::failure::Failure;
use super::file_stat;
use super::guard;
use super::report::{PollReport, Scanned};
use crate::engine::catalog::polled_sources;

/// Staged rows are sent to the writer in chunks of about this many bytes.
const STAGE_CHUNK: usize = 256 * 1024;

/// Polls `oid` for `role` on `writer` (the transaction) and `reader` (the scan), both already
/// set up, indexing the mirror on `key_columns` (see [`super::prepare::ensure`]).
pub async fn poll_once(
    cache: &MultisetCache,
    database: &str,
    writer: &Client,
    reader: &Client,
    oid: u32,
    role: &str,
    key_columns: &[String],
) -> Result<Scanned, Failure> {
    writer
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; {}",
            mirror::poll_lock_sql(oid)
        ))
        .await?;
    let source = describe(writer, oid).await?;
    guard::check_columns(writer, &source).await?;
    super::ownership::check(writer, oid, role).await?;
    let rebuilt = super::prepare::ensure(writer, &source, role, key_columns).await?;
    if rebuilt {
        cache.forget(database, oid);
    }
    let seq: i64 = polled_sources::poll_seq(writer, oid)
        .await?
        .ok_or_else(|| {
            Failure::refused(
                "55000",
                format!("foreign table {oid} has no mirror: create a stream table over it"),
            )
        })?;
    let same: Option<bool> = writer
        .query_one(&mirror::columns_match_sql(oid), &[])
        .await?
        .get(0);
    if same != Some(true) {
        return Err(Failure::refused(
            "55000",
            format!(
                "the columns of foreign table {} changed since stream tables were built over it; \
                 drop those stream tables and create them again (drop_stream_table, then \
                 create_stream_table; alter_stream_table keeps the old mirror)",
                source.qualified_name()
            ),
        ));
    }
    let file = file_stat::check(writer, oid).await?;
    // A mirror created just now must be filled, whatever the file's state.
    if !rebuilt && file.as_ref().is_some_and(|f| f.unchanged) {
        writer.batch_execute("COMMIT").await?;
        return Ok(Scanned {
            report: PollReport {
                skipped: true,
                ..PollReport::default()
            },
            file,
        });
    }
    let previous = match cache.take(database, oid, seq) {
        Some(set) => set,
        None => load_multiset(writer, oid).await?,
    };
    // The first fill of a source no stream table reads yet goes straight into the mirror.
    let direct = previous.rows() == 0 && polled_sources::unread(writer, oid).await?;
    let mut comparison = Comparison::new(previous);
    let scanned = scan(writer, reader, &source, &mut comparison, direct).await;
    let staged = match scanned {
        Ok(staged) => staged,
        Err(e) => {
            // Nothing was applied: the multiset still describes the mirror.
            cache.store(database, oid, seq, comparison.abandon());
            return Err(e);
        }
    };
    let compared = comparison.finish();
    let report = PollReport {
        rows_scanned: compared.scanned,
        rows_changed: compared.appeared + compared.disappeared_rows,
        skipped: false,
    };
    if report.rows_changed == 0 {
        writer.batch_execute("COMMIT").await?;
        cache.store(database, oid, seq, compared.next);
        return Ok(Scanned { report, file });
    }
    if !compared.vanished.is_empty() {
        let hashes: Vec<&[u8]> = compared.vanished.iter().map(|h| h.0.as_slice()).collect();
        writer
            .execute(&mirror::delete_vanished_sql(&source), &[&hashes])
            .await?;
    }
    if !compared.reduced.is_empty() {
        let hashes: Vec<&[u8]> = compared
            .reduced
            .iter()
            .map(|(h, _)| h.0.as_slice())
            .collect();
        let counts: Vec<i32> = compared
            .reduced
            .iter()
            .map(|(_, n)| i32::try_from(*n).unwrap_or(i32::MAX))
            .collect();
        writer
            .execute(&mirror::delete_reduced_sql(&source), &[&hashes, &counts])
            .await?;
    }
    if staged && !direct {
        writer
            .batch_execute(&mirror::apply_appeared_sql(&source))
            .await?;
    }
    let next_seq = polled_sources::advance_poll_seq(writer, oid).await?;
    writer.batch_execute("COMMIT").await?;
    cache.store(database, oid, next_seq, compared.next);
    Ok(Scanned { report, file })
}

/// Streams the foreign table (in the reader's checked, read-only transaction, see
/// [`guard::begin_read`]) through the comparison; rows that appeared are copied into the
/// staging table on the writer (into the mirror itself when `direct`). Returns whether
/// anything was copied.
async fn scan(
    writer: &Client,
    reader: &Client,
    source: &SourceTable,
    comparison: &mut Comparison,
    direct: bool,
) -> Result<bool, Failure> {
    guard::begin_read(reader, source).await?;
    let stream = reader.copy_out(&mirror::scan_sql(source)).await?;
    let mut stream = std::pin::pin!(stream);
    let mut splitter = LineSplitter::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut sink: Option<std::pin::Pin<Box<CopyInSink<Bytes>>>> = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        splitter
            .feed::<()>(&chunk, |row| {
                let hash: RowHash = hash_row(row);
                if comparison.observe(hash) == Seen::Appeared {
                    mirror::staging_line(row, hash, &mut pending);
                }
                Ok(())
            })
            .unwrap_or(());
        if pending.len() >= STAGE_CHUNK {
            send(writer, source, direct, &mut sink, &mut pending).await?;
        }
    }
    if splitter.has_partial() {
        return Err(Failure::refused(
            "08P01",
            "the foreign table's COPY stream ended in the middle of a row",
        ));
    }
    reader.batch_execute("COMMIT").await?;
    if !pending.is_empty() {
        send(writer, source, direct, &mut sink, &mut pending).await?;
    }
    match sink {
        Some(mut s) => {
            s.as_mut().finish().await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Sends staged lines, opening the staging table (or, `direct`, the mirror) and its COPY at
/// the first call (checking the columns again just before: copying into them converts the
/// values to their types as the engine role).
async fn send(
    writer: &Client,
    source: &SourceTable,
    direct: bool,
    sink: &mut Option<std::pin::Pin<Box<CopyInSink<Bytes>>>>,
    pending: &mut Vec<u8>,
) -> Result<(), Failure> {
    let s = match sink {
        Some(s) => s,
        None => {
            let oid = source.oid;
            guard::check_columns(writer, source).await?;
            let copy = if direct {
                mirror::copy_mirror_sql(oid)
            } else {
                writer
                    .batch_execute(&mirror::create_staging_sql(oid))
                    .await?;
                mirror::copy_staging_sql(oid)
            };
            let s = writer.copy_in::<_, Bytes>(&copy).await?;
            sink.insert(Box::pin(s))
        }
    };
    let chunk = Bytes::from(std::mem::take(pending));
    Ok(s.send(chunk).await?)
}

/// The foreign table as a [`SourceTable`] (the connection's search_path is pg_catalog, so
/// types come out schema-qualified as the mirror's DDL needs them).
pub async fn describe(client: &Client, oid: u32) -> Result<SourceTable, Failure> {
    let rows = client
        .simple_query(&pgtrickle_cdc::describe_source_sql(oid))
        .await?;
    let mut schema = String::new();
    let mut name = String::new();
    let mut columns = Vec::new();
    for m in rows {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            schema = r.get(0).unwrap_or_default().to_string();
            name = r.get(1).unwrap_or_default().to_string();
            columns.push((
                r.get(3).unwrap_or_default().to_string(),
                r.get(4).unwrap_or_default().to_string(),
            ));
        }
    }
    if columns.is_empty() {
        return Err(Failure::refused(
            "42P01",
            format!("foreign table with OID {oid} no longer exists"),
        ));
    }
    SourceTable::new(oid, schema, name, columns)
        .map_err(|e| Failure::refused("0A000", e.to_string()))
}

/// Rebuilds the multiset from the mirror's hash column (after a restart, or when another
/// proxy polled since).
async fn load_multiset(client: &Client, oid: u32) -> Result<HashMultiset, Failure> {
    let stream = client.copy_out(&mirror::load_hashes_sql(oid)).await?;
    let mut stream = std::pin::pin!(stream);
    let mut splitter = LineSplitter::new();
    let mut builder = MultisetBuilder::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        splitter.feed::<Failure>(&chunk, |line| {
            let hash = mirror::parse_hash_line(line).ok_or_else(|| {
                Failure::refused(
                    "XX001",
                    format!("mirror of foreign table {oid} holds a malformed row hash"),
                )
            })?;
            builder.push(hash, 1);
            Ok(())
        })?;
    }
    Ok(builder.build())
}
