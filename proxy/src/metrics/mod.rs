//! The proxy's Prometheus metrics (prometheus-client): one [`Metrics`] made at start and
//! handed to whoever counts (the server and sessions through `ProxyContext`, the API jobs
//! through their factory, the monitor), no global state.
//!
//! Per connection, the forwarding path only touches counters created up front: a session
//! start or end is one atomic add on the shared counters, and bytes are counted per session
//! ([`traffic`]: atomics no other session writes, summed at scrape time), so no chunk or
//! message takes a lock or a shared cache line. Values about stream tables and foreign sources
//! come from the catalog ([`catalog`], filled by `monitor::collector`).

pub mod catalog;
pub mod traffic;

use std::sync::Arc;

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
    traffic: traffic::Traffic,
    cancel_requests: Counter,
    api_calls: ApiCalls,
    /// Stream tables and foreign sources, from the catalog.
    pub catalog: Arc<catalog::CatalogMetrics>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// `pgtrickle_api_calls_total`, for the API jobs.
#[derive(Clone, Debug, Default)]
pub struct ApiCalls(Family<ApiCallLabels, Counter>);

impl ApiCalls {
    /// An API call was answered (`ok`: without error).
    pub fn count(&self, request: &ApiRequest, ok: bool) {
        let labels = ApiCallLabels {
            function: api_function(request),
            outcome: if ok { "ok" } else { "error" },
        };
        self.0.get_or_create(&labels).inc();
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every family, all at zero.
    pub fn new() -> Metrics {
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
        let rejected = Rejection::ALL
            .map(|r| rejected_family.get_or_create_owned(&ReasonLabel { reason: r.label() }));
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
        let traffic = traffic::Traffic::default();
        registry.register_collector(Box::new(traffic.clone()));
        let cancel_requests = Counter::default();
        registry.register(
            "pgtrickle_cancel_requests",
            "CancelRequests received",
            cancel_requests.clone(),
        );
        let api_calls = ApiCalls::default();
        registry.register(
            "pgtrickle_api_calls",
            "pg_trickle API calls answered by the proxy, by function and outcome",
            api_calls.0.clone(),
        );
        let catalog = Arc::new(catalog::CatalogMetrics::new());
        catalog.register(&mut registry);
        Metrics {
            registry,
            sessions,
            sessions_total,
            rejected,
            upstream_connect_errors,
            traffic,
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

    /// The byte counters of a new session.
    pub fn session_traffic(&self) -> traffic::SessionTraffic {
        self.traffic.session()
    }

    /// A CancelRequest arrived.
    pub fn cancel_request(&self) {
        self.cancel_requests.inc();
    }

    /// The counter of API calls, for the API jobs.
    pub fn api_calls(&self) -> ApiCalls {
        self.api_calls.clone()
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
        ApiRequest::Pause { .. } => "pause_stream_table",
        ApiRequest::ForEachRow(calls) => calls.function().sql_name(),
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
        let m = Metrics::new();
        m.session_started();
        m.session_traffic().client_bytes(10);
        m.rejected(Rejection::TooManyConnections);
        // A family with labels shows once it has a series.
        m.catalog.observe_refresh("public.t", Some("FULL"), 0.1);
        let text = m.encode();
        for needle in [
            "# TYPE pgtrickle_client_sessions gauge",
            "# TYPE pgtrickle_client_sessions_total counter",
            "pgtrickle_client_rejected_total{reason=\"too_many_connections\"}",
            "pgtrickle_bytes_total{direction=\"client_to_server\"}",
            "pgtrickle_upstream_connect_errors_total",
            "pgtrickle_cancel_requests_total",
            "# TYPE pgtrickle_refresh_duration_seconds histogram",
            "pgtrickle_refresh_duration_seconds_count{stream_table=\"public.t\",mode=\"FULL\"} 1",
            "# TYPE pgtrickle_stream_table_staleness_seconds gauge",
        ] {
            assert!(text.contains(needle), "{needle} missing in:\n{text}");
        }
        assert!(text.contains("pgtrickle_bytes_total{direction=\"client_to_server\"} 10"));
        m.session_ended();
    }
}
