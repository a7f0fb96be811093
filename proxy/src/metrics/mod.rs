//! The proxy's Prometheus metrics (prometheus-client), one registry per process.
//!
//! The forwarding path only touches counters and gauges created up front ([`Metrics`] holds
//! their handles: each is an atomic behind an `Arc`), so recording a chunk of bytes or a new
//! session is one atomic add, with no lock and no label look-up. Values about stream tables and
//! foreign sources come from the catalog ([`catalog`], filled by `monitor::collector`).
//!
//! The registry is process-wide ([`get`]) so that the hooks in the session and engine code stay
//! one line long; it only counts, and nothing reads it but `GET /metrics`.

pub mod catalog;

use std::sync::{Arc, LazyLock};

use pgtrickle_planner::ApiRequest;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why a client connection was refused before its session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Past `--max-client-connections` (FATAL 53300).
    TooManyConnections,
    /// Past `--max-startup-connections` (closed in the startup phase).
    StartupLimit,
    /// Without TLS while `--tls-required`.
    TlsRequired,
}

impl Rejection {
    const ALL: [Rejection; 3] = [
        Rejection::TooManyConnections,
        Rejection::StartupLimit,
        Rejection::TlsRequired,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::TooManyConnections => "too_many_connections",
            Rejection::StartupLimit => "startup_limit",
            Rejection::TlsRequired => "tls_required",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiCallLabels {
    function: &'static str,
    outcome: &'static str,
}

/// The registry and the handles of the proxy's own metrics.
pub struct Metrics {
    registry: Registry,
    sessions: Gauge,
    sessions_total: Counter,
    rejected: [Counter; 3],
    upstream_connect_errors: Counter,
    bytes_client_to_server: Counter,
    bytes_server_to_client: Counter,
    cancel_requests: Counter,
    api_calls: Family<ApiCallLabels, Counter>,
    /// Stream tables and foreign sources, from the catalog.
    pub catalog: Arc<catalog::CatalogMetrics>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let sessions = Gauge::default();
        registry.register(
            "pgtrickle_client_sessions",
            "Client connections being served (from accept to close)",
            sessions.clone(),
        );
        // Counters get their `_total` suffix from prometheus-client.
        let sessions_total = Counter::default();
        registry.register(
            "pgtrickle_client_sessions",
            "Client connections accepted",
            sessions_total.clone(),
        );
        let rejected_family = Family::<ReasonLabel, Counter>::default();
        let rejected = Rejection::ALL.map(|r| {
            rejected_family.get_or_create_owned(&ReasonLabel { reason: r.label() })
        });
        registry.register(
            "pgtrickle_client_rejected",
            "Client connections refused before their session started, by reason",
            rejected_family,
        );
        let upstream_connect_errors = Counter::default();
        registry.register(
            "pgtrickle_upstream_connect_errors",
            "Failed connections to the upstream server for client sessions",
            upstream_connect_errors.clone(),
        );
        let bytes = Family::<DirectionLabel, Counter>::default();
        let bytes_client_to_server = bytes.get_or_create_owned(&DirectionLabel {
            direction: "client_to_server",
        });
        let bytes_server_to_client = bytes.get_or_create_owned(&DirectionLabel {
            direction: "server_to_client",
        });
        registry.register(
            "pgtrickle_bytes",
            "Bytes forwarded after login, by direction",
            bytes,
        );
        let cancel_requests = Counter::default();
        registry.register(
            "pgtrickle_cancel_requests",
            "CancelRequests received",
            cancel_requests.clone(),
        );
        let api_calls = Family::<ApiCallLabels, Counter>::default();
        registry.register(
            "pgtrickle_api_calls",
            "pg_trickle API calls answered by the proxy, by function and outcome",
            api_calls.clone(),
        );
        let catalog = Arc::new(catalog::CatalogMetrics::new());
        catalog.register(&mut registry);
        Metrics {
            registry,
            sessions,
            sessions_total,
            rejected,
            upstream_connect_errors,
            bytes_client_to_server,
            bytes_server_to_client,
            cancel_requests,
            api_calls,
            catalog,
        }
    }

    /// A connection was accepted and its session starts.
    pub fn session_started(&self) {
        self.sessions.inc();
        self.sessions_total.inc();
    }

    /// A session ended.
    pub fn session_ended(&self) {
        self.sessions.dec();
    }

    /// A connection was refused.
    pub fn rejected(&self, why: Rejection) {
        let i = Rejection::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.rejected[i].inc();
    }

    /// A session could not connect to the upstream server.
    pub fn upstream_connect_error(&self) {
        self.upstream_connect_errors.inc();
    }

    /// A chunk of `n` bytes read from a client.
    #[inline]
    pub fn client_bytes(&self, n: usize) {
        self.bytes_client_to_server.inc_by(n as u64);
    }

    /// A chunk of `n` bytes read from the server.
    #[inline]
    pub fn server_bytes(&self, n: usize) {
        self.bytes_server_to_client.inc_by(n as u64);
    }

    /// A CancelRequest arrived.
    pub fn cancel_request(&self) {
        self.cancel_requests.inc();
    }

    /// An API call was answered (`ok`: without error).
    pub fn api_call(&self, request: &ApiRequest, ok: bool) {
        let labels = ApiCallLabels {
            function: api_function(request),
            outcome: if ok { "ok" } else { "error" },
        };
        self.api_calls.get_or_create(&labels).inc();
    }

    /// The registry in Prometheus's text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `function` label of an API call.
fn api_function(request: &ApiRequest) -> &'static str {
    match request {
        ApiRequest::Create(_) => "create_stream_table",
        ApiRequest::Alter(_) => "alter_stream_table",
        ApiRequest::Drop { .. } => "drop_stream_table",
        ApiRequest::Refresh { .. } => "refresh_stream_table",
        ApiRequest::Resume { .. } => "resume_stream_table",
        ApiRequest::Status => "pgt_status",
        ApiRequest::Explain { .. } => "explain_st",
        ApiRequest::RefreshHistory { .. } => "get_refresh_history",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_their_names() {
        let m = get();
        m.session_started();
        m.client_bytes(10);
        m.rejected(Rejection::TooManyConnections);
        let text = m.encode();
        for needle in [
            "# TYPE pgtrickle_client_sessions gauge",
            "# TYPE pgtrickle_client_sessions_total counter",
            "pgtrickle_client_rejected_total{reason=\"too_many_connections\"}",
            "pgtrickle_bytes_total{direction=\"client_to_server\"}",
            "pgtrickle_upstream_connect_errors_total",
            "pgtrickle_cancel_requests_total",
            "# TYPE pgtrickle_refresh_duration_seconds histogram",
            "# TYPE pgtrickle_stream_table_staleness_seconds gauge",
        ] {
            assert!(text.contains(needle), "{needle} missing in:\n{text}");
        }
        m.session_ended();
    }
}
