//! Running server commands as the `postgres` user when the tests run as root (initdb refuses
//! root).

use std::path::Path;
use std::process::Command;

/// True when this process runs as uid 0.
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// A command that runs `program` as the `postgres` user when we are root, as ourselves
/// otherwise.
pub(crate) fn server_command(program: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.arg("-u").arg("postgres").arg("--").arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// Gives `path` to the `postgres` user when we are root, so the server can write there.
pub(crate) fn hand_over(path: &Path) {
    if running_as_root() {
        let status = Command::new("chown")
            .arg("-R")
            .arg("postgres:postgres")
            .arg(path)
            .status()
            .expect("run chown");
        assert!(status.success(), "chown {} failed", path.display());
    }
}
