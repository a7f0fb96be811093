//! Caps the connections still in their startup phase (accepted, not yet logged in), so that
//! idle or slow unauthenticated connections cannot use up the proxy's file descriptors and
//! memory. At the cap, the oldest startup connection is closed to make room when it has had
//! [`EVICT_AFTER`] to log in (clients log in within milliseconds); otherwise the new one is
//! refused. A flood of idle connections therefore cannot lock real clients out for the whole
//! startup timeout.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long a startup connection is safe from being closed for a newer one.
pub const EVICT_AFTER: Duration = Duration::from_secs(1);

/// The startup connections of one listener.
#[derive(Debug)]
pub struct StartupLimit {
    max: usize,
    evict_after: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// Live startup connections, oldest first.
    live: VecDeque<Entry>,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    since: Instant,
    evict: Arc<Notify>,
}

/// What [`StartupLimit::admit`] decided.
#[derive(Debug)]
pub enum Admission {
    /// Admitted; `evicted_other` when the oldest startup connection was closed for it.
    Admitted {
        /// The connection's place until it has logged in.
        slot: StartupSlot,
        /// An older startup connection is being closed to make room.
        evicted_other: bool,
    },
    /// At the cap, and every startup connection is younger than the eviction age.
    Refused,
}

/// A connection's place among the startup connections; dropping it (login done, or the
/// connection gone) frees the place.
#[derive(Debug)]
pub struct StartupSlot {
    limit: Arc<StartupLimit>,
    id: u64,
    evict: Arc<Notify>,
}

impl StartupLimit {
    /// At most `max` (at least 1) connections in their startup phase.
    pub fn new(max: usize) -> Arc<StartupLimit> {
        StartupLimit::with_eviction_age(max, EVICT_AFTER)
    }

    /// As [`StartupLimit::new`], with another eviction age (tests).
    pub fn with_eviction_age(max: usize, evict_after: Duration) -> Arc<StartupLimit> {
        Arc::new(StartupLimit {
            max: max.max(1),
            evict_after,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Admits a new connection, closing the oldest startup connection if need be.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut evicted_other = false;
        if inner.live.len() >= self.max {
            match inner.live.front() {
                Some(oldest) if oldest.since.elapsed() >= self.evict_after => {
                    oldest.evict.notify_one();
                    inner.live.pop_front();
                    evicted_other = true;
                }
                _ => return Admission::Refused,
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let evict = Arc::new(Notify::new());
        inner.live.push_back(Entry {
            id,
            since: Instant::now(),
            evict: Arc::clone(&evict),
        });
        Admission::Admitted {
            slot: StartupSlot {
                limit: Arc::clone(self),
                id,
                evict,
            },
            evicted_other,
        }
    }

    /// Connections in their startup phase now.
    pub fn live(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .live
            .len()
    }
}

impl StartupSlot {
    /// Resolves when this connection is closed to make room for a newer one.
    pub async fn evicted(&self) {
        self.evict.notified().await
    }
}

impl Drop for StartupSlot {
    fn drop(&mut self) {
        let mut inner = self.limit.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = inner.live.iter().position(|e| e.id == self.id) {
            inner.live.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(a: Admission) -> StartupSlot {
        match a {
            Admission::Admitted { slot, .. } => slot,
            Admission::Refused => panic!("refused"),
        }
    }

    #[tokio::test]
    async fn refuses_young_and_evicts_old_connections_at_the_cap() {
        let limit = StartupLimit::with_eviction_age(2, Duration::from_millis(50));
        let first = slot(limit.admit());
        let second = slot(limit.admit());
        assert!(matches!(limit.admit(), Admission::Refused));
        tokio::time::sleep(Duration::from_millis(60)).await;
        let third = limit.admit();
        assert!(matches!(
            third,
            Admission::Admitted {
                evicted_other: true,
                ..
            }
        ));
        // The oldest is told, and its place is already free.
        tokio::time::timeout(Duration::from_secs(1), first.evicted())
            .await
            .expect("evicted");
        assert_eq!(limit.live(), 2);
        drop(first);
        drop(second);
        assert_eq!(limit.live(), 1);
        drop(third);
        assert_eq!(limit.live(), 0);
    }
}
