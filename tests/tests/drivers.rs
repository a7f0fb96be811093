//! The stream-table API through the proxy as real drivers send it: one program per driver in
//! tests/drivers/ (psycopg 3 with pipeline mode, asyncpg with executemany, node-postgres, pgjdbc
//! with autocommit off) creates a source, creates a stream table with bound parameters, writes,
//! refreshes, compares the stream table with its query, reads pgt_status(), checks the
//! SQLSTATEs of bad calls, rolls back a create, and goes on using the session, in the extended
//! protocol (unnamed and named statements, pipelined batches with API calls in the middle) and
//! the simple one; two migration tools (Alembic, Knex) apply and roll back migrations that
//! create and alter a table and a stream table, each migration in a transaction. Rust's sqlx is
//! in drivers_sqlx.rs. scripts/install-deps.sh installs the drivers and tools.

use std::path::Path;
use std::process::Command;

use pgtrickle_e2e::drivers::{driver_url, drivers_dir, node_command, python_command, run_driver};
use pgtrickle_e2e::{setup, ProxyProcess};

fn python(script: &str, proxy: &ProxyProcess) -> Command {
    let mut cmd = python_command(script);
    cmd.arg(driver_url(proxy));
    cmd
}

fn node(script: &str, proxy: &ProxyProcess) -> Command {
    let mut cmd = node_command(script);
    cmd.arg(driver_url(proxy));
    cmd
}

#[test]
fn psycopg3_python() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let cmd = python("stream_tables.py", &proxy);
    run_driver("psycopg 3 (tests/drivers/python)", cmd, &proxy);
}

#[test]
fn asyncpg_python() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let cmd = python("asyncpg_stream_tables.py", &proxy);
    run_driver("asyncpg (tests/drivers/python)", cmd, &proxy);
}

#[test]
fn alembic_migrations() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let cmd = python("alembic_migrations.py", &proxy);
    run_driver("Alembic (tests/drivers/python/alembic)", cmd, &proxy);
}

#[test]
fn knex_migrations() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let cmd = node("knex_migrations.js", &proxy);
    run_driver("Knex (tests/drivers/node/migrations)", cmd, &proxy);
}

/// The JDBC driver from Debian's libpostgresql-jdbc-java.
const PGJDBC_JAR: &str = "/usr/share/java/postgresql.jar";

#[test]
fn pgjdbc_java() {
    assert!(
        Path::new(PGJDBC_JAR).is_file(),
        "{PGJDBC_JAR} is missing: run scripts/install-deps.sh"
    );
    let classes = tempfile::tempdir().expect("temp dir");
    let out = Command::new("javac")
        .arg("-d")
        .arg(classes.path())
        .args(["-cp", PGJDBC_JAR])
        .arg(drivers_dir().join("java/StreamTables.java"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run javac: {e}; scripts/install-deps.sh installs it"));
    assert!(
        out.status.success(),
        "javac failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let mut cmd = Command::new("java");
    cmd.arg("-cp")
        .arg(format!("{PGJDBC_JAR}:{}", classes.path().display()))
        .arg("StreamTables")
        .arg(driver_url(&proxy));
    run_driver("pgjdbc (tests/drivers/java)", cmd, &proxy);
}

#[test]
fn node_postgres() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let cmd = node("stream_tables.js", &proxy);
    run_driver("node-postgres (tests/drivers/node)", cmd, &proxy);
}
