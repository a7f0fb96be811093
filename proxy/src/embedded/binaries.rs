//! Finding PostgreSQL's server binaries: `$PG_BINDIR`, then `$PATH`, then the newest
//! `/usr/lib/postgresql/*/bin` (Debian and Ubuntu's layout).

use std::path::{Path, PathBuf};

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|b| dir.join(b).is_file())
}

/// The folder holding initdb, pg_ctl and postgres, if this machine has one. A folder on `$PATH`
/// holding symlinks is resolved to the real folder (which also holds psql of the same version).
pub fn find_server_binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BINDIR").map(PathBuf::from) {
        if has_server_binaries(&dir) {
            return Some(dir);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_server_binaries(&dir) {
                return Some(match dir.join("initdb").canonicalize() {
                    Ok(real) => real.parent().map(Path::to_path_buf).unwrap_or(dir),
                    Err(_) => dir,
                });
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

/// What to tell a user who has no server binaries.
pub const INSTALL_ADVICE: &str = "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not \
found on PATH or in /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: `apt-get install \
postgresql`; Fedora: `dnf install postgresql-server`; macOS: `brew install postgresql`), set \
PG_BINDIR to their folder, or run with --upstream postgres://USER@HOST:PORT/DB to use an existing \
server.";
