//! The listener: accepts connections, runs one task per session, and on shutdown stops
//! accepting and lets live sessions finish for a bounded drain time.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::context::ProxyContext;
use crate::session::{self, SessionError};

/// Counts live sessions and wakes the drainer when the last one ends.
#[derive(Default)]
struct Sessions {
    live: AtomicUsize,
    all_done: Notify,
}

struct SessionTicket(Arc<Sessions>);

impl Drop for SessionTicket {
    fn drop(&mut self) {
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
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    sessions.live.fetch_add(1, Ordering::AcqRel);
                    let ticket = SessionTicket(Arc::clone(&sessions));
                    let ctx = Arc::clone(&ctx);
                    tokio::spawn(async move {
                        let _ticket = ticket;
                        match session::serve(tcp, ctx).await {
                            Ok(()) => {}
                            Err(SessionError::LoginRejected(msg)) => {
                                tracing::info!(%peer, "login rejected: {msg}")
                            }
                            Err(e) => tracing::info!(%peer, "session ended: {e}"),
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
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
