//! Encoding the answer to an API call the way PostgreSQL answers a function call: a
//! RowDescription (text columns), DataRows, CommandComplete and ReadyForQuery; or an error.

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::ready_for_query::TransactionStatus;

/// Type OIDs used in RowDescriptions of API results.
pub mod oid {
    /// text
    pub const TEXT: u32 = 25;
    /// bool
    pub const BOOL: u32 = 16;
    /// int8
    pub const INT8: u32 = 20;
    /// int4
    pub const INT4: u32 = 23;
    /// timestamptz
    pub const TIMESTAMPTZ: u32 = 1184;
    /// void (the result type of create_stream_table and friends)
    pub const VOID: u32 = 2278;
}

/// A result column: name and type OID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Type OID (text format values are sent regardless).
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

fn finish(buf: &mut BytesMut, start: usize) {
    let len = (buf.len() - start - 1) as u32;
    buf[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

/// RowDescription for text-format columns.
pub fn row_description(buf: &mut BytesMut, columns: &[Column]) {
    let start = buf.len();
    buf.put_u8(b'T');
    buf.put_u32(0);
    buf.put_u16(columns.len() as u16);
    for c in columns {
        buf.put_slice(c.name.as_bytes());
        buf.put_u8(0);
        buf.put_u32(0); // table oid
        buf.put_i16(0); // column number
        buf.put_u32(c.type_oid);
        buf.put_i16(-1); // type size
        buf.put_i32(-1); // type modifier
        buf.put_i16(0); // text format
    }
    finish(buf, start);
}

/// One DataRow of text values (None is NULL).
pub fn data_row(buf: &mut BytesMut, values: &[Option<String>]) {
    let start = buf.len();
    buf.put_u8(b'D');
    buf.put_u32(0);
    buf.put_u16(values.len() as u16);
    for v in values {
        match v {
            Some(s) => {
                buf.put_i32(s.len() as i32);
                buf.put_slice(s.as_bytes());
            }
            None => buf.put_i32(-1),
        }
    }
    finish(buf, start);
}

/// CommandComplete with `tag`.
pub fn command_complete(buf: &mut BytesMut, tag: &str) {
    let start = buf.len();
    buf.put_u8(b'C');
    buf.put_u32(0);
    buf.put_slice(tag.as_bytes());
    buf.put_u8(0);
    finish(buf, start);
}

/// A whole simple-query answer: description, rows, `SELECT n`, ReadyForQuery.
pub fn rows_answer(
    columns: &[Column],
    rows: &[Vec<Option<String>>],
    status: TransactionStatus,
) -> Bytes {
    let mut buf = BytesMut::with_capacity(128);
    row_description(&mut buf, columns);
    for r in rows {
        data_row(&mut buf, r);
    }
    command_complete(&mut buf, &format!("SELECT {}", rows.len()));
    buf.put_slice(&status.encode());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_void_function_result() {
        let b = rows_answer(
            &[Column::new("create_stream_table", oid::VOID)],
            &[vec![Some(String::new())]],
            TransactionStatus::Idle,
        );
        assert_eq!(b[0], b'T');
        let t_len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        let d = &b[1 + t_len..];
        assert_eq!(d[0], b'D');
        assert_eq!(&d[5..11], &[0, 1, 0, 0, 0, 0]);
        assert!(b.ends_with(&[b'Z', 0, 0, 0, 5, b'I']));
    }
}
