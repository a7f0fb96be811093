//! Running the proxy in production: the HTTP endpoints (`--http-listen`: /metrics, /health,
//! /ready, the status page and its JSON), readiness following the upstream, stream-table and
//! foreign-source metrics, `--config` files, `--log-format json`, `--max-client-connections`
//! and SIGHUP reloading the TLS certificate while a TLS session stays open.

mod foreign_support;
mod operations_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foreign_support::{create_st, PRODUCTS, REMOTE_PRODUCTS};
use operations_support::{get, proxy_with_http, series, setup_http, try_get, value, wait_for};
use pgtrickle_e2e::raw_client::{query, startup_message};
use pgtrickle_e2e::{
    await_catalog, connect, exec, free_port, path_str, postgres_fdw_server_sql, proxy_bin, refresh,
    setup, Cluster, ProxyProcess,
};

const SECOND: Duration = Duration::from_secs(1);

async fn orders_and_totals(client: &tokio_postgres::Client, proxy: &ProxyProcess) {
    exec(
        client,
        proxy,
        "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int, total numeric); \
         INSERT INTO orders (customer_id, total) VALUES (1, 10), (2, 20)",
    )
    .await;
    exec(
        client,
        proxy,
        "SELECT pgtrickle.create_stream_table(name => 'totals', \
         query => $$ SELECT customer_id, SUM(total) AS total, COUNT(*) AS n \
                     FROM orders GROUP BY customer_id $$, \
         schedule => '1h', refresh_mode => 'DIFFERENTIAL')",
    )
    .await;
    exec(
        client,
        proxy,
        "INSERT INTO orders (customer_id, total) VALUES (3, 30)",
    )
    .await;
    refresh(client, proxy, "totals").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_stream_table_metrics_after_a_refresh() {
    let (_cluster, proxy, http) = setup_http(&["--scheduler-interval-ms", "200"]);
    assert_eq!(get(http, "/health"), (200, "ok\n".to_string()));
    wait_for(&proxy, http, "/ready", 200, 30 * SECOND, |_| true);
    assert_eq!(get(http, "/nope").0, 404);

    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    orders_and_totals(&client, &proxy).await;
    let err = client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('no_such_table')")
        .await;
    assert!(err.is_err(), "refreshing a missing stream table must fail");

    let st = "stream_table=\"public.totals\"";
    let m = wait_for(&proxy, http, "/metrics", 200, 30 * SECOND, |t| {
        !series(t, "pgtrickle_refresh_rows", &[st]).is_empty()
            && !series(
                t,
                "pgtrickle_change_buffer_rows",
                &["source=\"public.orders\""],
            )
            .is_empty()
    });
    // The proxy's own families.
    assert!(
        value(&m, "pgtrickle_client_sessions", &[]).unwrap() >= 1.0,
        "{m}"
    );
    assert!(
        value(&m, "pgtrickle_client_sessions_total", &[]).unwrap() >= 1.0,
        "{m}"
    );
    for dir in ["client_to_server", "server_to_client"] {
        let d = format!("direction=\"{dir}\"");
        assert!(
            value(&m, "pgtrickle_bytes_total", &[&d]).unwrap() > 0.0,
            "{m}"
        );
    }
    for family in [
        "pgtrickle_upstream_connect_errors_total",
        "pgtrickle_cancel_requests_total",
    ] {
        assert_eq!(value(&m, family, &[]), Some(0.0), "{family}\n{m}");
    }
    assert!(
        m.contains("# TYPE pgtrickle_client_rejected_total counter"),
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            "pgtrickle_client_rejected_total",
            &["reason=\"too_many_connections\""]
        ),
        Some(0.0)
    );
    for (function, outcome, at_least) in [
        ("create_stream_table", "ok", 1.0),
        ("refresh_stream_table", "ok", 1.0),
        ("refresh_stream_table", "error", 1.0),
    ] {
        let f = format!("function=\"{function}\"");
        let o = format!("outcome=\"{outcome}\"");
        let v = value(&m, "pgtrickle_api_calls_total", &[&f, &o]);
        assert!(
            v.unwrap_or_default() >= at_least,
            "{function} {outcome}: {v:?}\n{m}"
        );
    }
    // The stream tables' families.
    assert!(
        m.contains("# TYPE pgtrickle_refresh_duration_seconds histogram"),
        "{m}"
    );
    let buckets = series(&m, "pgtrickle_refresh_duration_seconds_bucket", &[st]);
    assert!(
        buckets.iter().any(|l| l.contains("mode=\"DIFFERENTIAL\"")),
        "no DIFFERENTIAL refresh in the histogram:\n{m}"
    );
    assert!(
        value(
            &m,
            "pgtrickle_refresh_duration_seconds_count",
            &[st, "mode=\"DIFFERENTIAL\""]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(value(&m, "pgtrickle_refresh_rows", &[st]), Some(1.0), "{m}");
    assert_eq!(
        value(&m, "pgtrickle_refresh_errors_total", &[st]),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        value(&m, "pgtrickle_stream_table_suspended", &[st]),
        Some(0.0),
        "{m}"
    );
    let staleness = value(&m, "pgtrickle_stream_table_staleness_seconds", &[st]).unwrap();
    assert!((0.0..60.0).contains(&staleness), "staleness {staleness}");
    assert!(value(
        &m,
        "pgtrickle_change_buffer_rows",
        &["source=\"public.orders\""]
    )
    .is_some());

    // The JSON behind the status page, and the page itself.
    let (code, json) = get(http, "/api/stream_tables");
    assert_eq!(code, 200);
    for needle in [
        "\"name\":\"public.totals\"",
        "\"status\":\"ACTIVE\"",
        "\"schedule\":\"1h\"",
        "\"staleness_seconds\":",
        "\"refreshes\":[[",
    ] {
        assert!(json.contains(needle), "{needle} not in {json}");
    }
    let (code, head, page) = try_get(http, "/").unwrap();
    assert_eq!(code, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{head}"
    );
    assert!(page.contains("api/stream_tables") && page.contains("<svg") || page.contains("svg"));
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "external asset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_the_upstream() {
    let (mut cluster, proxy, http) = setup_http(&[]);
    wait_for(&proxy, http, "/ready", 200, 30 * SECOND, |_| true);
    cluster.stop();
    let stopped = Instant::now();
    wait_for(&proxy, http, "/ready", 503, 10 * SECOND, |_| true);
    assert!(
        stopped.elapsed() < 6 * SECOND,
        "503 after {:?}",
        stopped.elapsed()
    );
    assert_eq!(
        get(http, "/health").0,
        200,
        "liveness does not follow the upstream"
    );
    cluster.start_again();
    wait_for(&proxy, http, "/ready", 200, 30 * SECOND, |_| true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_metrics_of_a_foreign_source() {
    let remote = Cluster::start();
    remote.psql(PRODUCTS);
    let local = Cluster::start();
    let (proxy, http) = proxy_with_http(&local, &["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute(&postgres_fdw_server_sql("remote_analytics", &remote))
        .await
        .unwrap();
    await_catalog(&client, &proxy).await;
    exec(&client, &proxy, REMOTE_PRODUCTS).await;
    create_st(
        &client,
        &proxy,
        "by_category",
        "SELECT category, count(*) AS n FROM remote_products GROUP BY category",
        ", schedule => '1h'",
    )
    .await;
    remote.psql("INSERT INTO products VALUES (31, 'c1', 31)");
    refresh(&client, &proxy, "by_category").await;
    let src = "source=\"public.remote_products\"";
    let m = wait_for(&proxy, http, "/metrics", 200, 30 * SECOND, |t| {
        value(t, "pgtrickle_poll_rows_scanned", &[src]) == Some(31.0)
    });
    assert!(value(&m, "pgtrickle_poll_duration_seconds", &[src]).unwrap() >= 0.0);
    assert!(
        value(&m, "pgtrickle_poll_rows_changed", &[src]).is_some(),
        "{m}"
    );
    assert_eq!(
        value(&m, "pgtrickle_poll_errors_total", &[src]),
        Some(0.0),
        "{m}"
    );
    let st = "stream_table=\"public.by_category\"";
    assert!(
        !series(&m, "pgtrickle_refresh_duration_seconds_count", &[st]).is_empty(),
        "{m}"
    );

    // A failing poll is counted.
    remote.psql("DROP TABLE products");
    let failed = client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('by_category')")
        .await;
    assert!(failed.is_err());
    wait_for(&proxy, http, "/metrics", 200, 30 * SECOND, |t| {
        value(t, "pgtrickle_poll_errors_total", &[src]).unwrap_or_default() >= 1.0
    });
}

/// A config file: its values apply, a flag and an environment variable override it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_with_overrides() {
    let cluster = Cluster::start();
    let (file_http, flag_http) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.toml");
    std::fs::write(
        &file,
        format!(
            "# pgtrickle-proxy\nhttp-listen = \"127.0.0.1:{file_http}\"\n\
             max_client_connections = 1\nlog-format = \"json\"\nscheduler-interval-ms = 500\n"
        ),
    )
    .unwrap();
    let port = ProxyProcess::pick_port();
    let mut cmd = Command::new(proxy_bin!());
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--upstream")
        .arg(format!(
            "{}?sslmode=disable",
            cluster.url("postgres", "postgres")
        ))
        .arg("--config")
        .arg(&file)
        .arg("--http-listen")
        .arg(format!("127.0.0.1:{flag_http}"))
        .env("PGTRICKLE_MAX_CLIENT_CONNECTIONS", "2");
    let proxy = ProxyProcess::spawn(cmd, port);
    wait_for(&proxy, flag_http, "/health", 200, 30 * SECOND, |_| true);
    assert!(
        try_get(file_http, "/health").is_none(),
        "the flag overrides the file"
    );
    // The environment's limit (2), not the file's (1).
    let a = connect(&proxy.conninfo("postgres", "postgres")).await;
    let b = connect(&proxy.conninfo("postgres", "postgres")).await;
    let third = tokio_postgres::connect(
        &proxy.conninfo("postgres", "postgres"),
        tokio_postgres::NoTls,
    )
    .await;
    let err = third.err().expect("a third session is over the limit");
    assert_eq!(err.code().map(|c| c.code()), Some("53300"), "{err:?}");
    a.simple_query("SELECT 1").await.unwrap();
    b.simple_query("SELECT 1").await.unwrap();
    // The file's log format.
    let log = proxy.log();
    let first = log
        .lines()
        .find(|l| l.contains("pgtrickle-proxy ready"))
        .unwrap_or_default();
    assert!(
        first.starts_with('{') && first.contains("\"level\":\"INFO\""),
        "{log}"
    );
}

#[test]
fn config_file_with_an_unknown_key_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:1\"\nrefresh_wrokers = 4\n").unwrap();
    let out = Command::new(proxy_bin!())
        .arg("--config")
        .arg(&file)
        .arg("--upstream")
        .arg("postgres://nobody@127.0.0.1:1/nothing")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("unknown key refresh_wrokers") && stderr.contains(path_str(&file)),
        "{stderr}"
    );
    // A file that is no TOML names itself too.
    std::fs::write(&file, "listen = \n").unwrap();
    let out = Command::new(proxy_bin!())
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit() {
    let (_cluster, proxy, http) = setup_http(&["--max-client-connections", "2"]);
    let a = connect(&proxy.conninfo("postgres", "postgres")).await;
    let b = connect(&proxy.conninfo("postgres", "postgres")).await;
    let conninfo = proxy.conninfo("postgres", "postgres");
    for _ in 0..2 {
        let err = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .err()
            .expect("over the limit");
        let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
        assert_eq!(db.code().code(), "53300");
        assert_eq!(db.message(), "sorry, too many clients already");
    }
    // Sessions already open carry on.
    a.simple_query("SELECT 1").await.unwrap();
    b.simple_query("SELECT 1").await.unwrap();
    let (code, m) = get(http, "/metrics");
    assert_eq!(code, 200);
    assert_eq!(
        value(
            &m,
            "pgtrickle_client_rejected_total",
            &["reason=\"too_many_connections\""]
        ),
        Some(2.0),
        "{m}"
    );
    // A place that frees is taken again.
    drop(a);
    let start = Instant::now();
    loop {
        match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
            Ok((c, conn)) => {
                tokio::spawn(conn);
                c.simple_query("SELECT 1").await.unwrap();
                break;
            }
            Err(e) if start.elapsed() < 10 * SECOND => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no place after a session ended: {e:?}"),
        }
    }
}

// ---- SIGHUP and the TLS certificate ----

/// Accepts any server certificate (the test compares it with the files instead).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Opens a TLS connection to the proxy (SSLRequest, then the handshake) and returns it with
/// the certificate the proxy presented.
fn tls_open(port: u16) -> (TlsStream, Vec<u8>) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(20 * SECOND)).unwrap();
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .unwrap();
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).unwrap();
    assert_eq!(answer[0], b'S');
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    let cert = stream.conn.peer_certificates().unwrap()[0].to_vec();
    (stream, cert)
}

/// Reads messages up to ReadyForQuery; returns their tags.
fn read_until_ready(s: &mut TlsStream) -> Vec<u8> {
    let mut tags = Vec::new();
    loop {
        let mut head = [0u8; 5];
        s.read_exact(&mut head).unwrap();
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        s.read_exact(&mut body).unwrap();
        tags.push(head[0]);
        if head[0] == b'Z' {
            return tags;
        }
    }
}

fn write_cert(dir: &std::path::Path, name: &str) -> Vec<u8> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), name.to_string()])
        .unwrap();
    std::fs::write(dir.join("proxy.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("proxy.key"), ck.key_pair.serialize_pem()).unwrap();
    ck.cert.der().to_vec()
}

fn sighup(proxy: &ProxyProcess) {
    let status = Command::new("kill")
        .arg("-HUP")
        .arg(proxy.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_log(proxy: &ProxyProcess, needle: &str, times: usize) {
    let start = Instant::now();
    while proxy.log().matches(needle).count() < times {
        assert!(
            start.elapsed() < 20 * SECOND,
            "no {needle:?} in the log:\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_the_certificate_while_a_tls_session_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path(), "first.example");
    let cert = dir.path().join("proxy.crt");
    let key = dir.path().join("proxy.key");
    let (_cluster, proxy) = setup!(&["--tls-cert", path_str(&cert), "--tls-key", path_str(&key),]);
    let (mut session, presented) = tls_open(proxy.port());
    assert_eq!(presented, first);
    session
        .write_all(&startup_message(
            196608,
            &[("user", "postgres"), ("database", "postgres")],
        ))
        .unwrap();
    assert!(read_until_ready(&mut session).contains(&b'R'));
    session.write_all(&query("SELECT 1")).unwrap();
    assert!(read_until_ready(&mut session).contains(&b'D'));

    let second = write_cert(dir.path(), "second.example");
    sighup(&proxy);
    wait_log(&proxy, "TLS certificate reloaded", 1);
    let (_, presented) = tls_open(proxy.port());
    assert_eq!(presented, second, "new handshakes get the new certificate");
    session.write_all(&query("SELECT 2")).unwrap();
    assert!(
        read_until_ready(&mut session).contains(&b'D'),
        "the open session carries on"
    );

    // A certificate that does not load keeps the old one, and the log says why.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    sighup(&proxy);
    wait_log(&proxy, "keeping the old TLS certificate", 1);
    let (_, presented) = tls_open(proxy.port());
    assert_eq!(presented, second);
    session.write_all(&query("SELECT 3")).unwrap();
    assert!(read_until_ready(&mut session).contains(&b'D'));
}

/// A client that stops reading while the server still has rows for it is cut off after
/// `--client-write-timeout-seconds`, and its server connection closes (the backend does not
/// stay blocked in its send).
#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let (cluster, proxy) = setup!(&["--client-write-timeout-seconds", "2"]);
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    s.set_read_timeout(Some(20 * SECOND)).unwrap();
    s.write_all(&startup_message(
        196608,
        &[
            ("user", "postgres"),
            ("database", "postgres"),
            ("application_name", "never_reads"),
        ],
    ))
    .unwrap();
    // Up to the first ReadyForQuery.
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !seen.ends_with(&[b'Z', 0, 0, 0, 5, b'I']) {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed during login");
        seen.extend_from_slice(&chunk[..n]);
    }
    // About 1 GB of rows; the client reads none of them.
    s.write_all(&query(
        "SELECT repeat('x', 1000) FROM generate_series(1, 1000000)",
    ))
    .unwrap();
    let backends = || {
        cluster
            .psql(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = 'never_reads' AND state = 'active'",
            )
            .trim()
            .to_string()
    };
    let start = Instant::now();
    while backends() != "1" {
        assert!(start.elapsed() < 20 * SECOND, "the query never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let start = Instant::now();
    while backends() != "0" {
        assert!(
            start.elapsed() < 20 * SECOND,
            "the backend still sends after {:?}:\n{}",
            start.elapsed(),
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        start.elapsed() >= SECOND,
        "cut off too early: {:?}",
        start.elapsed()
    );
    wait_log(&proxy, "--client-write-timeout-seconds", 1);
}
