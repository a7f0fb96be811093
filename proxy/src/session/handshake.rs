//! The first packets of a connection: SSLRequest (TLS with rustls, or `N`), GSSENCRequest (`N`),
//! CancelRequest (forwarded, then the connection closes) and the StartupMessage.
//!
//! First packets are read with exact reads on the raw socket, so no byte a client sends after
//! SSLRequest can be buffered and later taken as if it came through TLS (CVE-2021-23214): such
//! bytes reach the TLS handshake and make it fail.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::SessionError;
use crate::cancel::send_cancel;
use crate::conn::{ClientConn, Conn};
use crate::context::ProxyContext;
use crate::protocol::backend_key_data::BackendKey;
use crate::protocol::error_response::ErrorResponse;
use crate::protocol::startup::{
    check_length, parse_first_packet, FirstPacket, StartupError, StartupMessage,
};

/// How a connection's first packets ended.
pub enum Opening {
    /// A session to start.
    Session(ClientConn, StartupMessage),
    /// A cancel request (already handled) or a client that left.
    Done,
}

async fn read_first_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<FirstPacket>, SessionError> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        // A client that connects and leaves (a port probe) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let body_len = check_length(u32::from_be_bytes(len))?;
    let mut body = vec![0u8; body_len];
    stream.read_exact(&mut body).await?;
    Ok(Some(parse_first_packet(&body)?))
}

/// Answers the first packets until a StartupMessage arrives (or the connection is done).
pub async fn open(mut tcp: TcpStream, ctx: &ProxyContext) -> Result<Opening, SessionError> {
    let mut tried_ssl = false;
    let mut tried_gss = false;
    loop {
        let packet = match read_first_packet(&mut tcp).await {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(Opening::Done),
            // Like PostgreSQL: a packet whose length is wrong is only logged (it may not come
            // from a PostgreSQL client at all), other malformed ones get a FATAL error.
            Err(SessionError::Startup(
                e @ (StartupError::BadLength(_) | StartupError::BadRequestLength { .. }),
            )) => {
                tracing::debug!("closing a connection without a valid first packet: {e}");
                return Ok(Opening::Done);
            }
            Err(SessionError::Startup(e)) => {
                let _ = tcp
                    .write_all(&ErrorResponse::fatal(e.sqlstate(), e.to_string()).encode())
                    .await;
                return Err(e.into());
            }
            Err(e) => return Err(e),
        };
        match packet {
            FirstPacket::SslRequest if !tried_ssl => {
                tried_ssl = true;
                if let Some(acceptor) = &ctx.client_tls {
                    tcp.write_all(b"S").await?;
                    let tls = acceptor
                        .accept(tcp)
                        .await
                        .map_err(SessionError::ClientTls)?;
                    let mut conn = Conn::Tls(Box::new(tls));
                    return match read_first_packet(&mut conn).await? {
                        Some(FirstPacket::Startup(msg)) => Ok(Opening::Session(conn, msg)),
                        Some(FirstPacket::CancelRequest { pid, secret }) => {
                            cancel(ctx, BackendKey { pid, secret }).await;
                            Ok(Opening::Done)
                        }
                        Some(_) => Err(SessionError::Protocol(
                            "unexpected request inside TLS session".into(),
                        )),
                        None => Ok(Opening::Done),
                    };
                }
                tcp.write_all(b"N").await?;
            }
            FirstPacket::GssEncRequest if !tried_gss => {
                tried_gss = true;
                tcp.write_all(b"N").await?;
            }
            FirstPacket::SslRequest | FirstPacket::GssEncRequest => {
                return Err(SessionError::Protocol("encryption requested twice".into()))
            }
            FirstPacket::CancelRequest { pid, secret } => {
                cancel(ctx, BackendKey { pid, secret }).await;
                return Ok(Opening::Done);
            }
            FirstPacket::Startup(msg) => return Ok(Opening::Session(Conn::Plain(tcp), msg)),
        }
    }
}

async fn cancel(ctx: &ProxyContext, key: BackendKey) {
    ctx.metrics.cancel_request();
    match ctx.cancels.lookup(key) {
        Some(upstream) => {
            if let Err(e) = send_cancel(&ctx.target, upstream).await {
                tracing::warn!(error = %e, "could not forward cancel request");
            }
        }
        None => tracing::debug!(pid = key.pid, "cancel request for unknown session ignored"),
    }
}
