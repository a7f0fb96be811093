//! Metrics about stream tables and foreign sources. The monitor (`monitor::collector`) reads
//! the catalog of every database the proxy serves every few seconds and hands the result here:
//! [`CatalogMetrics::publish`] keeps it as the current [`Snapshot`] (gauges, computed at scrape
//! time: staleness is "now" at the scrape, on the database's clock) and
//! [`CatalogMetrics::observe_refresh`] / [`CatalogMetrics::poll_failed`] feed the histogram and
//! counters from new rows of `pgt_refresh_history` and `pgt_poll_state`.
//!
//! Labels are exactly `stream_table` (with `mode` on the histogram) and `source`, valued
//! `schema.name`; a stream table or source of a database other than the one in `--upstream`
//! (the proxy's home database, where clients usually are) is labelled `database/schema.name`
//! ([`label`]), so two databases never give the same series.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// Buckets of `pgtrickle_refresh_duration_seconds`: 1 ms to about 16 min.
const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0, 1000.0,
];

/// One stream table as the catalog describes it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamTableInfo {
    /// The database holding it.
    pub database: String,
    /// `schema.name`.
    pub name: String,
    /// ACTIVE or SUSPENDED.
    pub status: String,
    /// The refresh mode asked for (FULL, DIFFERENTIAL, AUTO).
    pub refresh_mode: String,
    /// The mode the engine uses.
    pub effective_mode: String,
    /// The schedule as given.
    pub schedule: String,
    /// Unix time of the snapshot the contents reflect (`last_refresh_at`).
    pub last_refresh_at: Option<f64>,
    /// Duration of the last successful refresh, in seconds.
    pub last_duration_seconds: Option<f64>,
    /// Rows changed by the last successful refresh.
    pub last_rows: Option<i64>,
    /// FULL or DIFFERENTIAL: the last successful refresh's kind.
    pub last_action: Option<String>,
    /// Failed refreshes in a row.
    pub consecutive_errors: i64,
    /// The last refresh error, if the last refresh failed.
    pub last_error: Option<String>,
    /// Whether it has been populated.
    pub populated: bool,
}

/// One polled foreign source (`pgtrickle.pgt_poll_status()`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct SourceInfo {
    /// The database holding it.
    pub database: String,
    /// `schema.name` of the foreign table.
    pub source: String,
    /// Unix time of the last poll.
    pub last_poll_at: Option<f64>,
    /// Duration of the last poll, in seconds.
    pub duration_seconds: Option<f64>,
    /// Rows read by the last poll.
    pub rows_scanned: Option<i64>,
    /// Rows changed in the mirror by the last poll.
    pub rows_changed: Option<i64>,
    /// Failed polls in a row.
    pub consecutive_errors: i64,
    /// The last poll error.
    pub last_error: Option<String>,
}

/// Rows waiting in one source's change buffer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BufferInfo {
    /// The database holding it.
    pub database: String,
    /// `schema.name` of the source table.
    pub source: String,
    /// Live rows of `pgtrickle_changes.changes_<oid>` (the statistics' `n_live_tup`).
    pub rows: i64,
}

/// What the last collection found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    /// Unix time of the collection (the proxy's clock).
    pub collected_at: f64,
    /// The database of `--upstream`, whose objects are labelled without their database.
    pub home_database: String,
    /// The database's clock minus the proxy's, in seconds.
    pub clock_offset: f64,
    /// The databases read.
    pub databases: Vec<String>,
    /// Every stream table.
    pub stream_tables: Vec<StreamTableInfo>,
    /// Every polled foreign source.
    pub sources: Vec<SourceInfo>,
    /// Change buffers.
    pub buffers: Vec<BufferInfo>,
    /// Databases whose catalog could not be read, with why.
    pub errors: Vec<String>,
}

impl Snapshot {
    /// Seconds between `last_refresh_at` and now (on the database's clock).
    pub fn staleness(&self, st: &StreamTableInfo) -> Option<f64> {
        st.last_refresh_at
            .map(|t| (unix_now() + self.clock_offset - t).max(0.0))
    }
}

/// The `stream_table` or `source` label of `name` (`schema.name`) in `database`.
pub fn label(home: &str, database: &str, name: &str) -> String {
    if database == home {
        name.to_string()
    } else {
        format!("{database}/{name}")
    }
}

/// Now as Unix time in seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StLabels {
    stream_table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StModeLabels {
    stream_table: String,
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

fn new_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Stream-table and foreign-source metrics.
#[derive(Debug)]
pub struct CatalogMetrics {
    refresh_duration: Family<StModeLabels, Histogram, fn() -> Histogram>,
    refresh_errors: Family<StLabels, Counter>,
    poll_errors: Family<SourceLabels, Counter>,
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
}

impl CatalogMetrics {
    pub(super) fn new() -> CatalogMetrics {
        CatalogMetrics {
            refresh_duration: Family::new_with_constructor(new_histogram),
            refresh_errors: Family::default(),
            poll_errors: Family::default(),
            snapshot: Arc::new(RwLock::new(Arc::new(Snapshot::default()))),
        }
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "pgtrickle_refresh_duration_seconds",
            "Duration of successful refreshes (pgt_refresh_history), by stream table and mode",
            self.refresh_duration.clone(),
        );
        registry.register(
            "pgtrickle_refresh_errors",
            "Failed refreshes (pgt_refresh_history), by stream table",
            self.refresh_errors.clone(),
        );
        registry.register(
            "pgtrickle_poll_errors",
            "Failed polls of foreign sources (pgt_poll_state), by source",
            self.poll_errors.clone(),
        );
        registry.register_collector(Box::new(SnapshotCollector(Arc::clone(&self.snapshot))));
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the snapshot.
    pub fn publish(&self, snapshot: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
    }

    /// A refresh found in the history: a success of `mode` taking `seconds`, or a failure.
    /// `st` is the stream table's [`label`].
    pub fn observe_refresh(&self, st: &str, mode: Option<&str>, seconds: f64) {
        match mode {
            Some(mode) => self
                .refresh_duration
                .get_or_create(&StModeLabels {
                    stream_table: st.to_string(),
                    mode: mode.to_string(),
                })
                .observe(seconds),
            None => {
                self.refresh_errors
                    .get_or_create(&StLabels {
                        stream_table: st.to_string(),
                    })
                    .inc();
            }
        }
    }

    /// `n` failed polls of `source` (its [`label`]) were found.
    pub fn poll_failed(&self, source: &str, n: u64) {
        self.poll_errors
            .get_or_create(&SourceLabels {
                source: source.to_string(),
            })
            .inc_by(n);
    }

    /// Makes sure the error counter of a stream table exists (at 0) once it is seen.
    pub fn touch_stream_table(&self, st: &str) {
        let _ = self.refresh_errors.get_or_create(&StLabels {
            stream_table: st.to_string(),
        });
    }

    /// Makes sure the error counter of a source exists (at 0) once it is seen.
    pub fn touch_source(&self, source: &str) {
        let _ = self.poll_errors.get_or_create(&SourceLabels {
            source: source.to_string(),
        });
    }
}

/// The gauges, computed from the snapshot at each scrape.
#[derive(Debug)]
struct SnapshotCollector(Arc<RwLock<Arc<Snapshot>>>);

fn gauge_family<L: EncodeLabelSet, I: Iterator<Item = (L, f64)>>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: I,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in values {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()));
        let home = snap.home_database.as_str();
        let st_labels = |st: &StreamTableInfo| StLabels {
            stream_table: label(home, &st.database, &st.name),
        };
        let src_labels = |s: &SourceInfo| SourceLabels {
            source: label(home, &s.database, &s.source),
        };
        gauge_family(
            &mut encoder,
            "pgtrickle_refresh_rows",
            "Rows changed by the last successful refresh",
            snap.stream_tables
                .iter()
                .filter_map(|st| st.last_rows.map(|n| (st_labels(st), n as f64))),
        )?;
        gauge_family(
            &mut encoder,
            "pgtrickle_stream_table_staleness_seconds",
            "Now minus the time of the snapshot the stream table's contents reflect",
            snap.stream_tables
                .iter()
                .filter_map(|st| snap.staleness(st).map(|s| (st_labels(st), s))),
        )?;
        gauge_family(
            &mut encoder,
            "pgtrickle_stream_table_suspended",
            "1 when the stream table is SUSPENDED",
            snap.stream_tables.iter().map(|st| {
                let v = if st.status == "SUSPENDED" { 1.0 } else { 0.0 };
                (st_labels(st), v)
            }),
        )?;
        gauge_family(
            &mut encoder,
            "pgtrickle_change_buffer_rows",
            "Rows in a source's change buffer (statistics estimate)",
            snap.buffers.iter().map(|b| {
                let labels = SourceLabels {
                    source: label(home, &b.database, &b.source),
                };
                (labels, b.rows as f64)
            }),
        )?;
        gauge_family(
            &mut encoder,
            "pgtrickle_poll_duration_seconds",
            "Duration of the last poll of a foreign source",
            snap.sources
                .iter()
                .filter_map(|s| s.duration_seconds.map(|d| (src_labels(s), d))),
        )?;
        gauge_family(
            &mut encoder,
            "pgtrickle_poll_rows_scanned",
            "Rows read by the last poll of a foreign source",
            snap.sources
                .iter()
                .filter_map(|s| s.rows_scanned.map(|n| (src_labels(s), n as f64))),
        )?;
        gauge_family(
            &mut encoder,
            "pgtrickle_poll_rows_changed",
            "Rows changed in the mirror by the last poll of a foreign source",
            snap.sources
                .iter()
                .filter_map(|s| s.rows_changed.map(|n| (src_labels(s), n as f64))),
        )?;
        Ok(())
    }
}
