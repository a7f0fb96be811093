//! The answer to an API call the way PostgreSQL answers a function call: a RowDescription
//! (text columns), DataRows, CommandComplete and ReadyForQuery (the messages are encoded in
//! [`crate::protocol`]).

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::command_complete::CommandComplete;
use crate::protocol::data_row::DataRow;
use crate::protocol::ready_for_query::TransactionStatus;
use crate::protocol::row_description::{Column, RowDescription};

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

/// A whole simple-query answer: description, rows, `SELECT n`, ReadyForQuery.
pub fn rows_answer(
    columns: &[Column],
    rows: &[Vec<Option<String>>],
    status: TransactionStatus,
) -> Bytes {
    let mut buf = BytesMut::with_capacity(128);
    RowDescription::encode(&mut buf, columns);
    for r in rows {
        DataRow::encode(&mut buf, r);
    }
    CommandComplete::encode(&mut buf, &format!("SELECT {}", rows.len()));
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
