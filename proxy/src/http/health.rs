//! `GET /health` (liveness: the process serves) and `GET /ready` (readiness: the last probe
//! of the upstream succeeded; 503 with the reason otherwise).

use hyper::{Response, StatusCode};

use super::{response, Body};
use crate::monitor::Monitor;

const TEXT: &str = "text/plain; charset=utf-8";

/// Liveness.
pub fn health() -> Response<Body> {
    response(StatusCode::OK, TEXT, "ok\n")
}

/// Readiness, from the prober's cached result.
pub fn ready(monitor: &Monitor) -> Response<Body> {
    let (ready, detail) = monitor.readiness();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let detail = if detail.is_empty() {
        "not probed yet".to_string()
    } else {
        detail
    };
    response(status, TEXT, format!("{detail}\n"))
}
