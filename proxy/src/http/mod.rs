//! `--http-listen`: a small HTTP/1.1 server (hyper) for operators, one file per endpoint:
//! [`metrics`] (`GET /metrics`), [`health`] (`GET /health`, `GET /ready`), [`status_page`]
//! (`GET /`) and [`api`] (`GET /api/stream_tables`, the page's data). It never touches a
//! client session: everything it shows comes from the metrics registry and the monitor's cache.

pub mod api;
pub mod health;
pub mod metrics;
pub mod status_page;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::monitor::Monitor;

/// What the endpoints read: the registry and the monitor's cache.
#[derive(Clone)]
pub struct Endpoints {
    /// The Prometheus registry.
    pub metrics: Arc<Metrics>,
    /// Readiness, the catalog's snapshot and the last hour of each stream table.
    pub monitor: Arc<Monitor>,
}

/// Why the HTTP listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address could not be bound.
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Bind {
        /// The address of `--http-listen`.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A response body.
pub type Body = Full<Bytes>;

/// Longest wait for a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A response with `status`, `content_type` and `body`, never cached.
pub fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Answers one request.
pub async fn route(endpoints: &Endpoints, req: &Request<Incoming>) -> Response<Body> {
    let monitor = &endpoints.monitor;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n",
        );
    }
    match req.uri().path() {
        "/metrics" => metrics::get(&endpoints.metrics),
        "/health" => health::health(),
        "/ready" => health::ready(monitor),
        "/" => status_page::get(),
        "/api/stream_tables" => api::stream_tables(monitor),
        _ => response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    }
}

/// Binds `addr`.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serves HTTP on `listener` until the runtime stops.
pub async fn serve(listener: TcpListener, endpoints: Endpoints) {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!("HTTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let endpoints = endpoints.clone();
                async move { Ok::<_, Infallible>(route(&endpoints, &req).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
