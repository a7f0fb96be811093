//! The stream-table API through the proxy as real drivers send it: one program per driver in
//! tests/drivers/ (psycopg 3, node-postgres) creates a source, creates a stream table
//! with bound parameters, writes, refreshes, compares the stream table with its query, reads
//! pgt_status(), checks the SQLSTATEs of bad calls, rolls back a create, and goes on using the
//! session, in the extended protocol (unnamed and named statements, pipelined batches) and the
//! simple one. scripts/install-deps.sh installs the drivers.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgtrickle_e2e::{setup, ProxyProcess};

/// A driver program that takes longer has hung (an answer the driver waits for never came).
const DRIVER_TIMEOUT: Duration = Duration::from_secs(180);

fn drivers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("drivers")
}

/// The libpq-style URL the driver programs take.
fn url(proxy: &ProxyProcess) -> String {
    format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port())
}

/// Runs `cmd` (at most [`DRIVER_TIMEOUT`]) and fails the test, with the program's output and
/// the proxy's log, unless it exits successfully.
fn run_driver(what: &str, mut cmd: Command, proxy: &ProxyProcess) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {what} ({cmd:?}): {e}; scripts/install-deps.sh installs it")
        });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the driver") {
            break Some(status);
        }
        if started.elapsed() > DRIVER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let outcome = match status {
        Some(s) if s.success() => {
            println!("{what}: passed in {:?}\n{stdout}", started.elapsed());
            return;
        }
        Some(s) => format!("failed ({s})"),
        None => format!("hung: killed after {DRIVER_TIMEOUT:?}"),
    };
    panic!(
        "{what} {outcome}\n--- {what} stdout\n{stdout}\n--- {what} stderr\n{stderr}\n\
         --- proxy log\n{}",
        proxy.log()
    );
}

#[test]
fn psycopg3_python() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let mut cmd = Command::new("python3");
    cmd.arg(drivers_dir().join("python/stream_tables.py"))
        .arg(url(&proxy));
    run_driver("psycopg 3 (tests/drivers/python)", cmd, &proxy);
}

#[test]
fn node_postgres() {
    let node_dir = drivers_dir().join("node");
    assert!(
        node_dir.join("node_modules/pg").is_dir(),
        "node-postgres is not installed in {}: run scripts/install-deps.sh",
        node_dir.display()
    );
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let mut cmd = Command::new("node");
    cmd.arg(node_dir.join("stream_tables.js")).arg(url(&proxy));
    run_driver("node-postgres (tests/drivers/node)", cmd, &proxy);
}
