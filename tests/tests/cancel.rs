//! Query cancellation through the proxy: from tokio-postgres and from psql (Ctrl-C), and a
//! cancel with a wrong key that must not cancel anything.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgtrickle_e2e::raw_client::RawClient;
use pgtrickle_e2e::{connect, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_cancels_a_running_query() {
    let (_cluster, proxy) = setup!(&[]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    let token = client.cancel_token();
    let started = Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    let err = client
        .batch_execute("select pg_sleep(60)")
        .await
        .unwrap_err();
    canceller.await.unwrap().unwrap();
    assert_eq!(err.code().unwrap().code(), "57014");
    assert!(started.elapsed() < Duration::from_secs(30));
    // The session is still usable.
    let row = client.query_one("select 1::int4", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}

#[test]
fn psql_ctrl_c_cancels_a_running_query() {
    let (cluster, proxy) = setup!(&[]);
    let child = Command::new(cluster.bin_dir().join("psql"))
        .args(["-X", "-d"])
        .arg(proxy.conninfo("postgres", "postgres"))
        .args(["-c", "select pg_sleep(60)"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the query runs, then send psql the SIGINT a Ctrl-C would.
    let started = Instant::now();
    loop {
        let running = cluster.psql(
            "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' \
             and state = 'active'",
        );
        if running.trim() == "1" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "query never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("canceling statement due to user request"),
        "psql said: {stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_cancel_with_a_wrong_key_cancels_nothing() {
    let (cluster, proxy) = setup!(&[]);
    let (mut session, login) = RawClient::login(proxy.port(), "postgres", "postgres");
    let key = login
        .iter()
        .find(|m| m.tag == b'K')
        .expect("BackendKeyData");
    let pid = u32::from_be_bytes(key.body[..4].try_into().unwrap());
    let secret = u32::from_be_bytes(key.body[4..8].try_into().unwrap());
    // The proxy's key is its own, not the server's.
    let backend_pid: u32 = cluster
        .psql("select pid from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid() and application_name = ''")
        .trim()
        .parse()
        .unwrap();
    assert_ne!(pid, backend_pid);

    session.send(&pgtrickle_e2e::raw_client::query(
        "select pg_sleep(1.5), 'done'",
    ));
    std::thread::sleep(Duration::from_millis(300));
    for (p, s) in [(pid, secret ^ 1), (pid ^ 1, secret), (backend_pid, secret)] {
        let mut c = RawClient::connect(proxy.port());
        c.send(&pgtrickle_e2e::raw_client::cancel_request(p, s));
        assert!(c.is_closed());
    }
    let answer = session.read_until_ready();
    assert!(
        answer.iter().all(|m| m.tag != b'E'),
        "query was cancelled by a wrong key: {answer:?}"
    );
    assert!(answer.iter().any(|m| m.tag == b'D'));
}
