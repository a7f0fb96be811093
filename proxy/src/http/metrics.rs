//! `GET /metrics`: the registry in Prometheus's text format.

use hyper::{Response, StatusCode};

use super::{response, Body};

/// The scrape.
pub fn get() -> Response<Body> {
    response(
        StatusCode::OK,
        crate::metrics::CONTENT_TYPE,
        crate::metrics::get().encode(),
    )
}
