//! AUTO's cost model: from the measured durations of a stream table's recent refreshes (the
//! history records which way each one really ran, its duration, and for DIFFERENTIAL ones the
//! number of changes it consumed), estimates what this refresh would cost either way, and picks
//! the cheaper.
//!
//! - FULL costs about what the recent FULL refreshes cost (their median). A population (the
//!   first FULL, at create or after a storage rebuild) runs in cold caches and costs more than
//!   later recomputations (625 ms against 370 ms in the session 6 benchmark): it counts only
//!   while no other FULL refresh has been measured, discounted by [`COLD_FULL_DISCOUNT`], so that
//!   AUTO recomputes once when the changes come near that figure and measures FULL for real.
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
    /// How long it took, in milliseconds: from its choice (counting the changes included) to
    /// its record.
    pub duration_ms: f64,
    /// A population: a FULL refresh in cold caches.
    pub cold: bool,
}

/// The cost of one delta row relative to the cost of one source row in a FULL refresh, used
/// until a differential refresh of comparable size has been measured.
pub const PRIOR_ROW_FACTOR: f64 = 8.0;

/// The share of a population's duration that stands for FULL while no other FULL refresh has
/// been measured.
pub const COLD_FULL_DISCOUNT: f64 = 0.6;

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
    let full = |cold: bool| {
        median(
            samples
                .iter()
                .filter(|s| !s.differential && s.cold == cold)
                .take(3)
                .map(|s| s.duration_ms)
                .collect(),
        )
    };
    let full_ms = full(false).or_else(|| Some(full(true)? * COLD_FULL_DISCOUNT))?;
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

/// The smallest number of changes for which the model expects FULL to be cheaper, at most
/// `cap` (None: FULL is not expected cheaper up to `cap` changes, or no FULL refresh has been
/// measured). A refresh need not count its changes past it: that many already decide.
pub fn break_even(samples: &[Sample], source_rows: f64, cap: i64) -> Option<i64> {
    let full_cheaper =
        |n: i64| estimate(samples, n, source_rows).is_some_and(|e| e.full_is_cheaper());
    // The estimate is not monotonic in the changes (the comparable refreshes change with them):
    // the first power of two past which FULL is cheaper, then the first count below it.
    let mut high = 1i64;
    while !full_cheaper(high) {
        if high >= cap {
            return None;
        }
        high = (high * 2).min(cap);
    }
    let mut low = high / 2;
    while low + 1 < high {
        let mid = low + (high - low) / 2;
        if full_cheaper(mid) {
            high = mid;
        } else {
            low = mid;
        }
    }
    Some(high)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(changes: i64, ms: f64) -> Sample {
        Sample {
            differential: true,
            changes,
            duration_ms: ms,
            cold: false,
        }
    }
    fn full(ms: f64) -> Sample {
        Sample {
            differential: false,
            changes: 0,
            duration_ms: ms,
            cold: false,
        }
    }
    fn population(ms: f64) -> Sample {
        Sample {
            cold: true,
            ..full(ms)
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

    #[test]
    fn a_population_stands_for_full_only_until_a_recomputation_is_measured() {
        // Population 625 ms: FULL is taken as 375 ms until measured.
        let s = [diff(20_000, 40.0), diff(20, 10.0), population(625.0)];
        assert_eq!(estimate(&s, 10, 1e6).unwrap().full_ms, 375.0);
        let s = [full(300.0), diff(20_000, 40.0), population(625.0)];
        assert_eq!(estimate(&s, 10, 1e6).unwrap().full_ms, 300.0);
    }

    #[test]
    fn break_even_is_where_full_becomes_cheaper() {
        // fixed 10 ms, 0.0015 ms per change (from 20,000 changes in 40 ms), FULL 300 ms:
        // break-even at 193,334 changes; the comparable refreshes stop at 200,000, where the
        // prior (8 x 300 / 1e6 = 0.0024 ms per change) says FULL too.
        let s = [full(300.0), diff(20_000, 40.0), diff(20, 10.0)];
        let n = break_even(&s, 1e6, 10_000_000).unwrap();
        assert!(estimate(&s, n, 1e6).unwrap().full_is_cheaper());
        assert!(!estimate(&s, n - 1, 1e6).unwrap().full_is_cheaper());
        assert!((190_000..200_000).contains(&n), "{n}");
        assert_eq!(break_even(&s, 1e6, 1000), None);
        assert_eq!(break_even(&[diff(10, 1.0)], 1e6, 1000), None);
    }
}
