//! `pgtrickle_bytes_total{direction}` without contention on the forwarding path: each session
//! counts into a [`SessionTraffic`] of its own (two atomics on a cache line no other session
//! writes, added to with relaxed ordering), and a scrape sums the live sessions' counts and
//! those of the sessions that ended. The registry of live sessions is locked twice per
//! session (start, end) and once per scrape, never per message or chunk.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

/// One session's counts, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Counts {
    client_to_server: AtomicU64,
    server_to_client: AtomicU64,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    live: HashMap<u64, Arc<Counts>>,
    /// Totals of the sessions that ended: client to server, server to client.
    ended: [u64; 2],
}

/// Every session's traffic.
#[derive(Debug, Default, Clone)]
pub struct Traffic {
    registry: Arc<Mutex<Registry>>,
}

/// The counts of one session; they join the totals of ended sessions on drop.
#[derive(Debug)]
pub struct SessionTraffic {
    id: u64,
    counts: Arc<Counts>,
    registry: Arc<Mutex<Registry>>,
}

impl Traffic {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counts of a new session.
    pub fn session(&self) -> SessionTraffic {
        let counts = Arc::new(Counts::default());
        let mut r = self.lock();
        let id = r.next_id;
        r.next_id += 1;
        r.live.insert(id, Arc::clone(&counts));
        SessionTraffic {
            id,
            counts,
            registry: Arc::clone(&self.registry),
        }
    }

    /// Bytes forwarded so far: client to server, server to client.
    pub fn totals(&self) -> [u64; 2] {
        let r = self.lock();
        let mut t = r.ended;
        for c in r.live.values() {
            t[0] += c.client_to_server.load(Ordering::Relaxed);
            t[1] += c.server_to_client.load(Ordering::Relaxed);
        }
        t
    }
}

impl SessionTraffic {
    /// `n` bytes read from the client (to be forwarded to the server).
    #[inline]
    pub fn client_bytes(&self, n: usize) {
        self.counts
            .client_to_server
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `n` bytes read from the server (to be forwarded to the client).
    #[inline]
    pub fn server_bytes(&self, n: usize) {
        self.counts
            .server_to_client
            .fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl Drop for SessionTraffic {
    fn drop(&mut self) {
        let mut r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        r.live.remove(&self.id);
        r.ended[0] += self.counts.client_to_server.load(Ordering::Relaxed);
        r.ended[1] += self.counts.server_to_client.load(Ordering::Relaxed);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

impl Collector for Traffic {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let [to_server, to_client] = self.totals();
        let mut family = encoder.encode_descriptor(
            "pgtrickle_bytes",
            "Bytes forwarded after login, by direction",
            None,
            MetricType::Counter,
        )?;
        for (direction, n) in [
            ("client_to_server", to_server),
            ("server_to_client", to_client),
        ] {
            ConstCounter::new(n).encode(family.encode_family(&DirectionLabel { direction })?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_and_ended_sessions_add_up() {
        let t = Traffic::default();
        let a = t.session();
        let b = t.session();
        a.client_bytes(10);
        b.server_bytes(5);
        assert_eq!(t.totals(), [10, 5]);
        drop(a);
        b.client_bytes(1);
        assert_eq!(t.totals(), [11, 5]);
        drop(b);
        assert_eq!(t.totals(), [11, 5]);
        assert!(t.lock().live.is_empty());
    }
}
