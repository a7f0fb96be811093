//! Opening a connection to the upstream server: TCP, then SSLRequest and the TLS handshake as
//! the target's sslmode says.

use std::io;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::target::{SslMode, UpstreamTarget};
use crate::conn::Conn;
use crate::protocol::startup::encode_ssl_request;
use crate::tls::connector::server_name;

/// A connection from the proxy to the upstream server.
pub type UpstreamConn = Conn<tokio_rustls::client::TlsStream<TcpStream>>;

/// Why the upstream server could not be reached.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// TCP connect failed or timed out.
    #[error("could not connect to upstream server at {addr}: {source}")]
    Tcp {
        /// host:port.
        addr: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The server refused TLS while sslmode demands it.
    #[error("upstream server at {0} does not support TLS, but sslmode requires it")]
    TlsRefused(String),
    /// The TLS handshake failed (certificate not trusted, say).
    #[error("TLS handshake with upstream server at {addr} failed: {source}")]
    Handshake {
        /// host:port.
        addr: String,
        /// The error.
        source: io::Error,
    },
    /// The server answered SSLRequest with something else than S or N.
    #[error("upstream server at {addr} sent an invalid answer to SSLRequest: {byte:#04x}")]
    BadSslAnswer {
        /// host:port.
        addr: String,
        /// The byte.
        byte: u8,
    },
}

/// Opens a TCP connection to the target, without TLS (for cancel requests).
pub async fn connect_tcp(target: &UpstreamTarget) -> Result<TcpStream, ConnectError> {
    let addr = target.addr();
    let tcp = tokio::time::timeout(
        target.connect_timeout,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| ConnectError::Tcp {
        addr: addr.clone(),
        source: io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
    })?
    .map_err(|source| ConnectError::Tcp {
        addr: addr.clone(),
        source,
    })?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Opens a connection to the target, encrypted as its sslmode says.
pub async fn connect(
    target: &UpstreamTarget,
    tls: Option<&TlsConnector>,
) -> Result<UpstreamConn, ConnectError> {
    let mut tcp = connect_tcp(target).await?;
    let Some(connector) = tls.filter(|_| target.sslmode != SslMode::Disable) else {
        return Ok(Conn::Plain(tcp));
    };
    let addr = target.addr();
    let io_err = |source| ConnectError::Tcp {
        addr: addr.clone(),
        source,
    };
    tcp.write_all(&encode_ssl_request()).await.map_err(io_err)?;
    let answer = tcp.read_u8().await.map_err(io_err)?;
    match answer {
        b'S' => {
            let name = server_name(&target.host).map_err(|e| ConnectError::Handshake {
                addr: addr.clone(),
                source: io::Error::other(e),
            })?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|source| ConnectError::Handshake { addr, source })?;
            Ok(Conn::Tls(Box::new(stream)))
        }
        b'N' if target.sslmode == SslMode::Prefer => Ok(Conn::Plain(tcp)),
        b'N' => Err(ConnectError::TlsRefused(addr)),
        byte => Err(ConnectError::BadSslAnswer { addr, byte }),
    }
}
