//! Password authentication relayed through the proxy (cleartext, MD5, SCRAM-SHA-256) against a
//! real server's pg_hba.conf, and the deliberate behaviour of SCRAM channel binding through a
//! TLS-terminating proxy (see proxy/src/session/login.rs and docs/AUTHENTICATION.md).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::task::{Context, Poll};

use pgtrickle_e2e::{
    path_str, proxy_bin, proxy_for, psql_err, psql_ok, sqlstate_of, Cluster, ClusterOptions,
    ProxyProcess,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

const MD5_PASSWORD: &str = "Md5-pw-3f9c1a7e";
const SCRAM_PASSWORD: &str = "Scram-pw-8b2d4e60";
const CLEAR_PASSWORD: &str = "Clear-pw-5a71c93d";
const WRONG_PASSWORD: &str = "Wrong-pw-0e6f2b94";

/// A CA and a certificate for localhost / 127.0.0.1, as PEM texts and files.
struct Certs {
    dir: tempfile::TempDir,
    ca_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::Builder::new()
            .prefix("pgtrickle-auth-")
            .tempdir()
            .expect("temp dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "auth test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = ca_params.self_signed(&ca_key).expect("self-sign CA");

        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("sign leaf");
        let certs = Certs {
            ca_der: ca.der().to_vec(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            dir,
        };
        std::fs::write(certs.ca_file(), ca.pem()).expect("write ca");
        std::fs::write(certs.cert_file(), &certs.cert_pem).expect("write cert");
        std::fs::write(certs.key_file(), &certs.key_pem).expect("write key");
        certs
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
    fn cert_file(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }
    fn key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Connects tokio-postgres without TLS and returns `select current_user`, or the error.
fn tokio_postgres_login(conninfo: &str) -> Result<String, tokio_postgres::Error> {
    runtime().block_on(async {
        let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let row = client.query_one("select current_user::text", &[]).await?;
        Ok(row.get(0))
    })
}

fn db_message(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error().map(|d| d.message().to_string())
}

/// Starts the proxy with full trace logging (so that the password check of its log covers
/// everything it could print): `env -u RUST_LOG` lets `--log trace` apply.
fn traced_proxy(cluster: &Cluster) -> ProxyProcess {
    let port = ProxyProcess::pick_port();
    let mut cmd = Command::new("env");
    cmd.args(["-u", "RUST_LOG"])
        .arg(proxy_bin!())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--upstream")
        .arg(format!(
            "{}?sslmode=disable",
            cluster.url("postgres", "postgres")
        ))
        .args(["--log", "trace"]);
    ProxyProcess::spawn(cmd, port)
}

const PASSWORD_HBA: &str = "local all all trust\n\
     host all postgres 127.0.0.1/32 trust\n\
     host all md5user 127.0.0.1/32 md5\n\
     host all scramuser 127.0.0.1/32 scram-sha-256\n\
     host all clearuser 127.0.0.1/32 password\n";

fn create_users(cluster: &Cluster) {
    cluster.psql(&format!(
        "set password_encryption = 'md5'; \
         create role md5user login password '{MD5_PASSWORD}'; \
         set password_encryption = 'scram-sha-256'; \
         create role scramuser login password '{SCRAM_PASSWORD}'; \
         create role clearuser login password '{CLEAR_PASSWORD}';"
    ));
    // The stored verifiers are of the kind each hba method needs.
    let kinds = cluster.psql(
        "select rolname || ':' || split_part(rolpassword, '$', 1) from pg_authid \
         where rolname in ('md5user', 'scramuser') order by rolname",
    );
    let kinds: Vec<&str> = kinds.lines().collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds[0].starts_with("md5user:md5"), "{kinds:?}");
    assert_eq!(kinds[1], "scramuser:SCRAM-SHA-256", "{kinds:?}");
}

#[test]
fn md5_scram_and_cleartext_passwords_are_relayed() {
    let cluster = Cluster::start_with(ClusterOptions {
        hba: Some(PASSWORD_HBA.into()),
        ..Default::default()
    });
    create_users(&cluster);
    let proxy = traced_proxy(&cluster);

    for (user, password) in [
        ("md5user", MD5_PASSWORD),
        ("scramuser", SCRAM_PASSWORD),
        ("clearuser", CLEAR_PASSWORD),
    ] {
        let conninfo = format!("{} sslmode=disable", proxy.conninfo(user, "postgres"));
        // Right password: in.
        let me = psql_ok(
            &cluster,
            &conninfo,
            Some(password),
            &["select current_user"],
        );
        assert_eq!(me.trim(), user);
        assert_eq!(
            tokio_postgres_login(&format!("{conninfo} password={password}")).unwrap(),
            user
        );

        // Wrong password: out, with the server's own error.
        let err = psql_err(&cluster, &conninfo, Some(WRONG_PASSWORD), &["select 1"]);
        assert!(
            err.contains(&format!(
                "password authentication failed for user \"{user}\""
            )),
            "{user}: {err}"
        );
        let via_proxy = tokio_postgres_login(&format!("{conninfo} password={WRONG_PASSWORD}"))
            .expect_err("wrong password accepted through the proxy");
        let direct = tokio_postgres_login(&format!(
            "{} sslmode=disable password={WRONG_PASSWORD}",
            cluster.conninfo(user, "postgres")
        ))
        .expect_err("wrong password accepted by the server");
        assert_eq!(
            sqlstate_of(&via_proxy),
            Some("28P01"),
            "{user}: {via_proxy:?}"
        );
        assert_eq!(sqlstate_of(&direct), Some("28P01"), "{user}: {direct:?}");
        assert_eq!(db_message(&via_proxy), db_message(&direct), "{user}");

        // No password at all: psql gives up (-w) instead of hanging, the server asked for one.
        let err = psql_err(&cluster, &conninfo, None, &["select 1"]);
        assert!(err.contains("no password supplied"), "{user}: {err}");
    }

    // Trust still needs nothing.
    let me = psql_ok(
        &cluster,
        &format!("{} sslmode=disable", proxy.conninfo("postgres", "postgres")),
        None,
        &["select current_user"],
    );
    assert_eq!(me.trim(), "postgres");

    // The proxy never writes a password (or its MD5 hash) into its log, even at trace level.
    let log = proxy.log();
    assert!(
        log.contains("login rejected") && log.contains("session logged in"),
        "expected debug-level lines about the logins:\n{log}"
    );
    for secret in [MD5_PASSWORD, SCRAM_PASSWORD, CLEAR_PASSWORD, WRONG_PASSWORD] {
        assert!(
            !log.contains(secret),
            "password {secret} in the proxy log:\n{log}"
        );
    }
}

/// tokio-postgres over rustls, trusting `ca_der`, with a real tls-server-end-point channel
/// binding: with `channel_binding=prefer` it sends the GS2 flag `y` when the server offers only
/// SCRAM-SHA-256, exactly as libpq does.
#[derive(Clone)]
struct RustlsConnect(Arc<rustls::ClientConfig>);

impl RustlsConnect {
    fn new(ca_der: &[u8]) -> RustlsConnect {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(ca_der.to_vec()))
            .expect("add CA");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        RustlsConnect(Arc::new(config))
    }
}

struct RustlsStream(tokio_rustls::client::TlsStream<TcpStream>);

impl tokio_postgres::tls::TlsConnect<TcpStream> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: TcpStream) -> Self::Future {
        Box::pin(async move {
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            let tls = tokio_rustls::TlsConnector::from(self.0)
                .connect(name, stream)
                .await?;
            Ok(RustlsStream(tls))
        })
    }
}

impl tokio_postgres::tls::TlsStream for RustlsStream {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        let (_, conn) = self.0.get_ref();
        match conn.peer_certificates().and_then(|c| c.first()) {
            Some(cert) => tokio_postgres::tls::ChannelBinding::tls_server_end_point(
                ring::digest::digest(&ring::digest::SHA256, cert)
                    .as_ref()
                    .to_vec(),
            ),
            None => tokio_postgres::tls::ChannelBinding::none(),
        }
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Logs in with tokio-postgres over TLS (sslmode=require in `conninfo`) and returns
/// `current_user` and whether the upstream leg is TLS, or the error.
fn tokio_postgres_tls_login(
    port: u16,
    conninfo: &str,
    ca_der: &[u8],
) -> Result<(String, bool), tokio_postgres::Error> {
    let config: tokio_postgres::Config = conninfo.parse().expect("conninfo");
    let tls = RustlsConnect::new(ca_der);
    runtime().block_on(async move {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("tcp connect");
        let (client, connection) = config.connect_raw(tcp, tls).await?;
        tokio::spawn(connection);
        let row = client
            .query_one(
                "select current_user::text, ssl from pg_stat_ssl where pid = pg_backend_pid()",
                &[],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    })
}

/// `current_user` and the upstream leg's `pg_stat_ssl.ssl`, through psql.
fn psql_login(cluster: &Cluster, conninfo: &str) -> String {
    psql_ok(
        cluster,
        conninfo,
        Some(SCRAM_PASSWORD),
        &[
            "\\conninfo",
            "select current_user || ' ' || ssl from pg_stat_ssl where pid = pg_backend_pid()",
        ],
    )
}

const LIBPQ_NO_PLUS: &str = "channel binding is required, but server did not offer an \
                             authentication method that supports channel binding";

#[test]
fn channel_binding_with_tls_client_and_plain_upstream() {
    let certs = Certs::new();
    let cluster = Cluster::start_with(ClusterOptions {
        hba: Some(PASSWORD_HBA.into()),
        ..Default::default()
    });
    create_users(&cluster);
    let proxy = proxy_for(
        proxy_bin!(),
        &cluster,
        &[
            "--tls-cert",
            path_str(&certs.cert_file()),
            "--tls-key",
            path_str(&certs.key_file()),
        ],
    );
    let base = format!(
        "{} sslmode=verify-full sslrootcert={}",
        proxy.conninfo("scramuser", "postgres"),
        path_str(&certs.ca_file())
    );

    // require: the proxy never offers SCRAM-SHA-256-PLUS, so libpq refuses on its own.
    let err = psql_err(
        &cluster,
        &format!("{base} channel_binding=require"),
        Some(SCRAM_PASSWORD),
        &["select 1"],
    );
    assert!(err.contains(LIBPQ_NO_PLUS), "stderr: {err}");

    // prefer (libpq's default) and disable log in over TLS; the upstream leg is plain.
    for cb in ["prefer", "disable"] {
        let out = psql_login(&cluster, &format!("{base} channel_binding={cb}"));
        assert!(
            out.contains("SSL connection"),
            "channel_binding={cb}: {out}"
        );
        assert!(
            out.trim_end().ends_with("scramuser false"),
            "channel_binding={cb}: {out}"
        );
    }
    // A wrong password over TLS is still the server's error.
    let err = psql_err(
        &cluster,
        &format!("{base} channel_binding=prefer"),
        Some(WRONG_PASSWORD),
        &["select 1"],
    );
    assert!(
        err.contains("password authentication failed for user \"scramuser\""),
        "stderr: {err}"
    );

    // tokio-postgres with a real channel binding (GS2 flag y) logs in too.
    let (user, upstream_tls) = tokio_postgres_tls_login(
        proxy.port(),
        &format!(
            "host=localhost user=scramuser dbname=postgres password={SCRAM_PASSWORD} \
             sslmode=require channel_binding=prefer"
        ),
        &certs.ca_der,
    )
    .expect("tokio-postgres over TLS");
    assert_eq!((user.as_str(), upstream_tls), ("scramuser", false));
}

#[test]
fn channel_binding_with_tls_on_both_legs() {
    let certs = Certs::new();
    let cluster = Cluster::start_with(ClusterOptions {
        tls: Some((certs.cert_pem.clone(), certs.key_pem.clone())),
        hba: Some(PASSWORD_HBA.into()),
        ..Default::default()
    });
    create_users(&cluster);

    // Sanity: directly, the server offers channel binding over TLS.
    let direct = psql_login(
        &cluster,
        &format!(
            "{} sslmode=require channel_binding=require",
            cluster.conninfo("scramuser", "postgres")
        ),
    );
    assert!(direct.trim_end().ends_with("scramuser true"), "{direct}");

    let (cert_file, key_file) = (certs.cert_file(), certs.key_file());
    let tls_args = [
        "--tls-cert",
        path_str(&cert_file),
        "--tls-key",
        path_str(&key_file),
    ];
    let url = cluster.url("postgres", "postgres");

    // Upstream sslmode=prefer: a client that prefers channel binding logs in, the proxy redoing
    // the exchange on a plain upstream connection; one that disables it keeps TLS upstream.
    let proxy = ProxyProcess::start(proxy_bin!(), &format!("{url}?sslmode=prefer"), &tls_args);
    let base = format!(
        "{} sslmode=require",
        proxy.conninfo("scramuser", "postgres")
    );
    let out = psql_login(&cluster, &format!("{base} channel_binding=prefer"));
    assert!(out.contains("SSL connection"), "{out}");
    assert!(out.trim_end().ends_with("scramuser false"), "{out}");
    let out = psql_login(&cluster, &format!("{base} channel_binding=disable"));
    assert!(out.contains("SSL connection"), "{out}");
    assert!(out.trim_end().ends_with("scramuser true"), "{out}");
    let err = psql_err(
        &cluster,
        &format!("{base} channel_binding=require"),
        Some(SCRAM_PASSWORD),
        &["select 1"],
    );
    assert!(err.contains(LIBPQ_NO_PLUS), "stderr: {err}");
    // The redone exchange still checks the password.
    let err = psql_err(
        &cluster,
        &format!("{base} channel_binding=prefer"),
        Some(WRONG_PASSWORD),
        &["select 1"],
    );
    assert!(
        err.contains("password authentication failed for user \"scramuser\""),
        "stderr: {err}"
    );
    let tp = tokio_postgres_tls_login(
        proxy.port(),
        &format!(
            "host=localhost user=scramuser dbname=postgres password={SCRAM_PASSWORD} \
             sslmode=require channel_binding=prefer"
        ),
        &certs.ca_der,
    )
    .expect("tokio-postgres, channel_binding=prefer, upstream prefer");
    assert_eq!((tp.0.as_str(), tp.1), ("scramuser", false));
    assert!(
        proxy.log().contains("channel binding"),
        "the proxy should warn about the plain upstream connection:\n{}",
        proxy.log()
    );

    // Upstream sslmode=require: the proxy refuses a client that prefers channel binding, with
    // its own 28000 error and a hint; channel_binding=disable logs in over TLS both ways.
    let proxy = ProxyProcess::start(proxy_bin!(), &format!("{url}?sslmode=require"), &tls_args);
    let base = format!(
        "{} sslmode=require",
        proxy.conninfo("scramuser", "postgres")
    );
    let err = psql_err(
        &cluster,
        &format!("{base} channel_binding=prefer"),
        Some(SCRAM_PASSWORD),
        &["select 1"],
    );
    assert!(
        err.contains("SCRAM channel binding cannot pass through pgtrickle-proxy")
            && err.contains("channel_binding=disable"),
        "stderr: {err}"
    );
    let e = tokio_postgres_tls_login(
        proxy.port(),
        &format!(
            "host=localhost user=scramuser dbname=postgres password={SCRAM_PASSWORD} \
             sslmode=require channel_binding=prefer"
        ),
        &certs.ca_der,
    )
    .expect_err("channel binding over two TLS legs must be refused");
    assert_eq!(sqlstate_of(&e), Some("28000"), "{e:?}");
    assert!(
        db_message(&e).is_some_and(|m| m.contains("channel binding")),
        "{e:?}"
    );
    let out = psql_login(&cluster, &format!("{base} channel_binding=disable"));
    assert!(out.contains("SSL connection"), "{out}");
    assert!(out.trim_end().ends_with("scramuser true"), "{out}");
    let tp = tokio_postgres_tls_login(
        proxy.port(),
        &format!(
            "host=localhost user=scramuser dbname=postgres password={SCRAM_PASSWORD} \
             sslmode=require channel_binding=disable"
        ),
        &certs.ca_der,
    )
    .expect("tokio-postgres, channel_binding=disable, upstream require");
    assert_eq!((tp.0.as_str(), tp.1), ("scramuser", true));

    // md5 users are unaffected by channel binding, over TLS both ways.
    let me = psql_ok(
        &cluster,
        &format!("{} sslmode=require", proxy.conninfo("md5user", "postgres")),
        Some(MD5_PASSWORD),
        &["select current_user || ' ' || ssl from pg_stat_ssl where pid = pg_backend_pid()"],
    );
    assert_eq!(me.trim(), "md5user true");
}
