//! The listener: accepts connections, runs one task per session, and on shutdown stops
//! accepting and lets live sessions finish for a bounded drain time.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::context::ProxyContext;
use crate::log_every::LogEvery;
use crate::metrics::{Metrics, Rejection};
use crate::protocol::error_response::ErrorResponse;
use crate::session::{self, SessionError};
use crate::startup_limit::{Admission, StartupLimit};

/// Repeated events (refused connections, failed accepts) are logged at most this often.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Waits after a failed accept: doubling from the first to the second.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Tells a connection over the startup cap why it is closed, if its socket takes the bytes at
/// once (it is never waited for), and closes it.
fn refuse(tcp: &tokio::net::TcpStream) {
    let err = ErrorResponse::fatal("53300", "too many connections in startup phase")
        .with_hint("retry in a moment; the proxy limits connections that have not logged in yet");
    let _ = tcp.try_write(&err.encode());
}

fn log_startup_cap(every: &mut LogEvery, max: usize) {
    if let Some(n) = every.hit() {
        tracing::warn!(
            connections = n,
            "connections closed: more than --max-startup-connections ({max}) connections in \
             startup phase"
        );
    }
}

/// Counts live sessions and wakes the drainer when the last one ends.
#[derive(Default)]
struct Sessions {
    live: AtomicUsize,
    all_done: Notify,
}

struct SessionTicket(Arc<Sessions>, Arc<Metrics>);

impl Drop for SessionTicket {
    fn drop(&mut self) {
        self.1.session_ended();
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_done.notify_waiters();
        }
    }
}

/// Serves connections from `listener` until `shutdown` resolves, then drains: waits up to
/// `drain` for live sessions to end. Returns the number of sessions cut off by the drain limit.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<ProxyContext>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> usize {
    let sessions = Arc::new(Sessions::default());
    let startup = StartupLimit::new(ctx.max_startup_connections);
    let mut refused_log = LogEvery::new(LOG_INTERVAL);
    let mut accept_log = LogEvery::new(LOG_INTERVAL);
    let mut backoff = MIN_BACKOFF;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    backoff = MIN_BACKOFF;
                    let slot = match startup.admit() {
                        Admission::Admitted { slot, evicted_other } => {
                            if evicted_other {
                                log_startup_cap(&mut refused_log, ctx.max_startup_connections);
                            }
                            slot
                        }
                        Admission::Refused => {
                            refuse(&tcp);
                            ctx.metrics.rejected(Rejection::StartupLimit);
                            log_startup_cap(&mut refused_log, ctx.max_startup_connections);
                            continue;
                        }
                    };
                    sessions.live.fetch_add(1, Ordering::AcqRel);
                    ctx.metrics.session_started();
                    let ticket = SessionTicket(Arc::clone(&sessions), Arc::clone(&ctx.metrics));
                    let ctx = Arc::clone(&ctx);
                    tokio::spawn(async move {
                        let _ticket = ticket;
                        match session::serve(tcp, ctx, slot).await {
                            Ok(()) => {}
                            Err(SessionError::LoginRejected(msg)) => {
                                tracing::info!(%peer, "login rejected: {msg}")
                            }
                            Err(SessionError::StartupEvicted) => {}
                            Err(e) => tracing::info!(%peer, "session ended: {e}"),
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning, and
                    // say so once in a while.
                    if let Some(n) = accept_log.hit() {
                        tracing::warn!(failures = n, "accept failed: {e}; backing off");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let live = sessions.live.load(Ordering::Acquire);
    if live > 0 {
        tracing::info!(
            sessions = live,
            "stopped accepting; waiting for sessions to finish"
        );
    }
    let wait_all = async {
        loop {
            let notified = sessions.all_done.notified();
            if sessions.live.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    };
    match tokio::time::timeout(drain, wait_all).await {
        Ok(()) => 0,
        Err(_) => {
            let left = sessions.live.load(Ordering::Acquire);
            tracing::warn!(
                sessions = left,
                "drain time over; closing remaining sessions"
            );
            left
        }
    }
}
