//! The requests of a session the server has not finished answering, in order, and what ends
//! each answer: ReadyForQuery for Query, Sync and FunctionCall; ParseComplete, BindComplete,
//! CloseComplete, the end of an Execute (CommandComplete, EmptyQueryResponse, PortalSuspended)
//! or of a Describe (RowDescription, NoData) for the extended-protocol messages, whose answers
//! the server may hold until a Flush or Sync. An error answering an extended-protocol message
//! makes the server skip the rest up to Sync. The engine answers an API call only when nothing
//! is pending, so its answers fall in place among the server's, also in the middle of a batch.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

/// What a server message did to the pending requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// Nothing of note.
    Nothing,
    /// An extended-protocol request failed: the server skips to the next Sync.
    BatchFailed,
    /// A Sync was answered (the batch, failed or not, is over).
    Synced,
}

/// The pending requests of one session.
#[derive(Default)]
pub struct Pending {
    queue: Mutex<VecDeque<u8>>,
    idle: Notify,
}

fn is_extended(tag: u8) -> bool {
    matches!(tag, b'P' | b'B' | b'E' | b'D' | b'C')
}

impl Pending {
    /// A client message went to the server.
    pub fn sent(&self, tag: u8) {
        if matches!(tag, b'Q' | b'S' | b'F') || is_extended(tag) {
            self.lock().push_back(tag);
        }
    }

    /// A server message (its tag) arrived.
    pub fn received(&self, tag: u8) -> Answered {
        let mut queue = self.lock();
        let Some(&head) = queue.front() else {
            return Answered::Nothing;
        };
        let mut answered = Answered::Nothing;
        let done = match (head, tag) {
            (b'Q' | b'F', b'Z') => true,
            (b'S', b'Z') => {
                answered = Answered::Synced;
                true
            }
            (b'P', b'1') | (b'B', b'2') | (b'C', b'3') => true,
            (b'E', b'C' | b'I' | b's') | (b'D', b'T' | b'n') => true,
            (h, b'E') if is_extended(h) => {
                while queue.front().is_some_and(|&t| is_extended(t)) {
                    queue.pop_front();
                }
                answered = Answered::BatchFailed;
                false
            }
            _ => false,
        };
        if done {
            queue.pop_front();
        }
        if queue.is_empty() {
            self.idle.notify_waiters();
        }
        answered
    }

    /// Waits until the server has answered every request.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.lock().is_empty() {
                return;
            }
            notified.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<u8>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_pipeline_and_its_error() {
        let p = Pending::default();
        for t in *b"PBES" {
            p.sent(t);
        }
        for t in *b"12TDC" {
            assert_eq!(p.received(t), Answered::Nothing);
        }
        assert_eq!(p.received(b'Z'), Answered::Synced);
        assert!(p.lock().is_empty());
        for t in *b"PBEPBE" {
            p.sent(t);
        }
        p.received(b'1');
        assert_eq!(p.received(b'E'), Answered::BatchFailed);
        assert!(
            p.lock().is_empty(),
            "the server skips the rest of the batch"
        );
        p.sent(b'S');
        assert_eq!(p.received(b'Z'), Answered::Synced);
    }

    #[test]
    fn a_query_ends_at_ready_for_query_even_after_an_error() {
        let p = Pending::default();
        p.sent(b'Q');
        p.received(b'E');
        assert!(!p.lock().is_empty());
        p.received(b'Z');
        assert!(p.lock().is_empty());
    }
}
