//! RowDescription (`T`): the columns of the rows that follow (or that a portal would return).

use bytes::{BufMut, BytesMut};

use super::codec::{begin, end, put_cstr, Reader};

/// A column the proxy describes: name and type OID (its values are always sent as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
}

impl Column {
    /// A column of type `type_oid`.
    pub fn new(name: &str, type_oid: u32) -> Column {
        Column {
            name: name.to_string(),
            type_oid,
        }
    }
}

/// One field of a decoded RowDescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// Column name (as sent: the server's encoding).
    pub name: &'a [u8],
    /// OID of the table the column comes from, or 0.
    pub table_oid: u32,
    /// Attribute number of the column in that table, or 0.
    pub column: i16,
    /// Type OID.
    pub type_oid: u32,
    /// Type size (negative: variable).
    pub type_size: i16,
    /// Type modifier.
    pub type_modifier: i32,
    /// Format code (0 text, 1 binary).
    pub format: i16,
}

/// A decoded RowDescription body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDescription<'a> {
    /// The fields, in column order.
    pub fields: Vec<Field<'a>>,
}

impl<'a> RowDescription<'a> {
    /// Decodes a RowDescription body; None when it is truncated or malformed.
    pub fn decode(body: &'a [u8]) -> Option<RowDescription<'a>> {
        let mut r = Reader::new(body);
        let count = r.i16()? as u16;
        let mut fields = Vec::new();
        for _ in 0..count {
            fields.push(Field {
                name: r.cstr_bytes()?,
                table_oid: r.u32()?,
                column: r.i16()?,
                type_oid: r.u32()?,
                type_size: r.i16()?,
                type_modifier: r.i32()?,
                format: r.i16()?,
            });
        }
        Some(RowDescription { fields })
    }

    /// Appends a RowDescription of text-format `columns` to `buf`.
    pub fn encode(buf: &mut BytesMut, columns: &[Column]) {
        let start = begin(buf, b'T');
        buf.put_u16(columns.len() as u16);
        for c in columns {
            put_cstr(buf, c.name.as_bytes());
            buf.put_u32(0); // table oid
            buf.put_i16(0); // column number
            buf.put_u32(c.type_oid);
            buf.put_i16(-1); // type size
            buf.put_i32(-1); // type modifier
            buf.put_i16(0); // text format
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
        RowDescription::encode(&mut buf, &[Column::new("a", 25), Column::new("bc", 2278)]);
        assert_eq!(buf[0], b'T');
        assert_eq!(
            u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize,
            buf.len() - 1
        );
        let d = RowDescription::decode(&buf[5..]).unwrap();
        let got: Vec<_> = d.fields.iter().map(|f| (f.name, f.type_oid)).collect();
        assert_eq!(got, vec![(&b"a"[..], 25), (&b"bc"[..], 2278)]);
        assert!(d
            .fields
            .iter()
            .all(|f| f.format == 0 && f.type_size == -1 && f.type_modifier == -1));
    }

    #[test]
    fn refuses_malformed_bodies() {
        let mut buf = BytesMut::new();
        RowDescription::encode(&mut buf, &[Column::new("col", 25)]);
        let body = &buf[5..];
        for cut in 0..body.len() {
            assert_eq!(RowDescription::decode(&body[..cut]), None, "cut at {cut}");
        }
        assert_eq!(
            RowDescription::decode(&[0, 0]),
            Some(RowDescription { fields: vec![] })
        );
    }
}
