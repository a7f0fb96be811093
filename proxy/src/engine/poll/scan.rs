//! One poll of one foreign source: under the source's poll lock, check that the foreign table
//! still has its mirror's columns, skip an unchanged file, stream the table, hash and compare
//! every row, stage what appeared, and apply appeared and disappeared rows to the mirror and
//! the change buffer in one transaction. Nothing is written when nothing changed.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use pgtrickle_cdc::poll::{
    hash_row, mirror, Comparison, HashMultiset, LineSplitter, MultisetBuilder, RowHash, Seen,
};
use pgtrickle_cdc::SourceTable;
use tokio_postgres::{Client, CopyInSink};

use super::file_stat::{self, FileStat};
use super::poller::{PollReport, Poller};

/// Staged rows are sent to the writer in chunks of about this many bytes.
const STAGE_CHUNK: usize = 256 * 1024;

/// A finished poll.
#[derive(Debug)]
pub struct Scanned {
    /// What it did.
    pub report: PollReport,
    /// The file's size and modification time before the scan (file_fdw sources).
    pub file: Option<FileStat>,
}

/// A failure: SQLSTATE and message.
pub type Failure = (String, String);

/// SQLSTATE and message of a tokio-postgres error.
pub fn describe_error(e: &tokio_postgres::Error) -> Failure {
    match e.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_string();
            if let Some(detail) = db.detail() {
                message.push_str(": ");
                message.push_str(detail);
            }
            (db.code().code().to_string(), message)
        }
        None => ("08006".to_string(), e.to_string()),
    }
}

fn err(e: tokio_postgres::Error) -> Failure {
    describe_error(&e)
}

/// Polls `oid` on `writer` (the transaction) and `reader` (the scan), both already set up.
pub async fn poll_once(
    poller: &Poller,
    database: &str,
    writer: &Client,
    reader: &Client,
    oid: u32,
) -> Result<Scanned, Failure> {
    writer
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; {}",
            mirror::poll_lock_sql(oid)
        ))
        .await
        .map_err(err)?;
    let seq: i64 = writer
        .query_opt(
            "SELECT poll_seq FROM pgtrickle.pgt_polled_sources WHERE foreign_relid = $1",
            &[&oid],
        )
        .await
        .map_err(err)?
        .map(|r| r.get(0))
        .ok_or_else(|| {
            (
                "55000".to_string(),
                format!("foreign table {oid} has no mirror: create a stream table over it"),
            )
        })?;
    let source = describe(writer, oid).await?;
    super::ownership::check(writer, oid).await?;
    let same: Option<bool> = writer
        .query_one(&mirror::columns_match_sql(oid), &[])
        .await
        .map_err(err)?
        .get(0);
    if same != Some(true) {
        return Err((
            "55000".to_string(),
            format!(
                "the columns of foreign table {} changed since stream tables were built over it; \
                 drop those stream tables and create them again (drop_stream_table, then \
                 create_stream_table; alter_stream_table keeps the old mirror)",
                source.qualified_name()
            ),
        ));
    }
    let file = file_stat::check(writer, oid).await.map_err(err)?;
    if file.as_ref().is_some_and(|f| f.unchanged) {
        writer.batch_execute("COMMIT").await.map_err(err)?;
        return Ok(Scanned {
            report: PollReport {
                skipped: true,
                ..PollReport::default()
            },
            file,
        });
    }
    let previous = match poller.take_cached(database, oid, seq) {
        Some(set) => set,
        None => load_multiset(writer, oid).await?,
    };
    // The first fill of a source no stream table reads yet goes straight into the mirror.
    let direct = previous.rows() == 0
        && writer
            .query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies \
                 WHERE source_relid = $1)",
                &[&oid],
            )
            .await
            .map_err(err)?
            .get::<_, bool>(0);
    let mut comparison = Comparison::new(previous);
    let scanned = scan(writer, reader, &source, &mut comparison, direct).await;
    let staged = match scanned {
        Ok(staged) => staged,
        Err(e) => {
            // Nothing was applied: the multiset still describes the mirror.
            poller.store(database, oid, seq, comparison.abandon());
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
        writer.batch_execute("COMMIT").await.map_err(err)?;
        poller.store(database, oid, seq, compared.next);
        return Ok(Scanned { report, file });
    }
    if !compared.vanished.is_empty() {
        let hashes: Vec<&[u8]> = compared.vanished.iter().map(|h| h.0.as_slice()).collect();
        writer
            .execute(&mirror::delete_vanished_sql(&source), &[&hashes])
            .await
            .map_err(err)?;
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
            .await
            .map_err(err)?;
    }
    if staged && !direct {
        writer
            .batch_execute(&mirror::apply_appeared_sql(&source))
            .await
            .map_err(err)?;
    }
    let next_seq: i64 = writer
        .query_one(
            "UPDATE pgtrickle.pgt_polled_sources SET poll_seq = poll_seq + 1 \
             WHERE foreign_relid = $1 RETURNING poll_seq",
            &[&oid],
        )
        .await
        .map_err(err)?
        .get(0);
    writer.batch_execute("COMMIT").await.map_err(err)?;
    poller.store(database, oid, next_seq, compared.next);
    Ok(Scanned { report, file })
}

/// Streams the foreign table through the comparison; rows that appeared are copied into the
/// staging table on the writer (into the mirror itself when `direct`). Returns whether
/// anything was copied.
async fn scan(
    writer: &Client,
    reader: &Client,
    source: &SourceTable,
    comparison: &mut Comparison,
    direct: bool,
) -> Result<bool, Failure> {
    let stream = reader
        .copy_out(&mirror::scan_sql(source))
        .await
        .map_err(err)?;
    let mut stream = std::pin::pin!(stream);
    let mut splitter = LineSplitter::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut sink: Option<std::pin::Pin<Box<CopyInSink<Bytes>>>> = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(err)?;
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
            send(writer, source.oid, direct, &mut sink, &mut pending).await?;
        }
    }
    if splitter.has_partial() {
        return Err((
            "08P01".to_string(),
            "the foreign table's COPY stream ended in the middle of a row".to_string(),
        ));
    }
    if !pending.is_empty() {
        send(writer, source.oid, direct, &mut sink, &mut pending).await?;
    }
    match sink {
        Some(mut s) => {
            s.as_mut().finish().await.map_err(err)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Sends staged lines, opening the staging table (or, `direct`, the mirror) and its COPY at
/// the first call.
async fn send(
    writer: &Client,
    oid: u32,
    direct: bool,
    sink: &mut Option<std::pin::Pin<Box<CopyInSink<Bytes>>>>,
    pending: &mut Vec<u8>,
) -> Result<(), Failure> {
    let s = match sink {
        Some(s) => s,
        None => {
            let copy = if direct {
                mirror::copy_mirror_sql(oid)
            } else {
                writer
                    .batch_execute(&mirror::create_staging_sql(oid))
                    .await
                    .map_err(err)?;
                mirror::copy_staging_sql(oid)
            };
            let s = writer.copy_in::<_, Bytes>(&copy).await.map_err(err)?;
            sink.insert(Box::pin(s))
        }
    };
    let chunk = Bytes::from(std::mem::take(pending));
    s.send(chunk).await.map_err(err)
}

/// The foreign table as a [`SourceTable`] (the connection's search_path is pg_catalog, so
/// types come out schema-qualified as the mirror's DDL needs them).
pub async fn describe(client: &Client, oid: u32) -> Result<SourceTable, Failure> {
    let rows = client
        .simple_query(&pgtrickle_cdc::describe_source_sql(oid))
        .await
        .map_err(err)?;
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
        return Err((
            "42P01".to_string(),
            format!("foreign table with OID {oid} no longer exists"),
        ));
    }
    SourceTable::new(oid, schema, name, columns).map_err(|e| ("0A000".to_string(), e.to_string()))
}

/// Rebuilds the multiset from the mirror's hash column (after a restart, or when another
/// proxy polled since).
async fn load_multiset(client: &Client, oid: u32) -> Result<HashMultiset, Failure> {
    let stream = client
        .copy_out(&mirror::load_hashes_sql(oid))
        .await
        .map_err(err)?;
    let mut stream = std::pin::pin!(stream);
    let mut splitter = LineSplitter::new();
    let mut builder = MultisetBuilder::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(err)?;
        splitter.feed::<Failure>(&chunk, |line| {
            let hash = mirror::parse_hash_line(line).ok_or_else(|| {
                (
                    "XX001".to_string(),
                    format!("mirror of foreign table {oid} holds a malformed row hash"),
                )
            })?;
            builder.push(hash, 1);
            Ok(())
        })?;
    }
    Ok(builder.build())
}
