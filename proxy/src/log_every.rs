//! Rate-limited logging of repeated events (refused connections, failed accepts): the first
//! one is logged at once, later ones at most once per interval, with how many there were.

use std::time::{Duration, Instant};

/// Counts events of one kind and says when to log them.
#[derive(Debug)]
pub struct LogEvery {
    interval: Duration,
    last: Option<Instant>,
    unlogged: u64,
}

impl LogEvery {
    /// Logs at most once per `interval`.
    pub fn new(interval: Duration) -> LogEvery {
        LogEvery {
            interval,
            last: None,
            unlogged: 0,
        }
    }

    /// Records one event; Some(n) when it is time to log, n being the events since the last
    /// log line (this one included).
    pub fn hit(&mut self) -> Option<u64> {
        self.unlogged += 1;
        let due = self.last.is_none_or(|t| t.elapsed() >= self.interval);
        if !due {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_once_per_interval_with_a_count() {
        let mut every = LogEvery::new(Duration::from_millis(50));
        assert_eq!(every.hit(), Some(1));
        for _ in 0..100 {
            assert_eq!(every.hit(), None);
        }
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(every.hit(), Some(101));
    }
}
