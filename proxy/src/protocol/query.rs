//! Query (`Q`): a simple-protocol query string, one or more statements.

use bytes::Bytes;

use super::codec::{cstr_message, Reader};

/// A decoded Query body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    /// The query string (UTF-8, without its terminating NUL).
    pub sql: &'a str,
}

impl<'a> Query<'a> {
    /// Decodes a Query body; None when the string has no terminating NUL or is not UTF-8.
    pub fn decode(body: &'a [u8]) -> Option<Query<'a>> {
        Some(Query {
            sql: Reader::new(body).cstr()?,
        })
    }

    /// Encodes a whole Query message.
    pub fn encode(sql: &str) -> Bytes {
        cstr_message(b'Q', sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = Query::encode("SELECT 1");
        assert_eq!(&m[..], b"Q\0\0\0\x0dSELECT 1\0");
        assert_eq!(Query::decode(&m[5..]), Some(Query { sql: "SELECT 1" }));
    }

    #[test]
    fn refuses_malformed_bodies() {
        assert_eq!(Query::decode(b""), None);
        assert_eq!(Query::decode(b"SELECT 1"), None);
        assert_eq!(Query::decode(b"SELECT \xff\0"), None);
    }
}
