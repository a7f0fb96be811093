//! Locates the PostgreSQL server binaries the tests start clusters from: by default the same
//! ones the proxy's embedded mode finds, or one major version chosen with the environment
//! variable `PGTRICKLE_TEST_PG` (15, 16, 17, 18): Debian's `/usr/lib/postgresql/MAJOR/bin`, or
//! the npm registry's build that `scripts/install-pg.sh MAJOR` unpacks into `.pg/MAJOR/bin`.
//! Client programs (psql, pgbench, ...) come from the server's folder when it has them, and
//! otherwise from the machine's PostgreSQL (the npm builds ship only initdb, pg_ctl, postgres).

use std::path::{Path, PathBuf};

/// The environment variable that picks the PostgreSQL major version of every test cluster.
pub const TEST_PG_VAR: &str = "PGTRICKLE_TEST_PG";

/// The folder holding initdb, pg_ctl and postgres for the test clusters: the major version in
/// `PGTRICKLE_TEST_PG` if set, else what [`pgtrickle_proxy::embedded::find_server_binaries`]
/// finds.
///
/// Panics with installation advice when none is found: a test cannot run without a server.
pub fn pg_bin_dir() -> PathBuf {
    if let Some(major) = requested_major() {
        return pg_bin_dir_for(major).unwrap_or_else(|| {
            panic!(
                "{TEST_PG_VAR}={major}: no PostgreSQL {major} server binaries in \
                 /usr/lib/postgresql/{major}/bin or {}: run scripts/install-pg.sh {major}",
                npm_dir(major).display()
            )
        });
    }
    default_bin_dir()
}

/// The major version asked for with `PGTRICKLE_TEST_PG`, if any.
///
/// Panics when the variable is set but is not a number.
pub fn requested_major() -> Option<u32> {
    let value = std::env::var(TEST_PG_VAR).ok()?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{TEST_PG_VAR}={value}: expected a major version (18)")),
    )
}

/// The server binaries of PostgreSQL `major`, if installed (Debian's or the npm build).
pub fn pg_bin_dir_for(major: u32) -> Option<PathBuf> {
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    [debian, npm_dir(major)]
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
}

/// A client program (`psql`, `pgbench`, `pg_basebackup` ...) to use with servers from
/// `server_bin`: the one next to the server if there is one, else the machine's.
pub fn client_program(server_bin: &Path, name: &str) -> PathBuf {
    let beside = server_bin.join(name);
    if beside.is_file() {
        return beside;
    }
    let machine = default_bin_dir().join(name);
    if machine.is_file() {
        return machine;
    }
    PathBuf::from(name)
}

fn default_bin_dir() -> PathBuf {
    pgtrickle_proxy::embedded::find_server_binaries()
        .unwrap_or_else(|| panic!("{}", pgtrickle_proxy::embedded::binaries::INSTALL_ADVICE))
}

/// Where scripts/install-pg.sh puts PostgreSQL `major`: `.pg/MAJOR/bin` in the repository.
fn npm_dir(major: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(".pg")
        .join(major.to_string())
        .join("bin")
}
