//! `--max-client-connections`: how many client sessions may be open at once. A client past the
//! limit gets `FATAL 53300 sorry, too many clients already` after its startup packet (as from
//! PostgreSQL; a CancelRequest is still served) and sessions already open carry on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The limit and the sessions holding a place under it.
#[derive(Debug, Default)]
pub struct ClientLimit {
    max: usize,
    live: Arc<AtomicUsize>,
}

/// A session's place; given back on drop.
#[derive(Debug)]
pub struct ClientSlot(Option<Arc<AtomicUsize>>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Some(live) = &self.0 {
            live.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl ClientLimit {
    /// At most `max` sessions at once (0: no limit).
    pub fn new(max: usize) -> ClientLimit {
        ClientLimit {
            max,
            live: Arc::default(),
        }
    }

    /// A place for one more session, or None at the limit.
    pub fn acquire(&self) -> Option<ClientSlot> {
        if self.max == 0 {
            return Some(ClientSlot(None));
        }
        let mut live = self.live.load(Ordering::Acquire);
        loop {
            if live >= self.max {
                return None;
            }
            match self.live.compare_exchange_weak(
                live,
                live + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(ClientSlot(Some(Arc::clone(&self.live)))),
                Err(now) => live = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_given_back() {
        let limit = ClientLimit::new(2);
        let a = limit.acquire().unwrap();
        let _b = limit.acquire().unwrap();
        assert!(limit.acquire().is_none());
        drop(a);
        assert!(limit.acquire().is_some());
        let none = ClientLimit::new(0);
        let all: Vec<_> = (0..100).map(|_| none.acquire().unwrap()).collect();
        assert_eq!(all.len(), 100);
    }
}
