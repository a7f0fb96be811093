//! A byte-level PostgreSQL client for tests that need exact control of what goes on the wire
//! (pipelines, malformed messages, protocol versions) and the exact bytes that come back.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One backend message: tag and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Tag byte.
    pub tag: u8,
    /// Body (after the length).
    pub body: Vec<u8>,
}

impl Message {
    /// The SQLSTATE of an ErrorResponse or NoticeResponse.
    pub fn sqlstate(&self) -> Option<String> {
        self.field(b'C')
    }

    /// A field of an ErrorResponse or NoticeResponse.
    pub fn field(&self, code: u8) -> Option<String> {
        let mut rest = &self.body[..];
        while let Some((&c, tail)) = rest.split_first() {
            if c == 0 {
                break;
            }
            let end = tail.iter().position(|&b| b == 0)?;
            if c == code {
                return Some(String::from_utf8_lossy(&tail[..end]).into_owned());
            }
            rest = &tail[end + 1..];
        }
        None
    }
}

/// A raw connection.
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
}

/// Encodes a tagged frontend message.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// Encodes a StartupMessage with the given version and parameters.
pub fn startup_message(version: u32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = (body.len() as u32 + 4).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// A NUL-terminated string.
pub fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Parse (unnamed statement unless `name`), no parameter types.
pub fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut b = cstr(name);
    b.extend(cstr(sql));
    b.extend_from_slice(&0u16.to_be_bytes());
    message(b'P', &b)
}

/// Bind portal to statement with no parameters, text results.
pub fn bind(portal: &str, statement: &str) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend(cstr(statement));
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    message(b'B', &b)
}

/// Execute portal with no row limit.
pub fn execute(portal: &str) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend_from_slice(&0u32.to_be_bytes());
    message(b'E', &b)
}

/// Describe portal.
pub fn describe_portal(portal: &str) -> Vec<u8> {
    let mut b = vec![b'P'];
    b.extend(cstr(portal));
    message(b'D', &b)
}

/// Sync.
pub fn sync() -> Vec<u8> {
    message(b'S', &[])
}

/// Flush.
pub fn flush() -> Vec<u8> {
    message(b'H', &[])
}

/// Simple Query.
pub fn query(sql: &str) -> Vec<u8> {
    message(b'Q', &cstr(sql))
}

impl RawClient {
    /// Connects to 127.0.0.1:port without sending anything.
    pub fn connect(port: u16) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        RawClient { stream }
    }

    /// Connects and logs in as `user` to `db` with trust authentication; returns the
    /// messages up to and including the first ReadyForQuery.
    pub fn login(port: u16, user: &str, db: &str) -> (RawClient, Vec<Message>) {
        let mut c = RawClient::connect(port);
        c.send(&startup_message(
            3 << 16,
            &[("user", user), ("database", db)],
        ));
        let msgs = c.read_until_ready();
        (c, msgs)
    }

    /// Writes bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads one message; None at end of stream or on error.
    pub fn read_message(&mut self) -> Option<Message> {
        let mut header = [0u8; 5];
        self.stream.read_exact(&mut header).ok()?;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len.checked_sub(4)?];
        self.stream.read_exact(&mut body).ok()?;
        Some(Message {
            tag: header[0],
            body,
        })
    }

    /// Reads one raw byte (answers to SSLRequest and GSSENCRequest).
    pub fn read_byte(&mut self) -> Option<u8> {
        let mut b = [0u8; 1];
        self.stream.read_exact(&mut b).ok()?;
        Some(b[0])
    }

    /// Reads messages up to and including the next ReadyForQuery (panics if the stream ends).
    pub fn read_until_ready(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        loop {
            let m = self
                .read_message()
                .unwrap_or_else(|| panic!("stream ended before ReadyForQuery; got {out:?}"));
            let done = m.tag == b'Z';
            out.push(m);
            if done {
                return out;
            }
        }
    }

    /// Reads messages until the stream ends (or a read fails).
    pub fn read_to_end(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = self.read_message() {
            out.push(m);
        }
        out
    }

    /// True when the server closed the connection (a read returns end of stream or an error).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        !matches!(self.stream.read(&mut b), Ok(n) if n > 0)
    }
}

/// Encodes a CancelRequest.
pub fn cancel_request(pid: u32, secret: u32) -> Vec<u8> {
    let mut v = 16u32.to_be_bytes().to_vec();
    v.extend_from_slice(&80_877_102u32.to_be_bytes());
    v.extend_from_slice(&pid.to_be_bytes());
    v.extend_from_slice(&secret.to_be_bytes());
    v
}
