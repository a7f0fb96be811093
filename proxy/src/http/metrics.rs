//! `GET /metrics`: the registry in Prometheus's text format.

use hyper::{Response, StatusCode};

use super::{response, Body};
use crate::metrics::{Metrics, CONTENT_TYPE};

/// The scrape.
pub fn get(metrics: &Metrics) -> Response<Body> {
    response(StatusCode::OK, CONTENT_TYPE, metrics.encode())
}
