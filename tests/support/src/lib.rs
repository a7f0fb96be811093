//! Test support shared by every end-to-end test of the project: throwaway PostgreSQL clusters
//! (initdb into a temporary folder, a free port, fsync off, run as the `postgres` user when the
//! tests run as root) and proxy processes started from a given binary.
//!
//! Nothing here mocks PostgreSQL: every cluster is a real server started from the machine's
//! server binaries (see [`pg_bin_dir`]; `PGTRICKLE_TEST_PG=18` picks a major version).

mod cluster;
mod pg_bin;
mod ports;
mod proxy_process;
mod run_as;

pub use cluster::{Cluster, ClusterOptions};
pub use pg_bin::{client_program, pg_bin_dir, pg_bin_dir_for, requested_major, TEST_PG_VAR};
pub use ports::free_port;
pub use proxy_process::ProxyProcess;
pub use run_as::running_as_root;
