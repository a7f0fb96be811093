//! What the proxy knows about a live session, shared with whoever needs it (the stream-table
//! engine will read the transaction status to know when a client's writes have committed).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::protocol::ready_for_query::TransactionStatus;

/// A live session's identity and transaction status.
#[derive(Debug)]
pub struct SessionState {
    /// The role the client logged in as.
    pub user: String,
    /// The database the client connected to.
    pub database: String,
    tx_status: AtomicU8,
    terminated: AtomicBool,
}

impl SessionState {
    /// A session that has just logged in (idle).
    pub fn new(user: String, database: String) -> SessionState {
        SessionState {
            user,
            database,
            tx_status: AtomicU8::new(TransactionStatus::Idle as u8),
            terminated: AtomicBool::new(false),
        }
    }

    /// The transaction status from the last ReadyForQuery.
    pub fn tx_status(&self) -> TransactionStatus {
        TransactionStatus::from_byte(self.tx_status.load(Ordering::Acquire))
            .unwrap_or(TransactionStatus::Idle)
    }

    /// Records the status of a ReadyForQuery (ignores invalid bytes).
    pub fn set_tx_status(&self, byte: u8) {
        if TransactionStatus::from_byte(byte).is_some() {
            self.tx_status.store(byte, Ordering::Release);
        }
    }

    /// Records that the client sent Terminate: the server closing afterwards is expected.
    pub fn set_terminated(&self) {
        self.terminated.store(true, Ordering::Release);
    }

    /// True once the client sent Terminate.
    pub fn terminated(&self) -> bool {
        self.terminated.load(Ordering::Acquire)
    }
}
