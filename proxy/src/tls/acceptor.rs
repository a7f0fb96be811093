//! TLS towards clients: the proxy answers SSLRequest with `S` when it has a certificate.
//! Records carry at most 8 KB of plaintext, as PostgreSQL's (OpenSSL behind an 8 KB send
//! buffer): clients that read 8 KB at a time (libpq) and then wait on the socket would
//! otherwise leave the tail of a 16 KB record inside their TLS library and hang.
//!
//! The certificate and key are read again on SIGHUP ([`CertReloader::reload`]): new handshakes
//! get the new pair, sessions already open keep theirs, and a pair that does not load (or
//! whose key does not match the certificate) leaves the old one in place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use super::{load_certs, load_key, provider, TlsError};

/// The most plaintext bytes in one TLS record towards a client.
pub const MAX_RECORD_PLAINTEXT: usize = 8192;

/// The certificate served to new handshakes, replaceable while the proxy runs.
#[derive(Debug)]
pub struct CertReloader {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertReloader {
    /// Reads the PEM files again; on error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = certified_key(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(())
    }
}

impl ResolvesServerCert for CertReloader {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    Ok(CertifiedKey::from_der(
        load_certs(cert)?,
        load_key(key)?,
        &provider(),
    )?)
}

/// Builds the acceptor from PEM files (certificate chain, private key).
pub fn build(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    Ok(build_reloadable(cert, key)?.0)
}

/// Builds the acceptor and the handle that reloads its certificate.
pub fn build_reloadable(
    cert: &Path,
    key: &Path,
) -> Result<(TlsAcceptor, Arc<CertReloader>), TlsError> {
    let reloader = Arc::new(CertReloader {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        current: RwLock::new(Arc::new(certified_key(cert, key)?)),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&reloader) as Arc<dyn ResolvesServerCert>);
    config.max_fragment_size = Some(MAX_RECORD_PLAINTEXT);
    Ok((TlsAcceptor::from(Arc::new(config)), reloader))
}
