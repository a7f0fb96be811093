//! The last hour of each stream table, in memory, for the status page's charts: refresh
//! durations (from `pgt_refresh_history`) and staleness (sampled by the collector).

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

/// How long points are kept, in seconds.
pub const KEEP_SECONDS: f64 = 3600.0;
/// Staleness is sampled at most this often, in seconds (360 points an hour).
pub const STALENESS_STEP: f64 = 10.0;

/// Points of one stream table: `[unix time, seconds]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Series {
    /// Refresh durations at the refreshes' end.
    pub refreshes: VecDeque<[f64; 2]>,
    /// Staleness samples.
    pub staleness: VecDeque<[f64; 2]>,
}

/// Every stream table's series, by `database/schema.name`.
#[derive(Debug, Default)]
pub struct History {
    series: HashMap<String, Series>,
}

/// The key of a stream table.
pub fn key(database: &str, name: &str) -> String {
    format!("{database}/{name}")
}

impl History {
    /// A refresh that ended at `t` after `seconds`.
    pub fn refresh(&mut self, key: &str, t: f64, seconds: f64) {
        let s = self.series.entry(key.to_string()).or_default();
        s.refreshes.push_back([t, seconds]);
    }

    /// A staleness sample, unless the last one is more recent than [`STALENESS_STEP`].
    pub fn staleness(&mut self, key: &str, t: f64, seconds: f64) {
        let s = self.series.entry(key.to_string()).or_default();
        if s.staleness
            .back()
            .is_none_or(|p| t - p[0] >= STALENESS_STEP)
        {
            s.staleness.push_back([t, seconds]);
        }
    }

    /// Drops points older than an hour before `now` and the stream tables not in `live`.
    pub fn trim(&mut self, now: f64, live: &[String]) {
        self.series.retain(|k, _| live.contains(k));
        for s in self.series.values_mut() {
            while s
                .refreshes
                .front()
                .is_some_and(|p| now - p[0] > KEEP_SECONDS)
            {
                s.refreshes.pop_front();
            }
            while s
                .staleness
                .front()
                .is_some_and(|p| now - p[0] > KEEP_SECONDS)
            {
                s.staleness.pop_front();
            }
        }
    }

    /// One stream table's series.
    pub fn get(&self, key: &str) -> Series {
        self.series.get(key).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_an_hour_and_samples_staleness_sparsely() {
        let mut h = History::default();
        let k = key("db", "public.t");
        h.refresh(&k, 0.0, 0.5);
        h.refresh(&k, 4000.0, 0.25);
        for t in 0..30 {
            h.staleness(&k, 4000.0 + f64::from(t), 1.0);
        }
        h.trim(4030.0, std::slice::from_ref(&k));
        let s = h.get(&k);
        assert_eq!(s.refreshes.len(), 1);
        assert_eq!(s.staleness.len(), 3);
        h.trim(4030.0, &[]);
        assert!(h.get(&k).refreshes.is_empty());
    }
}
