//! Running SQL on a session's own upstream connection, for the stream-table engine: a small
//! simple-query client over the already authenticated connection. Asynchronous messages that
//! arrive meanwhile (notifications, parameter changes) are kept for the client.

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::protocol::error_response::field_of;
use crate::protocol::framer::message_header;
use crate::protocol::ready_for_query::TransactionStatus;
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

/// The row count a CommandComplete tag ends with (`INSERT 0 3`, `SELECT 2`, `COPY 5`), if any.
pub fn rows_in_tag(tag: &str) -> Option<u64> {
    let (_, count) = tag.rsplit_once(' ')?;
    count.parse().ok()
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
        let mut msg = BytesMut::with_capacity(sql.len() + 6);
        msg.extend_from_slice(b"Q");
        msg.extend_from_slice(&(sql.len() as u32 + 5).to_be_bytes());
        msg.extend_from_slice(sql.as_bytes());
        msg.extend_from_slice(b"\0");
        self.writer.write_all(&msg).await?;
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
                b'T' => current.columns = parse_row_description(body),
                b'D' => current.rows.push(parse_data_row(body)),
                b'C' => {
                    current.completed(cstr(body));
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
                    if let Some(status) =
                        body.first().and_then(|&b| TransactionStatus::from_byte(b))
                    {
                        self.tx_status = status;
                    }
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(results),
                    };
                }
                // Notices of the engine's own statements are not the client's business.
                b'N' => {}
                b'A' | b'S' => self.for_client.push(m),
                other => return Err(SqlError::Unexpected(char::from(other))),
            }
        }
    }
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
                    if let Some(status) = m.get(5).and_then(|&b| TransactionStatus::from_byte(b)) {
                        self.tx_status = status;
                    }
                    return Ok(out);
                }
                b'G' | b'W' => {
                    let reason = b"COPY FROM STDIN is not supported in a query string that also \
                                   calls pgtrickle functions\0";
                    let mut fail = BytesMut::with_capacity(reason.len() + 5);
                    fail.extend_from_slice(b"f");
                    fail.extend_from_slice(&(reason.len() as u32 + 4).to_be_bytes());
                    fail.extend_from_slice(reason);
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

/// True for the CommandComplete tags of statements that write.
pub fn is_write_tag(tag: &[u8]) -> bool {
    [&b"INSERT"[..], b"UPDATE", b"DELETE", b"COPY", b"MERGE"]
        .iter()
        .any(|w| tag.starts_with(w))
}

fn cstr(body: &[u8]) -> String {
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    String::from_utf8_lossy(&body[..end]).into_owned()
}

fn parse_row_description(body: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let Some(count) = body.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
        return names;
    };
    let mut rest = &body[2..];
    for _ in 0..count {
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        names.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        rest = rest.get(end + 1 + 18..).unwrap_or_default();
    }
    names
}

fn parse_data_row(body: &[u8]) -> Vec<Option<String>> {
    let mut values = Vec::new();
    let Some(count) = body.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
        return values;
    };
    let mut rest = &body[2..];
    for _ in 0..count {
        let Some(len) = rest
            .get(..4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            break;
        };
        rest = &rest[4..];
        if len < 0 {
            values.push(None);
        } else {
            let len = (len as usize).min(rest.len());
            values.push(Some(String::from_utf8_lossy(&rest[..len]).into_owned()));
            rest = &rest[len..];
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_in_command_tags() {
        assert_eq!(rows_in_tag("INSERT 0 3"), Some(3));
        assert_eq!(rows_in_tag("UPDATE 12"), Some(12));
        assert_eq!(rows_in_tag("DELETE 0"), Some(0));
        assert_eq!(rows_in_tag("SELECT 1"), Some(1));
        assert_eq!(rows_in_tag("MERGE 7"), Some(7));
        assert_eq!(rows_in_tag("COPY 5"), Some(5));
        assert_eq!(rows_in_tag("CREATE TABLE"), None);
        assert_eq!(rows_in_tag("BEGIN"), None);
        assert_eq!(rows_in_tag("123"), None);
        assert_eq!(rows_in_tag(""), None);
    }

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
