//! TLS on both legs of the proxy, against real PostgreSQL servers and the real psql:
//! towards clients (`--tls-cert`, `--tls-key`, `--tls-required`), towards the upstream server
//! (`sslmode` and `sslrootcert` in `--upstream`), and the CVE-2021-23214 guard (plaintext bytes
//! sent right after SSLRequest are never taken as a StartupMessage), and async COPY over TLS
//! at many sizes (records towards clients carry at most 8 KB, as PostgreSQL's).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use pgtrickle_e2e::drivers::{python_command, run_driver};
use pgtrickle_e2e::{
    path_str, proxy_bin, proxy_for, psql_err, psql_ok, setup, sqlstate_of, Cluster, ClusterOptions,
    ProxyProcess,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A throwaway certificate authority and the PEM files it issues, in a temporary folder.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

/// A server certificate: PEM texts and the files holding them.
struct Issued {
    cert_pem: String,
    key_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("pgtrickle-tls-")
            .tempdir()
            .expect("temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = params.self_signed(&ca_key).expect("self-sign CA");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write ca.pem");
        Pki { dir, ca, ca_key }
    }

    /// The CA certificate (PEM file), for sslrootcert.
    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses).
    fn issue(&self, file_stem: &str, names: &[&str]) -> Issued {
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("sign leaf");
        let issued = Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert: self.dir.path().join(format!("{file_stem}.crt")),
            key: self.dir.path().join(format!("{file_stem}.key")),
        };
        std::fs::write(&issued.cert, &issued.cert_pem).expect("write cert");
        std::fs::write(&issued.key, &issued.key_pem).expect("write key");
        issued
    }
}

/// Whether psql's `\conninfo` says the client leg is encrypted.
fn client_leg_is_tls(cluster: &Cluster, conninfo: &str) -> bool {
    let out = psql_ok(cluster, conninfo, None, &["\\conninfo", "select 'ok'"]);
    assert!(out.contains("You are connected"), "\\conninfo: {out}");
    assert!(out.trim_end().ends_with("ok"), "query output: {out}");
    out.contains("SSL connection")
}

/// The `ssl` column of pg_stat_ssl for the session psql gets through `conninfo`: whether the
/// upstream leg (proxy to server) is encrypted.
fn upstream_leg_ssl(cluster: &Cluster, conninfo: &str) -> String {
    psql_ok(
        cluster,
        conninfo,
        None,
        &["select ssl from pg_stat_ssl where pid = pg_backend_pid()"],
    )
    .trim()
    .to_string()
}

/// A connection error of tokio-postgres (no TLS) for `conninfo`.
fn tokio_postgres_connect_error(conninfo: &str) -> tokio_postgres::Error {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        match tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await {
            Ok(_) => panic!("tokio-postgres connected with {conninfo:?}, expected an error"),
            Err(e) => e,
        }
    })
}

fn proxy_with_tls(cluster: &Cluster, server: &Issued, extra: &[&str]) -> ProxyProcess {
    let mut args = vec![
        "--tls-cert",
        path_str(&server.cert),
        "--tls-key",
        path_str(&server.key),
    ];
    args.extend_from_slice(extra);
    proxy_for(proxy_bin!(), cluster, &args)
}

#[test]
fn client_tls_require_verify_full_and_plain() {
    let pki = Pki::new("client-side");
    let server = pki.issue("proxy", &["localhost", "127.0.0.1"]);
    let cluster = Cluster::start();
    let proxy = proxy_with_tls(&cluster, &server, &[]);
    let base = proxy.conninfo("postgres", "postgres");

    // sslmode=require: encrypted, certificate not checked.
    assert!(client_leg_is_tls(
        &cluster,
        &format!("{base} sslmode=require")
    ));

    // verify-full: the chain leads to our CA and the name "localhost" is in the certificate.
    let verify_full = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname=postgres \
         sslmode=verify-full sslrootcert={}",
        proxy.port(),
        path_str(&pki.ca_file())
    );
    assert!(client_leg_is_tls(&cluster, &verify_full));
    assert_eq!(
        psql_ok(&cluster, &verify_full, None, &["select 40 + 2"]).trim(),
        "42"
    );

    // verify-full by IP address: 127.0.0.1 is an IP SAN.
    let by_ip = format!(
        "{base} sslmode=verify-full sslrootcert={}",
        path_str(&pki.ca_file())
    );
    assert!(client_leg_is_tls(&cluster, &by_ip));

    // A client that trusts another CA refuses the proxy's certificate.
    let other = Pki::new("other");
    let err = psql_err(
        &cluster,
        &format!(
            "{base} sslmode=verify-full sslrootcert={}",
            path_str(&other.ca_file())
        ),
        None,
        &["select 1"],
    );
    assert!(err.contains("certificate verify failed"), "stderr: {err}");

    // TLS is optional without --tls-required: a plain client still gets in.
    assert!(!client_leg_is_tls(
        &cluster,
        &format!("{base} sslmode=disable")
    ));
    // The default (prefer) picks TLS when the proxy offers it.
    assert!(client_leg_is_tls(&cluster, &base));
}

/// psycopg's async COPY TO STDOUT over sslmode=require, at many row widths and counts, each
/// with a time limit (tests/drivers/python/tls_copy.py): a TLS record above the 8 KB libpq reads
/// at a time would leave its tail inside OpenSSL and hang the COPY.
#[test]
fn async_copy_over_tls_at_many_sizes() {
    let pki = Pki::new("copy");
    let server = pki.issue("proxy", &["127.0.0.1"]);
    let cluster = Cluster::start();
    let proxy = proxy_with_tls(&cluster, &server, &[]);
    let mut cmd = python_command("tls_copy.py");
    cmd.arg(format!(
        "{} sslmode=require",
        proxy.conninfo("postgres", "postgres")
    ));
    let out = run_driver(
        "async COPY over TLS (tests/drivers/python/tls_copy.py)",
        cmd,
        &proxy,
    );
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn tls_required_refuses_plain_clients() {
    let pki = Pki::new("required");
    let server = pki.issue("proxy", &["localhost", "127.0.0.1"]);
    let cluster = Cluster::start();
    let proxy = proxy_with_tls(&cluster, &server, &["--tls-required"]);
    let base = proxy.conninfo("postgres", "postgres");

    let err = psql_err(
        &cluster,
        &format!("{base} sslmode=disable"),
        None,
        &["select 1"],
    );
    assert!(err.contains("requires TLS"), "stderr: {err}");

    let e = tokio_postgres_connect_error(&format!("{base} sslmode=disable"));
    assert_eq!(sqlstate_of(&e), Some("28000"), "error: {e:?}");
    let message = e.as_db_error().map(|d| d.message().to_string());
    assert!(
        message.as_deref().is_some_and(|m| m.contains("TLS")),
        "message: {message:?}"
    );

    // TLS clients are served.
    assert!(client_leg_is_tls(
        &cluster,
        &format!("{base} sslmode=require")
    ));
    assert!(client_leg_is_tls(
        &cluster,
        &format!(
            "{base} sslmode=verify-full sslrootcert={}",
            path_str(&pki.ca_file())
        )
    ));
}

#[test]
fn without_certificates_tls_is_refused_cleanly() {
    let (cluster, proxy) = setup!(&[]);
    let base = proxy.conninfo("postgres", "postgres");

    let err = psql_err(
        &cluster,
        &format!("{base} sslmode=require"),
        None,
        &["select 1"],
    );
    assert!(err.contains("server does not support SSL"), "stderr: {err}");
    // prefer falls back to plain on the same proxy.
    assert!(!client_leg_is_tls(
        &cluster,
        &format!("{base} sslmode=prefer")
    ));

    // Upstream sslmode=require against a server without TLS: a clear error for the client.
    let upstream = format!("{}?sslmode=require", cluster.url("postgres", "postgres"));
    let strict = ProxyProcess::start(proxy_bin!(), &upstream, &[]);
    let err = psql_err(
        &cluster,
        &strict.conninfo("postgres", "postgres"),
        None,
        &["select 1"],
    );
    assert!(err.contains("does not support TLS"), "stderr: {err}");
    // The proxy's own error, as SQLSTATE 08006 (connection failure).
    let e = tokio_postgres_connect_error(&format!(
        "{} sslmode=disable",
        strict.conninfo("postgres", "postgres")
    ));
    assert_eq!(sqlstate_of(&e), Some("08006"), "error: {e:?}");
}

/// pg_hba.conf that accepts only TLS connections over TCP.
const HOSTSSL_ONLY: &str = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n";

#[test]
fn upstream_tls_verify_full_and_hostssl_only_server() {
    let pki = Pki::new("upstream");
    let server = pki.issue("server", &["localhost", "127.0.0.1"]);
    let cluster = Cluster::start_with(ClusterOptions {
        tls: Some((server.cert_pem.clone(), server.key_pem.clone())),
        hba: Some(HOSTSSL_ONLY.into()),
        ..Default::default()
    });
    let ca = path_str(&pki.ca_file()).to_string();
    let url = cluster.url("postgres", "postgres");

    for mode in ["verify-full", "verify-ca", "require", "prefer"] {
        let proxy = ProxyProcess::start(
            proxy_bin!(),
            &format!("{url}?sslmode={mode}&sslrootcert={ca}"),
            &[],
        );
        // The client leg is plain (the proxy has no certificate); the upstream leg is TLS.
        let conninfo = format!("{} sslmode=disable", proxy.conninfo("postgres", "postgres"));
        assert_eq!(upstream_leg_ssl(&cluster, &conninfo), "t", "sslmode={mode}");
    }

    // sslmode=disable towards a hostssl-only server: the server's pg_hba error reaches the
    // client unchanged.
    let proxy = ProxyProcess::start(proxy_bin!(), &format!("{url}?sslmode=disable"), &[]);
    let conninfo = format!("{} sslmode=disable", proxy.conninfo("postgres", "postgres"));
    let err = psql_err(&cluster, &conninfo, None, &["select 1"]);
    assert!(err.contains("no pg_hba.conf entry"), "stderr: {err}");
    let via_proxy = tokio_postgres_connect_error(&conninfo);
    let direct = tokio_postgres_connect_error(&format!(
        "{} sslmode=disable",
        cluster.conninfo("postgres", "postgres")
    ));
    assert_eq!(
        sqlstate_of(&via_proxy),
        Some("28000"),
        "error: {via_proxy:?}"
    );
    assert_eq!(
        via_proxy.as_db_error().map(|d| d.message()),
        direct.as_db_error().map(|d| d.message()),
        "proxy: {via_proxy:?}\ndirect: {direct:?}"
    );
}

#[test]
fn upstream_certificate_for_another_host() {
    let pki = Pki::new("otherhost");
    let server = pki.issue("server", &["otherhost"]);
    let cluster = Cluster::start_with(ClusterOptions {
        tls: Some((server.cert_pem.clone(), server.key_pem.clone())),
        hba: Some(HOSTSSL_ONLY.into()),
        ..Default::default()
    });
    let ca = path_str(&pki.ca_file()).to_string();
    let url = cluster.url("postgres", "postgres");

    // verify-ca checks the chain only: accepted.
    let proxy = ProxyProcess::start(
        proxy_bin!(),
        &format!("{url}?sslmode=verify-ca&sslrootcert={ca}"),
        &[],
    );
    let conninfo = format!("{} sslmode=disable", proxy.conninfo("postgres", "postgres"));
    assert_eq!(upstream_leg_ssl(&cluster, &conninfo), "t");

    // verify-full also checks the name: 127.0.0.1 is not "otherhost".
    let proxy = ProxyProcess::start(
        proxy_bin!(),
        &format!("{url}?sslmode=verify-full&sslrootcert={ca}"),
        &[],
    );
    let conninfo = format!("{} sslmode=disable", proxy.conninfo("postgres", "postgres"));
    let err = psql_err(&cluster, &conninfo, None, &["select 1"]);
    assert!(
        err.contains("TLS handshake with upstream server") && err.contains("not valid for name"),
        "stderr: {err}"
    );
    let e = tokio_postgres_connect_error(&conninfo);
    assert_eq!(sqlstate_of(&e), Some("08006"), "error: {e:?}");

    // verify-ca with a CA that did not issue the server's certificate: refused.
    let stranger = Pki::new("stranger");
    let proxy = ProxyProcess::start(
        proxy_bin!(),
        &format!(
            "{url}?sslmode=verify-ca&sslrootcert={}",
            path_str(&stranger.ca_file())
        ),
        &[],
    );
    let conninfo = format!("{} sslmode=disable", proxy.conninfo("postgres", "postgres"));
    let err = psql_err(&cluster, &conninfo, None, &["select 1"]);
    assert!(
        err.contains("TLS handshake with upstream server") && err.contains("UnknownIssuer"),
        "stderr: {err}"
    );
}

/// SSLRequest followed, in the same write, by a plaintext StartupMessage.
fn ssl_request_then_startup() -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&8u32.to_be_bytes());
    buf.extend_from_slice(&80877103u32.to_be_bytes());
    buf.extend_from_slice(&startup_message());
    buf
}

fn startup_message() -> Vec<u8> {
    let params = b"user\0postgres\0database\0postgres\0\0";
    let mut buf = Vec::new();
    buf.extend_from_slice(&((8 + params.len()) as u32).to_be_bytes());
    buf.extend_from_slice(&196608u32.to_be_bytes());
    buf.extend_from_slice(params);
    buf
}

/// Reads until the peer closes (EOF or reset); panics if it stays open for 15 s.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("connection still open after 15 s; received {got:?}")
            }
            Err(_) => return got,
        }
    }
}

#[test]
fn plaintext_after_ssl_request_is_never_a_startup_cve_2021_23214() {
    let pki = Pki::new("cve");
    let server = pki.issue("proxy", &["localhost", "127.0.0.1"]);
    let cluster = Cluster::start();
    let proxy = proxy_with_tls(&cluster, &server, &[]);

    // Control: the same StartupMessage on a plain connection logs in (trust): the proxy answers
    // AuthenticationOk. So the bytes below would be a valid startup if taken as one.
    let mut plain = TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    plain.write_all(&startup_message()).expect("write startup");
    let mut auth_ok = [0u8; 9];
    plain
        .read_exact(&mut auth_ok)
        .expect("read AuthenticationOk");
    assert_eq!(auth_ok, [b'R', 0, 0, 0, 8, 0, 0, 0, 0]);
    drop(plain);

    for _ in 0..3 {
        let mut s = TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect");
        s.write_all(&ssl_request_then_startup())
            .expect("write SSLRequest + StartupMessage");
        let mut answer = [0u8; 1];
        s.read_exact(&mut answer).expect("read SSLRequest answer");
        assert_eq!(
            answer[0], b'S',
            "the proxy has a certificate: it must accept TLS"
        );
        let rest = read_until_closed(&mut s);
        // Nothing but (at most) a TLS alert record: no AuthenticationOk, no ErrorResponse.
        assert!(
            rest.is_empty() || rest[0] == 0x15,
            "after S the proxy sent {rest:?}: the plaintext startup was taken as a session"
        );
    }

    // The proxy keeps serving: a TLS client and a plain client.
    let base = proxy.conninfo("postgres", "postgres");
    assert!(client_leg_is_tls(
        &cluster,
        &format!("{base} sslmode=require")
    ));
    assert!(!client_leg_is_tls(
        &cluster,
        &format!("{base} sslmode=disable")
    ));
}
