//! Locates the PostgreSQL server binaries (initdb, pg_ctl, postgres) on this machine.

use std::path::{Path, PathBuf};

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|b| dir.join(b).is_file())
}

/// The folder holding initdb, pg_ctl and postgres: `$PG_BINDIR` if set, then the first folder
/// of `$PATH` that has all three, then the newest `/usr/lib/postgresql/*/bin`.
///
/// Panics with installation advice when none is found: a test cannot run without a server.
pub fn pg_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        let dir = PathBuf::from(dir);
        if has_server_binaries(&dir) {
            return dir;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_server_binaries(&dir) {
                // Distribution symlinks (/usr/local/bin/initdb -> .../15/bin/initdb): use the
                // real folder, which also holds psql and pgbench of the same version.
                return match dir.join("initdb").canonicalize() {
                    Ok(real) => real.parent().map(Path::to_path_buf).unwrap_or(dir),
                    Err(_) => dir,
                };
            }
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .collect();
    candidates.sort();
    match candidates.pop() {
        Some((_, dir)) => dir,
        None => panic!(
            "no PostgreSQL server binaries found (initdb, pg_ctl, postgres); \
             install them with `apt-get install postgresql` or set PG_BINDIR"
        ),
    }
}
