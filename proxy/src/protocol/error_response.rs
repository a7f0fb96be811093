//! ErrorResponse (`E`) and NoticeResponse (`N`) messages written by the proxy itself.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

/// Severity of a message the proxy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Ends the session.
    Fatal,
    /// Ends the current statement.
    Error,
    /// Informational.
    Notice,
    /// A warning.
    Warning,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "FATAL",
            Severity::Error => "ERROR",
            Severity::Notice => "NOTICE",
            Severity::Warning => "WARNING",
        }
    }
}

/// An error or notice to send to a client, with the fields libpq shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// Severity.
    pub severity: Severity,
    /// Five-character SQLSTATE.
    pub code: Cow<'static, str>,
    /// Primary message.
    pub message: String,
    /// Optional detail.
    pub detail: Option<String>,
    /// Optional hint.
    pub hint: Option<String>,
}

impl ErrorResponse {
    /// A FATAL error (the proxy closes the connection after sending it).
    pub fn fatal(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(Severity::Fatal, code, message)
    }

    /// An ERROR (the statement fails, the session goes on).
    pub fn error(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(Severity::Error, code, message)
    }

    /// A message of any severity.
    pub fn new(
        severity: Severity,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        ErrorResponse {
            severity,
            code: code.into(),
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Encodes as `E` (errors) or `N` (notices and warnings).
    pub fn encode(&self) -> Bytes {
        let tag = match self.severity {
            Severity::Fatal | Severity::Error => b'E',
            Severity::Notice | Severity::Warning => b'N',
        };
        let mut buf = BytesMut::with_capacity(64 + self.message.len());
        buf.put_u8(tag);
        buf.put_u32(0);
        let mut field = |code: u8, value: &str| {
            buf.put_u8(code);
            // A NUL inside a value would end the field early: drop it.
            buf.extend(value.bytes().filter(|&b| b != 0));
            buf.put_u8(0);
        };
        field(b'S', self.severity.as_str());
        field(b'V', self.severity.as_str());
        field(b'C', &self.code);
        field(b'M', &self.message);
        if let Some(d) = &self.detail {
            field(b'D', d);
        }
        if let Some(h) = &self.hint {
            field(b'H', h);
        }
        buf.put_u8(0);
        let len = (buf.len() - 1) as u32;
        buf[1..5].copy_from_slice(&len.to_be_bytes());
        buf.freeze()
    }
}

/// Reads one field of an ErrorResponse or NoticeResponse body.
pub fn field_of(body: &[u8], code: u8) -> Option<&str> {
    let mut rest = body;
    while let Some((&c, tail)) = rest.split_first() {
        if c == 0 {
            return None;
        }
        let end = tail.iter().position(|&b| b == 0)?;
        if c == code {
            return std::str::from_utf8(&tail[..end]).ok();
        }
        rest = &tail[end + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_fields_and_reads_them_back() {
        let e = ErrorResponse::fatal("08006", "upstream gone").with_hint("retry");
        let bytes = e.encode();
        assert_eq!(bytes[0], b'E');
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        assert_eq!(len + 1, bytes.len());
        let body = &bytes[5..];
        assert_eq!(field_of(body, b'C'), Some("08006"));
        assert_eq!(field_of(body, b'M'), Some("upstream gone"));
        assert_eq!(field_of(body, b'H'), Some("retry"));
        assert_eq!(field_of(body, b'D'), None);
    }
}
