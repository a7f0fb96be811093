//! The command-line contract: --help, environment variables, bad arguments, clean exit on
//! SIGTERM with a bounded drain, and the embedded PostgreSQL default.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pgtrickle_test_support::{running_as_root, Cluster, ProxyProcess};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pgtrickle-proxy"))
}

fn psql(cluster_bin: &Path, conninfo: &str, sql: &str) -> std::process::Output {
    Command::new(pgtrickle_test_support::client_program(cluster_bin, "psql"))
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            conninfo,
            "-c",
            sql,
        ])
        .output()
        .unwrap()
}

#[test]
fn help_explains_every_flag_and_its_environment_variable() {
    let out = Command::new(bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env) in [
        ("--listen", "PGTRICKLE_LISTEN"),
        ("--upstream", "PGTRICKLE_UPSTREAM"),
        ("--data-dir", "PGTRICKLE_DATA_DIR"),
        ("--tls-cert", "PGTRICKLE_TLS_CERT"),
        ("--tls-key", "PGTRICKLE_TLS_KEY"),
        ("--tls-required", "PGTRICKLE_TLS_REQUIRED"),
        ("--shutdown-timeout", "PGTRICKLE_SHUTDOWN_TIMEOUT"),
        ("--startup-timeout", "PGTRICKLE_STARTUP_TIMEOUT"),
        ("--worker-threads", "PGTRICKLE_WORKER_THREADS"),
        ("--log", "PGTRICKLE_LOG"),
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
        assert!(help.contains(env), "--help lacks {env}:\n{help}");
    }
}

#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let out = Command::new(bin())
        .args(["--upstream", "mysql://x/y", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("postgres://"), "{err}");

    let out = Command::new(bin())
        .args(["--upstream", "postgres://h/db?sslmode=sometimes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid sslmode"));

    let out = Command::new(bin())
        .args([
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            "/nonexistent.key",
        ])
        .args(["--upstream", "postgres://127.0.0.1/db"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.pem"));
}

#[test]
fn flags_can_come_from_the_environment() {
    let cluster = Cluster::start();
    let port = ProxyProcess::pick_port();
    let mut cmd = Command::new(bin());
    cmd.env("PGTRICKLE_LISTEN", format!("127.0.0.1:{port}"))
        .env("PGTRICKLE_UPSTREAM", cluster.url("postgres", "postgres"));
    let proxy = ProxyProcess::spawn(cmd, port);
    let out = psql(
        cluster.bin_dir(),
        &proxy.conninfo("postgres", "postgres"),
        "select 6*7",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

#[test]
fn sigterm_stops_accepting_and_drains_sessions() {
    let cluster = Cluster::start();
    let mut proxy = ProxyProcess::start(
        bin(),
        &cluster.url("postgres", "postgres"),
        &["--shutdown-timeout", "3"],
    );
    // An idle session is still open when SIGTERM arrives: the proxy waits for it, at most the
    // drain time, then exits with success.
    let mut session = std::net::TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    use std::io::Write;
    let mut startup = vec![];
    let body = b"\0\x03\0\0user\0postgres\0\0";
    startup.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    startup.extend_from_slice(body);
    session.write_all(&startup).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = proxy
        .terminate(Duration::from_secs(20))
        .expect("proxy did not exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "did not drain: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "drain not bounded: {waited:?}"
    );
    // No longer accepting.
    assert!(std::net::TcpStream::connect(("127.0.0.1", proxy.port())).is_err());
    assert!(proxy.log().contains("SIGTERM"));
}

#[test]
fn without_upstream_it_runs_an_embedded_postgres_and_reuses_its_data() {
    let dir = tempfile::tempdir().unwrap();
    if running_as_root() {
        // The server runs as postgres: it must be able to reach the data folder.
        let status = Command::new("chmod")
            .arg("755")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let data = dir.path().join("data");
    let run = |sql: &str| {
        let port = ProxyProcess::pick_port();
        let mut cmd = Command::new(bin());
        cmd.args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&data);
        let mut proxy = ProxyProcess::spawn(cmd, port);
        let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
        let bin_dir = pgtrickle_test_support::pg_bin_dir();
        let out = psql(&bin_dir, &conninfo, sql);
        let status = proxy.terminate(Duration::from_secs(60)).expect("exit");
        assert!(status.success());
        // It printed the exact psql command.
        assert!(
            proxy.log().contains(&format!("psql \"{conninfo}\"")),
            "{}",
            proxy.log()
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    run("create table kept (v text); insert into kept values ('still here')");
    assert!(data.join("PG_VERSION").exists());
    // The server was stopped with the proxy, and the second run reuses the data folder.
    assert!(!data.join("postmaster.pid").exists());
    assert_eq!(run("select v from kept"), "still here");
}
