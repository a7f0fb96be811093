//! Running server commands as the `postgres` user when the proxy runs as root: initdb and
//! postgres refuse to run as root.

use std::path::Path;
use std::process::Command;

/// True when this process runs as uid 0.
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// A command running `program` as `postgres` when we are root, as ourselves otherwise.
pub fn server_command(program: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.arg("-u").arg("postgres").arg("--").arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// Gives `path` (recursively) to the `postgres` user when we are root.
pub fn hand_over(path: &Path) -> std::io::Result<()> {
    if !running_as_root() {
        return Ok(());
    }
    let status = Command::new("chown")
        .arg("-R")
        .arg("postgres:postgres")
        .arg(path)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "chown postgres {} failed (does the user postgres exist?)",
            path.display()
        )))
    }
}
