//! TLS towards clients: the proxy answers SSLRequest with `S` when it has a certificate.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use super::{load_certs, load_key, provider, TlsError};

/// Builds the acceptor from PEM files (certificate chain, private key).
pub fn build(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(load_certs(cert)?, load_key(key)?)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
