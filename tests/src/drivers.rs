//! Running the driver programs of tests/drivers/ (Python, Node, Java) against a proxy: the
//! commands with the project-local packages scripts/install-deps.sh installs, and a run with a
//! time limit that fails the test with the program's output and the proxy's log.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ProxyProcess;

/// A driver program that takes longer has hung (an answer the driver waits for never came).
pub const DRIVER_TIMEOUT: Duration = Duration::from_secs(180);

/// tests/drivers/.
pub fn drivers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("drivers")
}

/// The libpq-style URL the driver programs take, through `proxy`.
pub fn driver_url(proxy: &ProxyProcess) -> String {
    format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port())
}

/// `python3 tests/drivers/python/SCRIPT`, with the packages scripts/install-deps.sh put in
/// tests/drivers/python/site-packages first on the module path (arguments still to add).
pub fn python_command(script: &str) -> Command {
    let dir = drivers_dir().join("python");
    let site = dir.join("site-packages");
    assert!(
        site.join(".requirements.txt").is_file(),
        "the Python drivers are not installed in {}: run scripts/install-deps.sh",
        site.display()
    );
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONPATH", &site)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(dir.join(script));
    cmd
}

/// `node tests/drivers/node/SCRIPT`, with the packages `npm ci` installed there.
pub fn node_command(script: &str) -> Command {
    let dir = drivers_dir().join("node");
    assert!(
        dir.join("node_modules/pg").is_dir() && dir.join("node_modules/knex").is_dir(),
        "node-postgres and Knex are not installed in {}: run scripts/install-deps.sh",
        dir.display()
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join(script));
    cmd
}

/// Runs `cmd` (at most [`DRIVER_TIMEOUT`]) and fails the test, with the program's output and
/// the proxy's log, unless it exits successfully. Returns its standard output.
pub fn run_driver(what: &str, mut cmd: Command, proxy: &ProxyProcess) -> String {
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
            return stdout;
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
