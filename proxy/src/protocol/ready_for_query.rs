//! ReadyForQuery (`Z`): the server is idle and tells the transaction status.

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

    /// Encodes a whole ReadyForQuery message with this status.
    pub fn encode(self) -> [u8; 6] {
        [b'Z', 0, 0, 0, 5, self as u8]
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
}
