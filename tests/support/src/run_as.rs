//! Running server commands as the `postgres` user when the tests run as root (initdb refuses
//! root): the proxy's own helpers, with test-style failure handling.

use std::path::Path;

pub use pgtrickle_proxy::embedded::run_as::{running_as_root, server_command};

/// Gives `path` to the `postgres` user when we are root, so the server can write there.
pub(crate) fn hand_over(path: &Path) {
    pgtrickle_proxy::embedded::run_as::hand_over(path)
        .unwrap_or_else(|e| panic!("hand over {}: {e}", path.display()));
}
