//! Engine settings that come from the command line and apply to every refresh of this proxy.

use std::sync::atomic::{AtomicU64, Ordering};

/// Share of a source's rows that, when changed since the last refresh, makes an AUTO stream
/// table refresh FULL instead of DIFFERENTIAL (stored as f64 bits; default 0.5).
static AUTO_FULL_THRESHOLD: AtomicU64 = AtomicU64::new(0x3FE0_0000_0000_0000);

/// Sets the AUTO threshold (a fraction; values outside 0..=1 are clamped).
pub fn set_auto_full_threshold(fraction: f64) {
    AUTO_FULL_THRESHOLD.store(fraction.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
}

/// The AUTO threshold.
pub fn auto_full_threshold() -> f64 {
    f64::from_bits(AUTO_FULL_THRESHOLD.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_and_clamping() {
        assert_eq!(super::auto_full_threshold(), 0.5);
        super::set_auto_full_threshold(2.0);
        assert_eq!(super::auto_full_threshold(), 1.0);
        super::set_auto_full_threshold(0.5);
    }
}
