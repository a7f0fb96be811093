//! Parse (`P`): creates a prepared statement from a query string (extended protocol).

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{begin, end, put_cstr, Reader};

/// A decoded Parse body. The parameter type OIDs that follow the query are not read: the proxy
/// types the parameters of the statements it answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parse<'a> {
    /// The prepared statement's name (empty: the unnamed statement).
    pub statement: &'a str,
    /// The query string.
    pub query: &'a str,
}

impl<'a> Parse<'a> {
    /// The statement name alone, the first field; None when it is malformed.
    pub fn statement_name(body: &'a [u8]) -> Option<&'a str> {
        Reader::new(body).cstr()
    }

    /// Decodes the statement name and query string; None when either is missing its NUL or is
    /// not UTF-8.
    pub fn decode(body: &'a [u8]) -> Option<Parse<'a>> {
        let mut r = Reader::new(body);
        Some(Parse {
            statement: r.cstr()?,
            query: r.cstr()?,
        })
    }

    /// Encodes a whole Parse message with the given parameter type OIDs (0: unspecified).
    pub fn encode(statement: &str, query: &str, param_types: &[u32]) -> Bytes {
        let mut buf = BytesMut::with_capacity(statement.len() + query.len() + 9);
        let start = begin(&mut buf, b'P');
        put_cstr(&mut buf, statement.as_bytes());
        put_cstr(&mut buf, query.as_bytes());
        buf.put_i16(param_types.len() as i16);
        for &t in param_types {
            buf.put_u32(t);
        }
        end(&mut buf, start);
        buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = Parse::encode("s1", "SELECT $1", &[25]);
        assert_eq!(m[0], b'P');
        assert_eq!(
            u32::from_be_bytes([m[1], m[2], m[3], m[4]]) as usize,
            m.len() - 1
        );
        let p = Parse::decode(&m[5..]).unwrap();
        assert_eq!(p.statement, "s1");
        assert_eq!(p.query, "SELECT $1");
        assert_eq!(Parse::statement_name(&m[5..]), Some("s1"));
    }

    #[test]
    fn refuses_malformed_bodies() {
        assert_eq!(Parse::statement_name(b"s1"), None);
        assert_eq!(Parse::decode(b"s1\0SELECT 1"), None);
        assert_eq!(Parse::decode(b"s1\0SELECT \xff\0"), None);
        assert_eq!(Parse::statement_name(b"s1\0SELECT 1"), Some("s1"));
        assert_eq!(Parse::decode(b""), None);
    }
}
