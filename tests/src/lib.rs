//! End-to-end tests of pgtrickle-proxy live in `tests/tests/`; this library holds what they
//! share: the project's test support (clusters, proxy processes), a byte-level client, and the
//! usual cluster-plus-proxy set-up.

pub mod raw_client;

pub use pgtrickle_test_support::*;

use std::path::Path;

/// Path of the proxy binary built for these tests.
#[macro_export]
macro_rules! proxy_bin {
    () => {
        std::path::Path::new(env!("CARGO_BIN_EXE_proxy-under-test"))
    };
}

/// Starts a proxy in front of `cluster` (plain upstream connection) with extra flags.
pub fn proxy_for(bin: &Path, cluster: &Cluster, args: &[&str]) -> ProxyProcess {
    let upstream = format!("{}?sslmode=disable", cluster.url("postgres", "postgres"));
    ProxyProcess::start(bin, &upstream, args)
}

/// Connects tokio-postgres with `conninfo` and drives the connection in the background.
pub async fn connect(conninfo: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {conninfo}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Resident memory of a process in kB (from /proc).
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| panic!("cannot read VmRSS of process {pid}"))
}
