//! Engine settings that come from the command line and apply to every refresh of this proxy:
//! built once in `cli.rs`, carried by the scheduler's configuration ([`crate::engine::background::scheduler::SchedulerConfig`])
//! to the scheduler and, through [`crate::engine::background::registry::Schedulers`], to the API jobs.

/// Settings of the stream-table engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineSettings {
    auto_full_threshold: f64,
}

impl EngineSettings {
    /// The settings; `auto_full_threshold` is a fraction, values outside 0..=1 are clamped.
    pub fn new(auto_full_threshold: f64) -> EngineSettings {
        EngineSettings {
            auto_full_threshold: auto_full_threshold.clamp(0.0, 1.0),
        }
    }

    /// Share of a source's rows that, when changed since the last refresh, makes an AUTO
    /// stream table refresh FULL instead of DIFFERENTIAL (`--auto-full-threshold`).
    pub fn auto_full_threshold(&self) -> f64 {
        self.auto_full_threshold
    }
}

impl Default for EngineSettings {
    /// The command line's defaults (threshold 0.5).
    fn default() -> EngineSettings {
        EngineSettings::new(0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::EngineSettings;

    #[test]
    fn default_and_clamping() {
        assert_eq!(EngineSettings::default().auto_full_threshold(), 0.5);
        assert_eq!(EngineSettings::new(2.0).auto_full_threshold(), 1.0);
        assert_eq!(EngineSettings::new(-1.0).auto_full_threshold(), 0.0);
        assert_eq!(EngineSettings::new(0.25).auto_full_threshold(), 0.25);
    }
}
