//! ParameterDescription (`t`): the types of a prepared statement's parameters (the answer to
//! Describe of a statement, before its RowDescription or NoData).

use bytes::{BufMut, BytesMut};

use super::codec::{begin, end, Reader};

/// A decoded ParameterDescription body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterDescription {
    /// The parameters' type OIDs, in order.
    pub types: Vec<u32>,
}

impl ParameterDescription {
    /// Decodes a ParameterDescription body; None when it is truncated.
    pub fn decode(body: &[u8]) -> Option<ParameterDescription> {
        let mut r = Reader::new(body);
        let count = r.i16()? as u16;
        let mut types = Vec::new();
        for _ in 0..count {
            types.push(r.u32()?);
        }
        Some(ParameterDescription { types })
    }

    /// Appends a ParameterDescription of `types` to `buf`.
    pub fn encode(buf: &mut BytesMut, types: &[u32]) {
        let start = begin(buf, b't');
        buf.put_u16(types.len() as u16);
        for &t in types {
            buf.put_u32(t);
        }
        end(buf, start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut buf = BytesMut::new();
        ParameterDescription::encode(&mut buf, &[25, 16]);
        assert_eq!(&buf[..], b"t\0\0\0\x0e\0\x02\0\0\0\x19\0\0\0\x10");
        assert_eq!(
            ParameterDescription::decode(&buf[5..]),
            Some(ParameterDescription {
                types: vec![25, 16]
            })
        );
    }

    #[test]
    fn refuses_malformed_bodies() {
        assert_eq!(ParameterDescription::decode(b""), None);
        assert_eq!(ParameterDescription::decode(b"\0"), None);
        assert_eq!(ParameterDescription::decode(b"\0\x01\0\0\0"), None);
    }
}
