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

use crate::monitor::Monitor;

/// A response body.
pub type Body = Full<Bytes>;

/// Longest wait for a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A response with `status`, `content_type` and `body`, never cached.
pub fn response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Answers one request.
pub async fn route(monitor: &Monitor, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n",
        );
    }
    match req.uri().path() {
        "/metrics" => metrics::get(),
        "/health" => health::health(),
        "/ready" => health::ready(monitor),
        "/" => status_page::get(),
        "/api/stream_tables" => api::stream_tables(monitor),
        _ => response(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found\n"),
    }
}

/// Binds `addr`.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen for HTTP on {addr}: {e}"))
}

/// Serves HTTP on `listener` until the runtime stops.
pub async fn serve(listener: TcpListener, monitor: Arc<Monitor>) {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!("HTTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let monitor = Arc::clone(&monitor);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let monitor = Arc::clone(&monitor);
                async move { Ok::<_, Infallible>(route(&monitor, &req).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
