//! Execute (`E`): runs a portal (extended protocol).

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{begin, end, put_cstr, Reader};

/// A decoded Execute body. The row limit that follows the name is not read: the calls the
/// proxy answers itself return one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Execute<'a> {
    /// The portal's name (empty: the unnamed portal).
    pub portal: &'a str,
}

impl<'a> Execute<'a> {
    /// Decodes an Execute body; None when the portal name is malformed.
    pub fn decode(body: &'a [u8]) -> Option<Execute<'a>> {
        Some(Execute {
            portal: Reader::new(body).cstr()?,
        })
    }

    /// Encodes a whole Execute message (`max_rows` 0: no limit).
    pub fn encode(portal: &str, max_rows: u32) -> Bytes {
        let mut buf = BytesMut::with_capacity(portal.len() + 10);
        let start = begin(&mut buf, b'E');
        put_cstr(&mut buf, portal.as_bytes());
        buf.put_u32(max_rows);
        end(&mut buf, start);
        buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = Execute::encode("p1", 0);
        assert_eq!(&m[..], b"E\0\0\0\x0bp1\0\0\0\0\0");
        assert_eq!(Execute::decode(&m[5..]), Some(Execute { portal: "p1" }));
    }

    #[test]
    fn refuses_malformed_bodies() {
        assert_eq!(Execute::decode(b""), None);
        assert_eq!(Execute::decode(b"p1"), None);
        assert_eq!(Execute::decode(b"\xfe\0\0\0\0\0"), None);
    }
}
