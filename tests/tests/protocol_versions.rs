//! Protocol 3.2 through the proxy. PostgreSQL 18 speaks 3.2, whose BackendKeyData carries a
//! longer secret (32 bytes from PostgreSQL 18) and whose CancelRequest carries it back;
//! PostgreSQL 15 speaks only 3.0 and answers a request for 3.2 with NegotiateProtocolVersion.
//! The proxy speaks 3.0 on both legs: a client that asks it for 3.2 gets NegotiateProtocolVersion
//! (3.0, encoded as PostgreSQL encodes it) before authentication, whatever the server behind it speaks, then a 3.0 BackendKeyData
//! (the backend's real pid, a 4-byte secret of the proxy's own) that cancels its queries; a
//! 3.2-style CancelRequest with a long secret cancels nothing. Each case runs against PostgreSQL
//! 15 and 18 (scripts/install-pg.sh 18 installs it), and first checks the server directly, so
//! the test knows the server under the proxy really is the one that speaks 3.2.

use std::time::{Duration, Instant};

use pgtrickle_e2e::raw_client::{cancel_request, query, startup_message, Message, RawClient};
use pgtrickle_e2e::{proxy_bin, proxy_for, Cluster, ClusterOptions};

/// Protocol version 3.2 as a StartupMessage carries it.
const PROTOCOL_3_2: u32 = (3 << 16) | 2;
const CANCEL_REQUEST_CODE: u32 = 80_877_102;

/// Logs in asking for protocol 3.2; returns the session and its messages up to ReadyForQuery.
fn login_3_2(port: u16) -> (RawClient, Vec<Message>) {
    let mut c = RawClient::connect(port);
    c.send(&startup_message(
        PROTOCOL_3_2,
        &[("user", "postgres"), ("database", "postgres")],
    ));
    let msgs = c.read_until_ready();
    (c, msgs)
}

/// The newest version a NegotiateProtocolVersion offers (major in the high 16 bits, as
/// PostgreSQL sends it and libpq 18 reads it), if the login had one.
fn negotiated_version(login: &[Message]) -> Option<u32> {
    let v = login.iter().find(|m| m.tag == b'v')?;
    Some(u32::from_be_bytes(v.body[..4].try_into().expect("4 bytes")))
}

/// BackendKeyData: (pid, secret bytes).
fn key(login: &[Message]) -> (u32, Vec<u8>) {
    let k = login
        .iter()
        .find(|m| m.tag == b'K')
        .unwrap_or_else(|| panic!("no BackendKeyData in {login:?}"));
    (
        u32::from_be_bytes(k.body[..4].try_into().expect("4 bytes")),
        k.body[4..].to_vec(),
    )
}

/// A CancelRequest with a secret of any length (protocol 3.2 allows up to 256 bytes).
fn long_cancel_request(pid: u32, secret: &[u8]) -> Vec<u8> {
    let mut v = ((12 + secret.len()) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
    v.extend_from_slice(&pid.to_be_bytes());
    v.extend_from_slice(secret);
    v
}

fn first_value(answer: &[Message]) -> String {
    let row = answer.iter().find(|m| m.tag == b'D').expect("a DataRow");
    let len = i32::from_be_bytes(row.body[2..6].try_into().expect("4 bytes")) as usize;
    String::from_utf8_lossy(&row.body[6..6 + len]).into_owned()
}

fn start(major: u32) -> Cluster {
    let cluster = Cluster::start_with(ClusterOptions {
        major: Some(major),
        ..Default::default()
    });
    assert_eq!(cluster.major_version(), major);
    cluster
}

/// What the server itself answers to a 3.2 login: PostgreSQL 18 accepts it (no
/// NegotiateProtocolVersion, a 32-byte secret), 15 negotiates 3.0 (a 4-byte secret).
fn check_server_directly(cluster: &Cluster, speaks_3_2: bool) {
    let (_session, login) = login_3_2(cluster.port());
    let (_, secret) = key(&login);
    if speaks_3_2 {
        assert_eq!(negotiated_version(&login), None, "{login:?}");
        assert_eq!(secret.len(), 32, "PostgreSQL 18's secret under 3.2");
    } else {
        assert_eq!(negotiated_version(&login), Some(3 << 16), "{login:?}");
        assert_eq!(secret.len(), 4);
    }
}

fn protocol_3_2_through_the_proxy(major: u32, speaks_3_2: bool) {
    let cluster = start(major);
    check_server_directly(&cluster, speaks_3_2);
    let proxy = proxy_for(proxy_bin!(), &cluster, &[]);

    let (mut session, login) = login_3_2(proxy.port());
    // NegotiateProtocolVersion (3.0) comes first, before the authentication messages.
    assert_eq!(login[0].tag, b'v', "{login:?}");
    assert_eq!(negotiated_version(&login), Some(3 << 16));
    assert_eq!(
        u32::from_be_bytes(login[0].body[4..8].try_into().expect("4 bytes")),
        0,
        "no option was asked for"
    );
    assert_eq!(login.iter().filter(|m| m.tag == b'v').count(), 1);
    let (pid, secret) = key(&login);
    assert_eq!(
        secret.len(),
        4,
        "a 3.0 BackendKeyData after negotiating 3.0"
    );
    session.send(&query("select pg_backend_pid()"));
    assert_eq!(first_value(&session.read_until_ready()), pid.to_string());

    // A 3.2-style CancelRequest (a 32-byte secret, the proxy's 4 bytes padded) cancels nothing.
    session.send(&query("select 'slept' from pg_sleep(1)"));
    std::thread::sleep(Duration::from_millis(200));
    let mut long = secret.clone();
    long.resize(32, 0);
    let mut c = RawClient::connect(proxy.port());
    c.send(&long_cancel_request(pid, &long));
    assert!(c.is_closed());
    let answer = session.read_until_ready();
    assert!(answer.iter().all(|m| m.tag != b'E'), "{answer:?}");
    assert_eq!(first_value(&answer), "slept");

    // The 3.0 CancelRequest with the key the session got cancels a running query.
    session.send(&query("select pg_sleep(60)"));
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let secret = u32::from_be_bytes(secret[..4].try_into().expect("4 bytes"));
    let mut c = RawClient::connect(proxy.port());
    c.send(&cancel_request(pid, secret));
    assert!(c.is_closed());
    let answer = session.read_until_ready();
    assert!(
        answer
            .iter()
            .any(|m| m.tag == b'E' && m.sqlstate().as_deref() == Some("57014")),
        "not cancelled: {answer:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    session.send(&query("select 'still here'"));
    assert_eq!(first_value(&session.read_until_ready()), "still here");
}

#[test]
fn protocol_3_2_to_postgres_18_which_speaks_it() {
    protocol_3_2_through_the_proxy(18, true);
}

#[test]
fn protocol_3_2_to_postgres_15_which_does_not() {
    protocol_3_2_through_the_proxy(15, false);
}
