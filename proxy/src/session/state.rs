//! What the proxy knows about a live session, shared with whoever needs it (the stream-table
//! engine will read the transaction status to know when a client's writes have committed).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::metrics::traffic::SessionTraffic;
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
    unsynced: AtomicBool,
    batch_failed: AtomicBool,
    traffic: Option<SessionTraffic>,
}

impl SessionState {
    /// A session that has just logged in (idle).
    pub fn new(user: String, database: String) -> SessionState {
        SessionState {
            user,
            database,
            tx_status: AtomicU8::new(TransactionStatus::Idle as u8),
            terminated: AtomicBool::new(false),
            unsynced: AtomicBool::new(false),
            batch_failed: AtomicBool::new(false),
            traffic: None,
        }
    }

    /// Counts the session's bytes in `traffic` (`pgtrickle_bytes_total`).
    pub fn with_traffic(mut self, traffic: SessionTraffic) -> SessionState {
        self.traffic = Some(traffic);
        self
    }

    /// `n` bytes read from the client.
    #[inline]
    pub fn client_bytes(&self, n: usize) {
        if let Some(t) = &self.traffic {
            t.client_bytes(n);
        }
    }

    /// `n` bytes read from the server.
    #[inline]
    pub fn server_bytes(&self, n: usize) {
        if let Some(t) = &self.traffic {
            t.server_bytes(n);
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

    /// Records whether extended-protocol messages went to the server since the last Sync it was
    /// sent (a batch the server has open).
    pub fn set_unsynced(&self, open: bool) {
        self.unsynced.store(open, Ordering::Release);
    }

    /// True while the server has an extended-protocol batch open (messages sent, no Sync yet).
    pub fn unsynced(&self) -> bool {
        self.unsynced.load(Ordering::Acquire)
    }

    /// Records that the server failed a message of the open batch (it skips to Sync), or that
    /// the batch ended.
    pub fn set_batch_failed(&self, failed: bool) {
        self.batch_failed.store(failed, Ordering::Release);
    }

    /// True when the server failed a message of the open batch and skips to its Sync.
    pub fn batch_failed(&self) -> bool {
        self.batch_failed.load(Ordering::Acquire)
    }
}
