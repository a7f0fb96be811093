//! Logging a client in: the proxy opens the upstream connection, sends the client's
//! StartupMessage (as protocol 3.0), and relays the authentication exchange message by message
//! without ever seeing a stored password. It rewrites two things: SASL mechanisms lose
//! `SCRAM-SHA-256-PLUS`, and BackendKeyData is replaced by a key of the proxy's own.

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::error::SessionError;
use super::message_reader::MessageReader;
use crate::cancel::CancelGuard;
use crate::conn::ClientConn;
use crate::context::ProxyContext;
use crate::protocol::auth;
use crate::protocol::backend_key_data::BackendKey;
use crate::protocol::error_response::{field_of, ErrorResponse};
use crate::protocol::negotiate_protocol_version;
use crate::protocol::startup::StartupMessage;
use crate::upstream::{connect, SslMode, UpstreamConn};

/// Largest message accepted during login (authentication exchanges are small).
const LOGIN_MAX_BODY: u32 = 1 << 20;

/// A logged-in session, ready to become a byte pump.
pub struct LoggedIn {
    /// The upstream connection.
    pub upstream: UpstreamConn,
    /// Client bytes read during login but not yet forwarded.
    pub client_leftover: BytesMut,
    /// Upstream bytes read during login but not yet forwarded.
    pub upstream_leftover: BytesMut,
    /// Keeps the session's cancel key registered.
    pub cancel_guard: Option<CancelGuard>,
}

/// Connects upstream and relays authentication until the server's first ReadyForQuery.
pub async fn login(
    client: &mut ClientConn,
    startup: &StartupMessage,
    ctx: &ProxyContext,
) -> Result<LoggedIn, SessionError> {
    let mut upstream = match connect(&ctx.target, ctx.upstream_tls.as_ref()).await {
        Ok(u) => u,
        Err(e) => {
            ctx.metrics.upstream_connect_error();
            let msg = ErrorResponse::fatal("08006", format!("proxy: {e}"))
                .with_hint("the upstream PostgreSQL server may be down; retry later");
            let _ = client.write_all(&msg.encode()).await;
            return Err(e.into());
        }
    };
    upstream.write_all(&startup.encode_for_upstream()).await?;

    let options = startup.protocol_options();
    if startup.minor_version() > 0 || !options.is_empty() {
        client
            .write_all(&negotiate_protocol_version::encode(&options))
            .await?;
    }

    let mut from_server = MessageReader::new();
    let mut from_client = MessageReader::new();
    let mut cancel_guard = None;
    loop {
        let msg = from_server.next(&mut upstream, LOGIN_MAX_BODY).await?;
        let body = &msg[5..];
        match msg[0] {
            b'R' => {
                let code = auth::request_code(body).ok_or_else(|| {
                    SessionError::Protocol("short authentication request from server".into())
                })?;
                if code == auth::AUTH_SASL {
                    client
                        .write_all(&auth::sasl_without_channel_binding(body))
                        .await?;
                } else {
                    client.write_all(&msg).await?;
                }
                if auth::expects_client_response(code) {
                    let reply = from_client.next(client, LOGIN_MAX_BODY).await?;
                    if reply[0] != b'p' {
                        return Err(SessionError::Protocol(format!(
                            "expected password message, got message type {:?}",
                            char::from(reply[0])
                        )));
                    }
                    if code == auth::AUTH_SASL
                        && upstream.is_tls()
                        && auth::sasl_initial_cbind_flag(&reply[5..]) == Some(b'y')
                    {
                        (upstream, from_server) = unbindable_scram(client, startup, ctx).await?;
                    }
                    upstream.write_all(&reply).await?;
                }
            }
            b'K' => {
                let key = BackendKey::parse(body).ok_or_else(|| {
                    SessionError::Protocol("invalid BackendKeyData from server".into())
                })?;
                let (client_key, guard) = ctx.cancels.register(key);
                cancel_guard = Some(guard);
                client.write_all(&client_key.encode()).await?;
            }
            b'Z' => {
                client.write_all(&msg).await?;
                client.flush().await?;
                return Ok(LoggedIn {
                    upstream,
                    client_leftover: from_client.into_leftover(),
                    upstream_leftover: from_server.into_leftover(),
                    cancel_guard,
                });
            }
            b'E' => {
                client.write_all(&msg).await?;
                client.flush().await?;
                let text = field_of(body, b'M').unwrap_or("unknown error").to_string();
                return Err(SessionError::LoginRejected(text));
            }
            // The proxy already answered the client's protocol options itself.
            b'v' => {}
            _ => client.write_all(&msg).await?,
        }
    }
}

/// A client on TLS that offers channel binding (GS2 flag `y`: "I could bind, the server
/// cannot", libpq's default `channel_binding=prefer`) would be rejected by a TLS upstream as a
/// downgrade attack. With `sslmode=prefer` towards the upstream, which accepts a plain
/// connection by definition, the proxy starts the exchange again on a plain connection, where
/// the server accepts the flag. With a stricter sslmode it refuses the client with a message
/// that says what to do instead.
async fn unbindable_scram(
    client: &mut ClientConn,
    startup: &StartupMessage,
    ctx: &ProxyContext,
) -> Result<(UpstreamConn, MessageReader), SessionError> {
    if ctx.target.sslmode == SslMode::Prefer {
        tracing::warn!(
            "client on TLS prefers SCRAM channel binding, which cannot pass through the proxy; \
             using a plain upstream connection for this session (upstream sslmode=prefer)"
        );
        let mut plain = connect(&ctx.target, None).await?;
        plain.write_all(&startup.encode_for_upstream()).await?;
        let mut reader = MessageReader::new();
        let msg = reader.next(&mut plain, LOGIN_MAX_BODY).await?;
        if msg[0] == b'R' && auth::request_code(&msg[5..]) == Some(auth::AUTH_SASL) {
            return Ok((plain, reader));
        }
        if msg[0] == b'E' {
            client.write_all(&msg).await?;
            client.flush().await?;
            let text = field_of(&msg[5..], b'M')
                .unwrap_or("unknown error")
                .to_string();
            return Err(SessionError::LoginRejected(text));
        }
        return Err(SessionError::Protocol(
            "server asked for a different authentication on a plain connection".into(),
        ));
    }
    let err = ErrorResponse::fatal(
        "28000",
        "SCRAM channel binding cannot pass through pgtrickle-proxy when both the client and the \
         upstream connection use TLS",
    )
    .with_hint(
        "connect with channel_binding=disable, or connect to the proxy without TLS, or use \
         sslmode=disable in the proxy's --upstream URL when the proxy runs next to the server",
    );
    client.write_all(&err.encode()).await?;
    client.flush().await?;
    Err(SessionError::Refused(
        "channel binding over two TLS legs".into(),
    ))
}
