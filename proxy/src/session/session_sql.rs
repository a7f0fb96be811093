//! Running SQL on a session's own upstream connection, for the stream-table engine: a small
//! simple-query client over the already authenticated connection. Notifications that arrive
//! meanwhile are kept for the client; the parameter changes of the engine's own statements are
//! not (they set and restore what they change).

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::protocol::command_complete::{is_write_tag, rows_in_tag, CommandComplete};
use crate::protocol::copy_fail::CopyFail;
use crate::protocol::data_row::DataRow;
use crate::protocol::error_response::field_of;
use crate::protocol::framer::message_header;
use crate::protocol::query::Query;
use crate::protocol::ready_for_query::TransactionStatus;
use crate::protocol::row_description::RowDescription;
use crate::protocol::MAX_MESSAGE_LEN;

/// The rows of one statement, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultSet {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows; None is NULL.
    pub rows: Vec<Vec<Option<String>>>,
    /// The server's command tag (`SELECT 1`, `INSERT 0 3`...); None where the connection's
    /// client does not report it (tokio-postgres, on the proxy's own connections) and for an
    /// empty query.
    pub tag: Option<String>,
    /// The number of rows the statement returned or affected: the count at the end of the
    /// command tag, None when the tag has none (`CREATE TABLE`). On the proxy's own connections
    /// it is tokio-postgres's count, which is 0 for a tag without one.
    pub rows_affected: Option<u64>,
}

impl ResultSet {
    /// The result of a statement that ended with CommandComplete `tag`.
    fn completed(&mut self, tag: String) {
        self.rows_affected = rows_in_tag(&tag);
        self.tag = Some(tag);
    }
}

/// A failed query.
#[derive(Debug, Error)]
pub enum SqlError {
    /// The server reported an error; `raw` is its ErrorResponse, ready to relay.
    #[error("{code}: {message}")]
    Server {
        /// SQLSTATE.
        code: String,
        /// Message.
        message: String,
        /// The whole ErrorResponse message.
        raw: Bytes,
    },
    /// The connection failed.
    #[error("upstream connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent something this client does not handle.
    #[error("unexpected message {0:?} from server")]
    Unexpected(char),
}

/// A simple-query client over a session's upstream connection halves.
pub struct SessionSql<'a> {
    reader: &'a mut (dyn AsyncRead + Unpin + Send),
    writer: &'a mut (dyn AsyncWrite + Unpin + Send),
    buf: &'a mut BytesMut,
    /// Asynchronous messages to pass on to the client.
    pub for_client: Vec<Bytes>,
    tx_status: TransactionStatus,
}

impl<'a> SessionSql<'a> {
    /// Wraps the halves of an idle session's connection; `buf` holds bytes already read.
    pub fn new(
        reader: &'a mut (dyn AsyncRead + Unpin + Send),
        writer: &'a mut (dyn AsyncWrite + Unpin + Send),
        buf: &'a mut BytesMut,
        tx_status: TransactionStatus,
    ) -> SessionSql<'a> {
        SessionSql {
            reader,
            writer,
            buf,
            for_client: Vec::new(),
            tx_status,
        }
    }

    /// The transaction status after the last query.
    pub fn tx_status(&self) -> TransactionStatus {
        self.tx_status
    }

    async fn next_message(&mut self) -> Result<Bytes, SqlError> {
        loop {
            match message_header(self.buf, MAX_MESSAGE_LEN) {
                Err(_) => return Err(SqlError::Unexpected(char::from(self.buf[0]))),
                Ok(Some((_, total))) => {
                    if self.buf.len() >= total {
                        return Ok(self.buf.split_to(total).freeze());
                    }
                    self.buf.reserve((total - self.buf.len()).min(1 << 20));
                }
                Ok(None) => self.buf.reserve(8192),
            }
            if self.reader.read_buf(self.buf).await? == 0 {
                return Err(SqlError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    async fn send_query(&mut self, sql: &str) -> Result<(), SqlError> {
        self.writer.write_all(&Query::encode(sql)).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// Runs one or more statements in a simple Query and returns one result per statement;
    /// the first error ends the query (the server skips the rest), as in psql.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<ResultSet>, SqlError> {
        self.send_query(sql).await?;
        let mut results = Vec::new();
        let mut current = ResultSet::default();
        let mut error = None;
        loop {
            let m = self.next_message().await?;
            let body = &m[5..];
            match m[0] {
                // A malformed message fails the query, which is still read up to its
                // ReadyForQuery so that the connection stays in step.
                b'T' => match RowDescription::decode(body) {
                    Some(d) => {
                        current.columns = d
                            .fields
                            .iter()
                            .map(|f| String::from_utf8_lossy(f.name).into_owned())
                            .collect()
                    }
                    None => malformed(&mut error, 'T'),
                },
                b'D' => match DataRow::decode(body) {
                    Some(row) => current.rows.push(row.to_text_lossy()),
                    None => malformed(&mut error, 'D'),
                },
                b'C' => {
                    match CommandComplete::decode(body) {
                        Some(c) => current.completed(String::from_utf8_lossy(c.tag).into_owned()),
                        None => malformed(&mut error, 'C'),
                    }
                    results.push(std::mem::take(&mut current));
                }
                b'I' => results.push(std::mem::take(&mut current)),
                b'E' => {
                    error = Some(SqlError::Server {
                        code: field_of(body, b'C').unwrap_or("XX000").to_string(),
                        message: field_of(body, b'M').unwrap_or("").to_string(),
                        raw: m.clone(),
                    })
                }
                b'Z' => {
                    if let Some(status) = TransactionStatus::decode(body) {
                        self.tx_status = status;
                    }
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(results),
                    };
                }
                // Notices of the engine's own statements are not the client's business; nor are
                // the parameter changes they report (PostgreSQL 18 reports search_path, which
                // the engine's functions set for their own run and restore on exit).
                b'N' | b'S' => {}
                b'A' => self.for_client.push(m),
                other => return Err(SqlError::Unexpected(char::from(other))),
            }
        }
    }
}

/// Notes a malformed message from the server as the query's error, unless it already has one.
fn malformed(error: &mut Option<SqlError>, tag: char) {
    error.get_or_insert(SqlError::Unexpected(tag));
}

/// What the server answered to a statement run for the client with [`SessionSql::relay`].
#[derive(Debug, Default)]
pub struct Relayed {
    /// Its messages for the client, in order, without the ReadyForQuery.
    pub messages: BytesMut,
    /// True when it ended with an ErrorResponse.
    pub failed: bool,
    /// True when a command that writes (INSERT, UPDATE, DELETE, MERGE, COPY) completed.
    pub wrote: bool,
    /// True when the answer was larger than the budget: the rest was read and dropped.
    pub overflowed: bool,
}

impl SessionSql<'_> {
    /// Runs `sql` (one statement) in a simple Query on behalf of the client and keeps every
    /// message of the answer for it (rows, notices, COPY TO STDOUT data...) but the final
    /// ReadyForQuery. A `COPY ... FROM STDIN` is failed with CopyFail, since the client's data
    /// cannot be read meanwhile. At most `budget` bytes are kept; the rest of a larger
    /// answer is read and dropped, and [`Relayed::overflowed`] says so.
    pub async fn relay(&mut self, sql: &str, budget: usize) -> Result<Relayed, SqlError> {
        self.send_query(sql).await?;
        let mut out = Relayed::default();
        loop {
            let m = self.next_message().await?;
            match m[0] {
                b'Z' => {
                    if let Some(status) = TransactionStatus::decode(&m[5..]) {
                        self.tx_status = status;
                    }
                    return Ok(out);
                }
                b'G' | b'W' => {
                    let fail = CopyFail::encode(
                        "COPY FROM STDIN is not supported in a query string that also calls \
                         pgtrickle functions",
                    );
                    self.writer.write_all(&fail).await?;
                    self.writer.flush().await?;
                }
                tag => {
                    out.failed |= tag == b'E';
                    out.wrote |= tag == b'C' && is_write_tag(&m[5..]);
                    if out.messages.len() + m.len() > budget {
                        out.overflowed = true;
                    } else if !out.overflowed {
                        out.messages.extend_from_slice(&m);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_keeps_the_tag_and_its_count() {
        let mut r = ResultSet::default();
        r.completed("INSERT 0 3".into());
        assert_eq!(r.tag.as_deref(), Some("INSERT 0 3"));
        assert_eq!(r.rows_affected, Some(3));
        r.completed("SET".into());
        assert_eq!(r.tag.as_deref(), Some("SET"));
        assert_eq!(r.rows_affected, None);
    }
}
