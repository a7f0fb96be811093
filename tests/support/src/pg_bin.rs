//! Locates the PostgreSQL server binaries, the same way the proxy's embedded mode does.

use std::path::PathBuf;

/// The folder holding initdb, pg_ctl and postgres (see
/// [`pgtrickle_proxy::embedded::find_server_binaries`]).
///
/// Panics with installation advice when none is found: a test cannot run without a server.
pub fn pg_bin_dir() -> PathBuf {
    pgtrickle_proxy::embedded::find_server_binaries()
        .unwrap_or_else(|| panic!("{}", pgtrickle_proxy::embedded::binaries::INSTALL_ADVICE))
}
