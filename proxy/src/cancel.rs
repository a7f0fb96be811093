//! Query cancellation: every client session sees its server backend's real process id in
//! BackendKeyData (so `pg_backend_pid()`, NotificationResponse and `pg_terminate_backend`
//! agree with the key a client keeps), with a secret of the proxy's own mapped to the server's
//! secret. A CancelRequest is matched in constant time and forwarded to the upstream server on
//! a new connection; the client's cancel connection is closed only once the server closed the
//! forwarded one (it has then signalled the backend), as PostgreSQL does.

use std::sync::Arc;

use dashmap::DashMap;
use std::time::Duration;

use rand::Rng;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::protocol::backend_key_data::BackendKey;
use crate::protocol::startup::encode_cancel_request;
use crate::upstream::connect::connect_tcp;
use crate::upstream::UpstreamTarget;

/// How long a forwarded cancel waits for the server to close its connection.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// The keys of the live sessions, by their backend's pid.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    by_pid: DashMap<u32, (u32, BackendKey)>,
}

/// Removes a session's key from the registry when the session ends.
#[derive(Debug)]
pub struct CancelGuard {
    registry: Arc<CancelRegistry>,
    pid: u32,
    secret: u32,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        // Only this session's entry: a backend pid freed and reused by a newer session whose
        // key registered before this guard dropped stays.
        self.registry
            .by_pid
            .remove_if(&self.pid, |_, (secret, _)| *secret == self.secret);
    }
}

impl CancelRegistry {
    /// Gives a session its key: the upstream backend's pid and a fresh secret of the proxy's
    /// own (a stale entry of a backend pid reused by the server is replaced).
    pub fn register(self: &Arc<Self>, upstream: BackendKey) -> (BackendKey, CancelGuard) {
        let secret: u32 = rand::thread_rng().gen();
        self.by_pid.insert(upstream.pid, (secret, upstream));
        let guard = CancelGuard {
            registry: Arc::clone(self),
            pid: upstream.pid,
            secret,
        };
        (
            BackendKey {
                pid: upstream.pid,
                secret,
            },
            guard,
        )
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

/// Forwards a cancel for `key` (an upstream key) to the upstream server and waits (at most
/// [`CANCEL_WAIT`]) until the server closed the connection, which it does after signalling the
/// backend: a client told its cancel is done only then cannot see it land on its next query.
/// PostgreSQL reads cancel requests before TLS and authentication, so a plain connection serves
/// every sslmode.
pub async fn send_cancel(target: &UpstreamTarget, key: BackendKey) -> std::io::Result<()> {
    let mut tcp = connect_tcp(target).await.map_err(std::io::Error::other)?;
    tcp.write_all(&encode_cancel_request(key.pid, key.secret))
        .await?;
    let mut sink = [0u8; 64];
    let closed = tokio::time::timeout(CANCEL_WAIT, async {
        loop {
            if tcp.read(&mut sink).await? == 0 {
                return std::io::Result::Ok(());
            }
        }
    })
    .await;
    match closed {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the server did not close the cancel connection",
        )),
    }
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
        assert_eq!(
            client.pid, upstream.pid,
            "the client sees the backend's pid"
        );
        assert_ne!(client.secret, upstream.secret);
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

    #[test]
    fn a_reused_pid_keeps_the_newer_sessions_key() {
        let reg = Arc::new(CancelRegistry::default());
        let old = BackendKey { pid: 7, secret: 1 };
        let new = BackendKey { pid: 7, secret: 2 };
        let (_, old_guard) = reg.register(old);
        let (client, _new_guard) = reg.register(new);
        drop(old_guard);
        assert_eq!(reg.lookup(client), Some(new));
    }
}
