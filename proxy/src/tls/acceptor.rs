//! TLS towards clients: the proxy answers SSLRequest with `S` when it has a certificate.
//! Records carry at most 8 KB of plaintext, as PostgreSQL's (OpenSSL behind an 8 KB send
//! buffer): clients that read 8 KB at a time (libpq) and then wait on the socket would
//! otherwise leave the tail of a 16 KB record inside their TLS library and hang.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use super::{load_certs, load_key, provider, TlsError};

/// The most plaintext bytes in one TLS record towards a client.
pub const MAX_RECORD_PLAINTEXT: usize = 8192;

/// Builds the acceptor from PEM files (certificate chain, private key).
pub fn build(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(load_certs(cert)?, load_key(key)?)?;
    config.max_fragment_size = Some(MAX_RECORD_PLAINTEXT);
    Ok(TlsAcceptor::from(Arc::new(config)))
}
