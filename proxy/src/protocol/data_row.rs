//! DataRow (`D`): one row of a result.

use bytes::{BufMut, BytesMut};

use super::codec::{begin, end, Reader};

/// A decoded DataRow body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRow<'a> {
    /// The column values as sent (text or binary, as the RowDescription says); None is NULL.
    pub values: Vec<Option<&'a [u8]>>,
}

impl<'a> DataRow<'a> {
    /// Decodes a DataRow body; None when it is truncated or a value is longer than the body.
    pub fn decode(body: &'a [u8]) -> Option<DataRow<'a>> {
        let mut r = Reader::new(body);
        let count = r.i16()? as u16;
        let mut values = Vec::new();
        for _ in 0..count {
            let len = r.i32()?;
            values.push(match usize::try_from(len) {
                Ok(len) => Some(r.bytes(len)?),
                Err(_) => None,
            });
        }
        Some(DataRow { values })
    }

    /// The values as text (invalid UTF-8 replaced).
    pub fn to_text_lossy(&self) -> Vec<Option<String>> {
        self.values
            .iter()
            .map(|v| v.map(|v| String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    /// Appends a DataRow of text `values` (None is NULL) to `buf`.
    pub fn encode<S: AsRef<[u8]>>(buf: &mut BytesMut, values: &[Option<S>]) {
        let start = begin(buf, b'D');
        buf.put_u16(values.len() as u16);
        for v in values {
            match v {
                Some(s) => {
                    let s = s.as_ref();
                    buf.put_i32(s.len() as i32);
                    buf.put_slice(s);
                }
                None => buf.put_i32(-1),
            }
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
        DataRow::encode(&mut buf, &[Some("x"), None, Some("")]);
        assert_eq!(
            &buf[..],
            b"D\0\0\0\x13\0\x03\0\0\0\x01x\xff\xff\xff\xff\0\0\0\0"
        );
        let row = DataRow::decode(&buf[5..]).unwrap();
        assert_eq!(row.values, vec![Some(&b"x"[..]), None, Some(&b""[..])]);
        assert_eq!(
            row.to_text_lossy(),
            vec![Some("x".to_string()), None, Some(String::new())]
        );
    }

    #[test]
    fn refuses_malformed_bodies() {
        let mut buf = BytesMut::new();
        DataRow::encode(&mut buf, &[Some("value"), None]);
        let body = &buf[5..];
        for cut in 0..body.len() {
            assert_eq!(DataRow::decode(&body[..cut]), None, "cut at {cut}");
        }
        // A length past the end of the body.
        assert_eq!(DataRow::decode(b"\0\x01\0\0\0\x09ab"), None);
    }
}
