//! ReadyForQuery (`Z`): the server is idle and tells the transaction status.

use bytes::Bytes;

/// Length of a whole ReadyForQuery message: tag, length 5, status.
pub const LEN: usize = 6;

/// A session's transaction status as the last ReadyForQuery reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TransactionStatus {
    /// `I`: not in a transaction block.
    Idle = b'I',
    /// `T`: in a transaction block.
    InTransaction = b'T',
    /// `E`: in a failed transaction block (queries rejected until it ends).
    Failed = b'E',
}

impl TransactionStatus {
    /// Parses the status byte.
    pub fn from_byte(b: u8) -> Option<TransactionStatus> {
        match b {
            b'I' => Some(TransactionStatus::Idle),
            b'T' => Some(TransactionStatus::InTransaction),
            b'E' => Some(TransactionStatus::Failed),
            _ => None,
        }
    }

    /// Decodes a ReadyForQuery body (the status byte alone).
    pub fn decode(body: &[u8]) -> Option<TransactionStatus> {
        match body {
            [b] => TransactionStatus::from_byte(*b),
            _ => None,
        }
    }

    /// Encodes a whole ReadyForQuery message with this status.
    pub fn encode(self) -> [u8; 6] {
        [b'Z', 0, 0, 0, 5, self as u8]
    }
}

/// `answer` without the ReadyForQuery it ends with; all of it when it does not end with one.
pub fn without_trailing(answer: &[u8]) -> &[u8] {
    match answer.len().checked_sub(LEN) {
        Some(at) if is_ready_for_query(&answer[at..]) => &answer[..at],
        _ => answer,
    }
}

/// [`without_trailing`] for a message buffer, without a copy.
pub fn strip_trailing(answer: &Bytes) -> Bytes {
    answer.slice(..without_trailing(answer).len())
}

fn is_ready_for_query(message: &[u8]) -> bool {
    match message.split_first() {
        Some((b'Z', rest)) => {
            rest.get(..4) == Some(&[0, 0, 0, 5][..])
                && TransactionStatus::decode(&rest[4..]).is_some()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_encodes() {
        for s in [
            TransactionStatus::Idle,
            TransactionStatus::InTransaction,
            TransactionStatus::Failed,
        ] {
            assert_eq!(TransactionStatus::from_byte(s.encode()[5]), Some(s));
        }
        assert_eq!(TransactionStatus::from_byte(b'x'), None);
    }

    #[test]
    fn round_trips() {
        let m = TransactionStatus::InTransaction.encode();
        assert_eq!(m.len(), LEN);
        assert_eq!(
            TransactionStatus::decode(&m[5..]),
            Some(TransactionStatus::InTransaction)
        );
        assert_eq!(TransactionStatus::decode(b""), None);
        assert_eq!(TransactionStatus::decode(b"II"), None);
        assert_eq!(TransactionStatus::decode(b"x"), None);
    }

    #[test]
    fn strips_only_a_trailing_ready_for_query() {
        let mut answer = b"C\0\0\0\x0dSELECT 1\0".to_vec();
        let body_len = answer.len();
        answer.extend_from_slice(&TransactionStatus::Failed.encode());
        let answer = Bytes::from(answer);
        assert_eq!(strip_trailing(&answer).len(), body_len);
        assert_eq!(without_trailing(&answer[..body_len]), &answer[..body_len]);
        assert_eq!(without_trailing(b"Z\0\0\0\x05x"), b"Z\0\0\0\x05x");
        assert_eq!(without_trailing(b"Z\0\0\0\x05I"), b"");
        assert_eq!(without_trailing(b"Z\0\0"), b"Z\0\0");
    }
}
