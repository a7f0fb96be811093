//! One client session, from the first packet to the end: [`handshake`] (TLS, cancel, startup),
//! [`login`] (authentication relayed to the upstream), then [`pump`] (bytes both ways).

pub mod error;
pub mod handshake;
pub mod intercept;
pub mod login;
pub mod message_reader;
pub mod pending;
pub mod pump;
pub mod session_sql;
pub mod state;
pub mod write_deadline;

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::conn::Conn;
use crate::context::ProxyContext;
use crate::metrics::Rejection;
use crate::protocol::error_response::ErrorResponse;
use crate::startup_limit::StartupSlot;
pub use error::SessionError;
use handshake::Opening;
pub use state::SessionState;
use write_deadline::WriteDeadline;

/// Serves one accepted connection to its end.
/// `slot` is its place among the connections in startup phase, given up once logged in; if it
/// is taken back (a newer connection needs it), the session ends.
pub async fn serve(
    tcp: TcpStream,
    ctx: Arc<ProxyContext>,
    slot: StartupSlot,
) -> Result<(), SessionError> {
    let _ = tcp.set_nodelay(true);
    let starting = tokio::time::timeout(ctx.startup_timeout, async {
        let (mut client, startup) = match handshake::open(tcp, &ctx).await? {
            Opening::Session(client, startup) => (client, startup),
            Opening::Done => return Ok(None),
        };
        let Some(place) = ctx.client_limit.acquire() else {
            let err = ErrorResponse::fatal("53300", "sorry, too many clients already")
                .with_hint("the proxy's --max-client-connections is reached");
            let _ = client.write_all(&err.encode()).await;
            let _ = client.flush().await;
            ctx.metrics.rejected(Rejection::TooManyConnections);
            return Err(SessionError::Refused("too many clients already".into()));
        };
        if ctx.client_tls_required && !client.is_tls() {
            ctx.metrics.rejected(Rejection::TlsRequired);
            let err =
                ErrorResponse::fatal("28000", "pgtrickle-proxy requires TLS (SSL) connections")
                    .with_hint("connect with sslmode=require");
            let _ = client.write_all(&err.encode()).await;
            return Err(SessionError::Refused("client without TLS".into()));
        }
        let logged_in = login::login(&mut client, &startup, &ctx).await?;
        Ok(Some((client, startup, logged_in, place)))
    });
    let opened = tokio::select! {
        opened = starting => opened.map_err(|_| SessionError::StartupTimeout)??,
        () = slot.evicted() => return Err(SessionError::StartupEvicted),
    };
    drop(slot);
    let Some((client, startup, logged_in, _place)) = opened else {
        return Ok(());
    };
    let text =
        |name: &str| String::from_utf8_lossy(startup.param(name).unwrap_or_default()).into_owned();
    let user = text("user");
    let database = match startup.param("database") {
        Some(db) if !db.is_empty() => String::from_utf8_lossy(db).into_owned(),
        _ => user.clone(),
    };
    tracing::debug!(%user, %database, tls = client.is_tls(), "session logged in");
    let state =
        Arc::new(SessionState::new(user, database).with_traffic(ctx.metrics.session_traffic()));
    let _cancel_guard = logged_in.cancel_guard;
    let interceptor = ctx.interceptor.as_ref().map(|f| f.for_session());
    let write_timeout = ctx.client_write_timeout;
    match (client, logged_in.upstream) {
        (Conn::Plain(client), Conn::Plain(upstream)) => {
            let (client_r, client_w) = client.into_split();
            pump::pump_halves(
                (client_r, WriteDeadline::new(client_w, write_timeout)),
                logged_in.client_leftover,
                upstream.into_split(),
                logged_in.upstream_leftover,
                state,
                interceptor,
            )
            .await
        }
        (client, upstream) => {
            pump::pump(
                WriteDeadline::new(client, write_timeout),
                logged_in.client_leftover,
                upstream,
                logged_in.upstream_leftover,
                state,
                interceptor,
            )
            .await
        }
    }
}
