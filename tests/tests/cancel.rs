//! Query cancellation through the proxy: from tokio-postgres and from psql (Ctrl-C), a cancel
//! with a wrong key that must not cancel anything, a cancel that is over when its connection
//! closes, and the session's key carrying its backend's real pid.

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
    let child = Command::new(cluster.client_program("psql"))
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
    // The pid is the server's; the secret is the proxy's own.
    let backend_pid: u32 = cluster
        .psql("select pid from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid() and application_name = ''")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, backend_pid);

    session.send(&pgtrickle_e2e::raw_client::query(
        "select pg_sleep(1.5), 'done'",
    ));
    std::thread::sleep(Duration::from_millis(300));
    for (p, s) in [(pid, secret ^ 1), (pid ^ 1, secret), (pid, !secret)] {
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

/// Reads the BackendKeyData of a login: (pid, secret).
fn key_of(login: &[pgtrickle_e2e::raw_client::Message]) -> (u32, u32) {
    let key = login
        .iter()
        .find(|m| m.tag == b'K')
        .expect("BackendKeyData");
    (
        u32::from_be_bytes(key.body[..4].try_into().unwrap()),
        u32::from_be_bytes(key.body[4..8].try_into().unwrap()),
    )
}

/// The first value of the first DataRow of an answer.
fn first_value(answer: &[pgtrickle_e2e::raw_client::Message]) -> String {
    let row = answer.iter().find(|m| m.tag == b'D').expect("a DataRow");
    let len = i32::from_be_bytes(row.body[2..6].try_into().unwrap()) as usize;
    String::from_utf8(row.body[6..6 + len].to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_key_carries_the_backends_pid() {
    let (_cluster, proxy) = setup!(&[]);
    let (mut session, login) = RawClient::login(proxy.port(), "postgres", "postgres");
    let (pid, _) = key_of(&login);
    session.send(&pgtrickle_e2e::raw_client::query("select pg_backend_pid()"));
    assert_eq!(first_value(&session.read_until_ready()), pid.to_string());

    // A notification names the notifying backend with the pid its session holds.
    let (listener, mut connection) = tokio_postgres::connect(
        &proxy.conninfo("postgres", "postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        use futures_util::StreamExt;
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.process_id());
            }
        }
    });
    listener.batch_execute("LISTEN pids").await.unwrap();
    session.send(&pgtrickle_e2e::raw_client::query("NOTIFY pids"));
    session.read_until_ready();
    let notified = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a notification")
        .unwrap();
    assert_eq!(notified as u32, pid);

    // Terminating that pid ends this very session, as directly.
    listener
        .batch_execute(&format!("SELECT pg_terminate_backend({pid})"))
        .await
        .unwrap();
    let rest = session.read_to_end();
    assert!(
        rest.iter()
            .any(|m| m.tag == b'E' && m.sqlstate().as_deref() == Some("57P01")),
        "the session was not terminated: {rest:?}"
    );
}

/// A client whose cancel connection was closed may rely on the cancel having reached the
/// server: it must not cancel the next query. (PostgreSQL closes the connection only after it
/// signalled the backend; libpq and asyncpg wait for that close.)
#[test]
fn a_cancel_is_over_when_its_connection_closes() {
    let (_cluster, proxy) = setup!(&[]);
    let (mut session, login) = RawClient::login(proxy.port(), "postgres", "postgres");
    let (pid, secret) = key_of(&login);
    let mut cancelled = 0;
    for _ in 0..30 {
        let mut c = RawClient::connect(proxy.port());
        c.send(&pgtrickle_e2e::raw_client::cancel_request(pid, secret));
        assert!(c.is_closed());
        session.send(&pgtrickle_e2e::raw_client::query("select pg_sleep(0.05)"));
        let answer = session.read_until_ready();
        if answer
            .iter()
            .any(|m| m.tag == b'E' && m.sqlstate().as_deref() == Some("57014"))
        {
            cancelled += 1;
        }
    }
    assert_eq!(
        cancelled, 0,
        "cancels of an idle session landed on the next query"
    );
}
