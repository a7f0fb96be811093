//! What every session of one proxy shares: the upstream target, TLS on both sides, the cancel
//! registry and the optional interceptor.

use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::cancel::CancelRegistry;
use crate::client_limit::ClientLimit;
use crate::metrics::Metrics;
use crate::session::intercept::InterceptorFactory;
use crate::upstream::UpstreamTarget;

/// Shared, read-only state of a running proxy.
pub struct ProxyContext {
    /// Where sessions connect to.
    pub target: UpstreamTarget,
    /// TLS towards the upstream (None for sslmode=disable).
    pub upstream_tls: Option<TlsConnector>,
    /// TLS towards clients (None: SSLRequest is answered with `N`).
    pub client_tls: Option<TlsAcceptor>,
    /// Refuse clients that do not use TLS.
    pub client_tls_required: bool,
    /// Live sessions' cancel keys.
    pub cancels: Arc<CancelRegistry>,
    /// The stream-table engine's hook, if any.
    pub interceptor: Option<Arc<dyn InterceptorFactory>>,
    /// Time a client has to start up and log in.
    pub startup_timeout: Duration,
    /// Connections allowed in their startup phase at once (see [`crate::startup_limit`]).
    pub max_startup_connections: usize,
    /// Client sessions allowed at once (`--max-client-connections`).
    pub client_limit: ClientLimit,
    /// A write to a client that makes no progress for this long ends the session
    /// (`--client-write-timeout-seconds`; None: never).
    pub client_write_timeout: Option<Duration>,
    /// The proxy's counters (`GET /metrics`).
    pub metrics: Arc<Metrics>,
}
