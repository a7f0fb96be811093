//! `GET /`: a self-contained status page (no external assets) that lists every stream table
//! and draws the last hour of refresh durations and staleness as inline SVG, refreshed in place
//! every few seconds from `/api/stream_tables`.

use hyper::{Response, StatusCode};

use super::{response, Body};

const PAGE: &str = include_str!("status_page.html");

/// The page.
pub fn get() -> Response<Body> {
    response(StatusCode::OK, "text/html; charset=utf-8", PAGE)
}
