//! Query cancellation: every client session gets a BackendKeyData of the proxy's own, mapped to
//! the upstream backend's key. A CancelRequest is matched in constant time and forwarded to the
//! upstream server on a new connection.

use std::sync::Arc;

use dashmap::DashMap;
use rand::Rng;
use subtle::ConstantTimeEq;
use tokio::io::AsyncWriteExt;

use crate::protocol::backend_key_data::BackendKey;
use crate::protocol::startup::encode_cancel_request;
use crate::upstream::connect::connect_tcp;
use crate::upstream::UpstreamTarget;

/// The keys of the live sessions.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    by_pid: DashMap<u32, (u32, BackendKey)>,
}

/// Removes a session's key from the registry when the session ends.
#[derive(Debug)]
pub struct CancelGuard {
    registry: Arc<CancelRegistry>,
    pid: u32,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        self.registry.by_pid.remove(&self.pid);
    }
}

impl CancelRegistry {
    /// Gives a session a fresh key of the proxy's own for its upstream backend's key.
    pub fn register(self: &Arc<Self>, upstream: BackendKey) -> (BackendKey, CancelGuard) {
        let mut rng = rand::thread_rng();
        loop {
            // Positive like a real pid, so clients that print it as a signed int are happy.
            let pid = rng.gen_range(1..=i32::MAX as u32);
            let secret: u32 = rng.gen();
            if let dashmap::Entry::Vacant(slot) = self.by_pid.entry(pid) {
                slot.insert((secret, upstream));
                let guard = CancelGuard {
                    registry: Arc::clone(self),
                    pid,
                };
                return (BackendKey { pid, secret }, guard);
            }
        }
    }

    /// The upstream key for a client's cancel key, if it is a live session's and the secret
    /// matches (compared in constant time).
    pub fn lookup(&self, key: BackendKey) -> Option<BackendKey> {
        let entry = self.by_pid.get(&key.pid);
        let (secret, upstream) = match entry.as_deref() {
            Some(&(secret, upstream)) => (secret, Some(upstream)),
            // Compare anyway so that a miss takes as long as a wrong secret.
            None => (!key.secret, None),
        };
        let matches: bool = secret.to_be_bytes().ct_eq(&key.secret.to_be_bytes()).into();
        if matches {
            upstream
        } else {
            None
        }
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }
}

/// Forwards a cancel for `key` (an upstream key) to the upstream server. PostgreSQL reads cancel
/// requests before TLS and authentication, so a plain connection serves every sslmode.
pub async fn send_cancel(target: &UpstreamTarget, key: BackendKey) -> std::io::Result<()> {
    let mut tcp = connect_tcp(target).await.map_err(std::io::Error::other)?;
    tcp.write_all(&encode_cancel_request(key.pid, key.secret))
        .await?;
    tcp.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_right_secret_and_forgets_ended_sessions() {
        let reg = Arc::new(CancelRegistry::default());
        let upstream = BackendKey {
            pid: 10,
            secret: 20,
        };
        let (client, guard) = reg.register(upstream);
        assert_eq!(reg.lookup(client), Some(upstream));
        let wrong = BackendKey {
            secret: client.secret ^ 1,
            ..client
        };
        assert_eq!(reg.lookup(wrong), None);
        drop(guard);
        assert_eq!(reg.lookup(client), None);
        assert!(reg.is_empty());
    }
}
