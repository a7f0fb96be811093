//! Hostile and broken input never takes the proxy down: malformed first packets and messages
//! close only their own connection; newer protocol versions get a clean answer; an upstream
//! that goes away mid-session gives the client an error and the proxy serves again once the
//! server is back.

use std::io::Write;
use std::time::Duration;

use pgtrickle_e2e::raw_client::{self, startup_message, RawClient};
use pgtrickle_e2e::{assert_serves, connect, setup};
use rand::{Rng, SeedableRng};

#[test]
fn malformed_first_packets_close_only_their_connection() {
    let (_cluster, proxy) = setup!(&[]);
    // A session that stays open through all of it.
    let (mut bystander, _) = RawClient::login(proxy.port(), "postgres", "postgres");
    let cases: Vec<Vec<u8>> = vec![
        vec![0, 0, 0, 3],                                  // length below minimum
        vec![0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0],          // 2 GiB startup packet
        vec![0, 0, 0x27, 0x11, 0, 3, 0, 0],                // 10001 bytes: over the cap
        startup_message(2 << 16, &[("user", "postgres")]), // protocol 2
        startup_message(3 << 16, &[("database", "x")]),    // no user
        {
            let mut v = startup_message(3 << 16, &[("user", "postgres")]);
            v.truncate(v.len() - 3); // truncated, then the client hangs up
            v
        },
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ];
    for case in cases {
        let mut c = RawClient::connect(proxy.port());
        c.send(&case);
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        let answer = c.read_to_end();
        assert!(
            answer.iter().all(|m| m.tag == b'E'),
            "unexpected answer to {case:?}: {answer:?}"
        );
    }
    // The protocol-2 client is told why.
    let mut c = RawClient::connect(proxy.port());
    c.send(&startup_message(2 << 16, &[("user", "postgres")]));
    let err = c.read_message().unwrap();
    assert_eq!(err.sqlstate().as_deref(), Some("0A000"));
    assert!(err
        .field(b'M')
        .unwrap()
        .contains("unsupported frontend protocol"));

    bystander.send(&raw_client::query("select 1"));
    assert!(bystander.read_until_ready().iter().any(|m| m.tag == b'D'));
    assert_serves(&proxy);
}

#[test]
fn malformed_messages_after_login_close_only_their_connection() {
    let (_cluster, proxy) = setup!(&[]);
    let (mut bystander, _) = RawClient::login(proxy.port(), "postgres", "postgres");
    for bad in [
        vec![b'Q', 0, 0, 0, 2],               // length below 4
        vec![b'Q', 0x7f, 0xff, 0xff, 0xff],   // 2 GiB: above the 1 GiB limit
        vec![b'Q', 0, 0, 0, 100, b's', b'e'], // truncated, then the client hangs up
    ] {
        let (mut c, _) = RawClient::login(proxy.port(), "postgres", "postgres");
        c.send(&bad);
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        let answer = c.read_to_end();
        assert!(answer.iter().all(|m| m.tag == b'E'), "{answer:?}");
    }
    bystander.send(&raw_client::query("select 1"));
    assert!(bystander.read_until_ready().iter().any(|m| m.tag == b'D'));
    assert_serves(&proxy);
}

#[test]
fn random_garbage_from_many_connections_never_crashes_the_proxy() {
    let (_cluster, proxy) = setup!(&[]);
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for round in 0..200 {
        let mut c = RawClient::connect(proxy.port());
        let mut bytes: Vec<u8> = match round % 3 {
            // Pure noise.
            0 => (0..rng.gen_range(1..300)).map(|_| rng.gen()).collect(),
            // A valid login followed by noise.
            1 => startup_message(3 << 16, &[("user", "postgres"), ("database", "postgres")]),
            // SSLRequest / GSSENCRequest then noise.
            _ => vec![0, 0, 0, 8, 4, 0xd2, 0x16, rng.gen_range(0x2f..0x31)],
        };
        bytes.extend((0..rng.gen_range(0..300)).map(|_| rng.gen::<u8>()));
        let _ = c.stream.write_all(&bytes);
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        c.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = c.read_to_end();
    }
    assert_serves(&proxy);
    // Nothing accumulates from the connections that were closed.
    let rss_kb = pgtrickle_e2e::rss_kb(proxy.pid());
    assert!(
        rss_kb < 64 * 1024,
        "proxy RSS {rss_kb} kB after 200 hostile connections"
    );
}

#[test]
fn newer_protocol_versions_and_gssenc_get_clean_answers() {
    let (_cluster, proxy) = setup!(&[]);
    // GSSENCRequest is answered N, then a normal startup follows on the same connection.
    let mut c = RawClient::connect(proxy.port());
    c.send(&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x30]);
    assert_eq!(c.read_byte(), Some(b'N'));
    c.send(&startup_message(3 << 16, &[("user", "postgres")]));
    assert!(c.read_until_ready().iter().any(|m| m.tag == b'R'));

    // Protocol 3.2 with an option: NegotiateProtocolVersion names 3.0 and the option.
    let mut c = RawClient::connect(proxy.port());
    c.send(&startup_message(
        (3 << 16) | 2,
        &[("user", "postgres"), ("_pq_.future_feature", "on")],
    ));
    let msgs = c.read_until_ready();
    let v = msgs
        .iter()
        .find(|m| m.tag == b'v')
        .expect("NegotiateProtocolVersion");
    // The version as PostgreSQL sends it: 3.0 is 0x0003_0000 (libpq 18 reads it so).
    assert_eq!(&v.body[..8], &[0, 3, 0, 0, 0, 0, 0, 1]);
    assert_eq!(&v.body[8..], b"_pq_.future_feature\0");
    c.send(&raw_client::query("select 1"));
    assert!(c.read_until_ready().iter().any(|m| m.tag == b'D'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_goes_away_and_comes_back() {
    let (mut cluster, proxy) = setup!(&[]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client.batch_execute("select 1").await.unwrap();

    // A session whose server backend is terminated gets the server's own error.
    let victim = connect(&proxy.conninfo("postgres", "postgres")).await;
    let pid: i32 = victim
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    cluster.psql(&format!("select pg_terminate_backend({pid})"));
    let err = victim.batch_execute("select 1").await.unwrap_err();
    assert!(err.is_closed() || err.code().is_some(), "{err}");

    cluster.stop();
    let err = client.batch_execute("select 1").await.unwrap_err();
    assert!(err.is_closed() || err.as_db_error().is_some(), "{err:?}");

    // While the server is down, new sessions get a clear error from the proxy.
    let (mut c, _) = (RawClient::connect(proxy.port()), ());
    c.send(&startup_message(3 << 16, &[("user", "postgres")]));
    let err = c.read_message().expect("an error message");
    assert_eq!(err.tag, b'E');
    assert_eq!(err.sqlstate().as_deref(), Some("08006"));
    assert!(err
        .field(b'M')
        .unwrap()
        .contains("could not connect to upstream"));

    cluster.start_again();
    let again = connect(&proxy.conninfo("postgres", "postgres")).await;
    let row = again.query_one("select 2::int4", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
}
