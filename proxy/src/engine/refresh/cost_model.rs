//! AUTO's cost model: from the measured durations of a stream table's recent refreshes (the
//! history records which way each one really ran, its duration, and for DIFFERENTIAL ones the
//! number of changes it consumed), estimates what this refresh would cost either way, and picks
//! the cheaper.
//!
//! - FULL costs about what the recent FULL refreshes cost (their median).
//! - DIFFERENTIAL costs a fixed part plus a part per change: `fixed + per_change * changes`.
//!   The fixed part is the cheapest recent differential refresh. The per-change part comes from
//!   the recent differential refreshes whose change counts were comparable to this one's (at
//!   least a tenth of it: a tiny refresh, dominated by its fixed part, says nothing about the
//!   cost of a large one); without such a refresh, from a prior of [`PRIOR_ROW_FACTOR`] times
//!   FULL's cost per source row (a delta row costs several times a scanned row: probes into
//!   indexes and into the storage).
//! - Without a measured FULL refresh there is nothing to compare with: the caller falls back to
//!   the share-of-rows threshold.
//!
//! The model sees the last 20 measured refreshes: a slow differential refresh (a cold cache, a
//! busy server) that made AUTO recompute leaves that window after 20 refreshes, the prior
//! applies again, and the next small delta is applied and measured anew: one bad measurement
//! never pins a stream table to FULL.
//!
//! Only refreshes recorded with their real mode, duration and change count are samples, so a
//! history row that does not say what ran (older catalogs) cannot pin the estimate (pg_trickle's
//! issue 1033 was FULL refreshes recorded as differential ones).

/// A measured refresh of the stream table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// True for a DIFFERENTIAL refresh, false for a FULL one.
    pub differential: bool,
    /// Changes it consumed (DIFFERENTIAL only; FULL refreshes may leave it 0).
    pub changes: i64,
    /// How long its statements took, in milliseconds.
    pub duration_ms: f64,
}

/// The cost of one delta row relative to the cost of one source row in a FULL refresh, used
/// until a differential refresh of comparable size has been measured.
pub const PRIOR_ROW_FACTOR: f64 = 8.0;

/// What the model expects of this refresh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Expected milliseconds of a DIFFERENTIAL refresh.
    pub differential_ms: f64,
    /// Expected milliseconds of a FULL refresh.
    pub full_ms: f64,
}

impl Estimate {
    /// True when recomputing is expected to be cheaper.
    pub fn full_is_cheaper(&self) -> bool {
        self.full_ms < self.differential_ms
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Estimates a refresh that would consume `changes` changes of sources holding `source_rows`
/// rows (PostgreSQL's estimate; 0 when unknown), from `samples` (most recent first). None when
/// no FULL refresh has been measured.
pub fn estimate(samples: &[Sample], changes: i64, source_rows: f64) -> Option<Estimate> {
    let full_ms = median(
        samples
            .iter()
            .filter(|s| !s.differential)
            .take(3)
            .map(|s| s.duration_ms)
            .collect(),
    )?;
    let diffs: Vec<&Sample> = samples.iter().filter(|s| s.differential).collect();
    let fixed = diffs
        .iter()
        .map(|s| s.duration_ms)
        .min_by(f64::total_cmp)
        .unwrap_or(0.0);
    let changes_f = changes.max(0) as f64;
    let comparable: Vec<f64> = diffs
        .iter()
        .filter(|s| s.changes > 0 && s.changes as f64 >= changes_f / 10.0)
        .map(|s| (s.duration_ms - fixed).max(0.0) / s.changes as f64)
        .collect();
    let per_change = match median(comparable) {
        Some(measured) => measured,
        None if source_rows >= 1.0 => PRIOR_ROW_FACTOR * full_ms / source_rows,
        // Neither a comparable refresh nor the source's size (never analysed): nothing says
        // the changes are many, the differential runs and becomes the measurement.
        None => 0.0,
    };
    Some(Estimate {
        differential_ms: fixed + per_change * changes_f,
        full_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(changes: i64, ms: f64) -> Sample {
        Sample {
            differential: true,
            changes,
            duration_ms: ms,
        }
    }
    fn full(ms: f64) -> Sample {
        Sample {
            differential: false,
            changes: 0,
            duration_ms: ms,
        }
    }

    #[test]
    fn without_a_measured_full_refresh_there_is_no_estimate() {
        assert_eq!(estimate(&[diff(10, 1.0)], 10, 1000.0), None);
    }

    #[test]
    fn the_prior_keeps_small_deltas_differential_and_large_ones_full() {
        // FULL: 100 ms over 1,000,000 rows; only the population has been measured.
        let s = [full(100.0)];
        assert!(!estimate(&s, 100, 1e6).unwrap().full_is_cheaper());
        assert!(!estimate(&s, 10_000, 1e6).unwrap().full_is_cheaper());
        assert!(estimate(&s, 500_000, 1e6).unwrap().full_is_cheaper());
    }

    #[test]
    fn measured_comparable_refreshes_override_the_prior() {
        // A differential refresh of 100,000 changes took 150 ms, FULL takes 100 ms: a refresh
        // of 80,000 changes is cheaper FULL, although the prior would say differential.
        let s = [diff(100_000, 150.0), diff(10, 2.0), full(100.0)];
        assert!(estimate(&s, 80_000, 1e7).unwrap().full_is_cheaper());
        // A tiny delta stays differential.
        assert!(!estimate(&s, 50, 1e7).unwrap().full_is_cheaper());
    }

    #[test]
    fn tiny_refreshes_do_not_stand_for_large_ones() {
        // Only 1-change refreshes measured (fixed cost 3 ms): they say nothing about 300,000
        // changes, for which the prior applies.
        let s = [diff(1, 3.0), diff(1, 3.5), full(100.0)];
        let e = estimate(&s, 300_000, 1e6).unwrap();
        assert!(e.full_is_cheaper(), "{e:?}");
    }

    #[test]
    fn full_cost_is_the_median_of_the_recent_full_refreshes() {
        let s = [full(100.0), full(5000.0), full(120.0), full(1.0)];
        assert_eq!(estimate(&s, 0, 0.0).unwrap().full_ms, 120.0);
    }
}
