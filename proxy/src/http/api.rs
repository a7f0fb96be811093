//! `GET /api/stream_tables`: the monitor's snapshot as JSON, each stream table with its
//! staleness now and its last hour (refresh durations, staleness samples), for the status page.

use hyper::{Response, StatusCode};
use serde::Serialize;

use super::{response, Body};
use crate::metrics::catalog::{unix_now, SourceInfo, StreamTableInfo};
use crate::monitor::history::{self, Series};
use crate::monitor::Monitor;

#[derive(Serialize)]
struct StreamTable<'a> {
    #[serde(flatten)]
    info: &'a StreamTableInfo,
    staleness_seconds: Option<f64>,
    history: Series,
}

#[derive(Serialize)]
struct Answer<'a> {
    now: f64,
    collected_at: f64,
    ready: bool,
    ready_detail: String,
    databases: &'a [String],
    errors: &'a [String],
    stream_tables: Vec<StreamTable<'a>>,
    sources: &'a [SourceInfo],
}

/// The JSON document.
pub fn stream_tables(monitor: &Monitor) -> Response<Body> {
    let snap = monitor.catalog.snapshot();
    let (ready, ready_detail) = monitor.readiness();
    let h = monitor.history.lock().unwrap_or_else(|p| p.into_inner());
    let answer = Answer {
        now: unix_now() + snap.clock_offset,
        collected_at: snap.collected_at,
        ready,
        ready_detail,
        databases: &snap.databases,
        errors: &snap.errors,
        stream_tables: snap
            .stream_tables
            .iter()
            .map(|st| StreamTable {
                info: st,
                staleness_seconds: snap.staleness(st),
                history: h.get(&history::key(&st.database, &st.name)),
            })
            .collect(),
        sources: &snap.sources,
    };
    match serde_json::to_vec(&answer) {
        Ok(body) => response(StatusCode::OK, "application/json", body),
        Err(e) => response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("{e}\n"),
        ),
    }
}
