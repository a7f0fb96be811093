//! Hostile statements and connection floods from an ordinary login cost the proxy at most an
//! error for that one client: deep statements of every shape never crash it; large API
//! statements are refused with 54000 and memory stays bounded; parsing never stalls other
//! sessions; idle unauthenticated connections cannot lock real clients out; statement text
//! stays out of the log.

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use pgtrickle_e2e::raw_client::{self, Message, RawClient};
use pgtrickle_e2e::{assert_serves, proxy_bin, setup, Cluster, ProxyProcess};

/// Peak and current resident memory of a process, in kB.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} for {pid}"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn login(proxy: &ProxyProcess) -> RawClient {
    RawClient::login(proxy.port(), "postgres", "postgres").0
}

fn error_of(answer: &[Message]) -> Option<(String, String)> {
    answer.iter().find(|m| m.tag == b'E').map(|e| {
        (
            e.sqlstate().unwrap_or_default(),
            e.field(b'M').unwrap_or_default(),
        )
    })
}

/// Expressions of each deep shape, about `n` levels.
fn shapes(n: usize) -> Vec<(&'static str, String)> {
    vec![
        ("operator chain", format!("1{}", "+1".repeat(n))),
        ("AND chain", format!("true{}", " AND true".repeat(n))),
        (
            "parentheses",
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        ),
        (
            "subqueries",
            format!("{}1{}", "(SELECT ".repeat(n), ")".repeat(n)),
        ),
        (
            "CASE",
            format!("{}1{}", "CASE WHEN true THEN ".repeat(n), " END".repeat(n)),
        ),
        ("casts", format!("1{}", "::int".repeat(n))),
        ("IN list", format!("1 IN (1{})", ",1".repeat(n))),
    ]
}

#[test]
fn deep_statements_of_every_shape_cost_one_error() {
    let (_cluster, proxy) = setup!(&[]);
    let mut bystander = login(&proxy);

    // The reported statement: no API call, forwarded; PostgreSQL answers it.
    let mut c = login(&proxy);
    c.send(&raw_client::query(&format!(
        "select 1 as pgtrickle_create_x, 1{}",
        "+1".repeat(50_000)
    )));
    let answer = c.read_until_ready();
    let (state, message) = error_of(&answer).expect("PostgreSQL's error");
    assert_eq!(state, "54001", "{message}");
    assert!(message.contains("stack depth limit exceeded"), "{message}");

    for (shape, expr) in shapes(20_000) {
        // An API call too deep to parse: 54001 from the proxy, in both protocols.
        let call = format!("select pgtrickle.refresh_stream_table('s'), {expr}");
        c.send(&raw_client::query(&call));
        let answer = c.read_until_ready();
        let (state, message) = error_of(&answer).unwrap_or_else(|| panic!("{shape}: {answer:?}"));
        if shape == "IN list" {
            // Wide, not deep: too many tokens for an API statement.
            assert_eq!(state, "54000", "{shape}: {message}");
            assert!(message.contains("tokens"), "{shape}: {message}");
        } else {
            assert_eq!(state, "54001", "{shape}: {message}");
            assert!(message.contains("too deeply nested"), "{shape}: {message}");
        }
        let mut batch = raw_client::parse("", &call);
        batch.extend(raw_client::bind("", ""));
        batch.extend(raw_client::execute(""));
        batch.extend(raw_client::sync());
        c.send(&batch);
        let (state, _) = error_of(&c.read_until_ready()).expect("an error");
        assert!(state == "54001" || state == "54000", "{shape}: {state}");

        // Not an API call (the words only): PostgreSQL answers, whatever it says.
        c.send(&raw_client::query(&format!(
            "select 1 as pgtrickle_create_x, {expr}"
        )));
        let answer = c.read_until_ready();
        if let Some((_, message)) = error_of(&answer) {
            assert!(!message.contains("too deeply nested"), "{shape}: {message}");
        }
    }
    bystander.send(&raw_client::query("select 1"));
    assert!(bystander.read_until_ready().iter().any(|m| m.tag == b'D'));
    assert_serves(&proxy);
}

/// `select pgtrickle.refresh_stream_table('s') where 1 in (1,1,...)` of about `bytes` bytes:
/// a real call, with a token every byte.
fn many_token_call(bytes: usize) -> String {
    format!(
        "select pgtrickle.refresh_stream_table('s') where 1 in (1{})",
        ",1".repeat(bytes / 2)
    )
}

#[test]
fn large_statements_are_bounded_in_memory() {
    let (_cluster, proxy) = setup!(&[]);
    let mut c = login(&proxy);

    // A 4 MB API call: refused before any parse.
    let started = Instant::now();
    c.send(&raw_client::query(&many_token_call(4 << 20)));
    let (state, message) = error_of(&c.read_until_ready()).expect("an error");
    assert_eq!(state, "54000", "{message}");
    assert!(message.contains("too large"), "{message}");
    eprintln!("4 MB API call refused in {:?}", started.elapsed());

    // 4 MB with the words but no call: forwarded untouched, PostgreSQL runs it.
    c.send(&raw_client::query(&format!(
        "select 'create_' as pgtrickle_x where 1 in (1{})",
        ",1".repeat(2 << 20)
    )));
    let answer = c.read_until_ready();
    assert!(
        answer.iter().any(|m| m.tag == b'D'),
        "{:?}",
        error_of(&answer)
    );

    // Under the size cap but with 500,000 tokens: refused before any parse.
    c.send(&raw_client::query(&many_token_call(1_000_000)));
    let (state, message) = error_of(&c.read_until_ready()).expect("an error");
    assert_eq!(state, "54000", "{message}");
    assert!(message.contains("tokens"), "{message}");
    // The largest call parsed: 10,000 tokens, a call over the rows of its WHERE clause, run
    // to its end: the stream table does not exist.
    c.send(&raw_client::query(&many_token_call(9_900)));
    let (state, message) = error_of(&c.read_until_ready()).expect("an error");
    assert_eq!(state, "42P01", "{message}");
    assert!(message.contains("\"s\""), "{message}");

    let (hwm, rss) = memory_kb(proxy.pid());
    eprintln!("after large statements: VmHWM {hwm} kB, VmRSS {rss} kB");
    assert!(hwm < 200 * 1024, "peak {hwm} kB");
    assert_serves(&proxy);
}

#[test]
fn idle_sessions_give_back_the_memory_of_large_messages() {
    let (_cluster, proxy) = setup!(&[]);
    let comment = "x".repeat(50 << 20);
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut c = login(&proxy);
        c.send(&raw_client::query(&format!("select 1 /* {comment} */")));
        assert!(c.read_until_ready().iter().any(|m| m.tag == b'D'));
        idle.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (hwm, rss) = memory_kb(proxy.pid());
    eprintln!("three idle sessions after 50 MB each: VmRSS {rss} kB (peak {hwm} kB)");
    assert!(rss < 64 * 1024, "idle sessions keep {rss} kB");
    for c in &mut idle {
        c.send(&raw_client::query("select 1"));
        assert!(c.read_until_ready().iter().any(|m| m.tag == b'D'));
    }
}

#[test]
fn a_big_candidate_statement_does_not_stall_other_sessions() {
    // One worker thread: anything heavy done on it stalls every session.
    let (_cluster, proxy) = setup!(&["--worker-threads", "1"]);
    let port = proxy.port();
    let heavy = std::thread::spawn(move || {
        let (mut c, _) = RawClient::login(port, "postgres", "postgres");
        let call = many_token_call(1_000_000);
        let started = Instant::now();
        let mut n = 0;
        // Scanned on a parser thread, refused for its tokens.
        while started.elapsed() < Duration::from_secs(6) {
            c.send(&raw_client::query(&call));
            let _ = c.read_until_ready();
            n += 1;
        }
        n
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let t = Instant::now();
        let mut c = login(&proxy);
        c.send(&raw_client::query("select 1"));
        assert!(c.read_until_ready().iter().any(|m| m.tag == b'D'));
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    let parsed = heavy.join().expect("heavy client");
    eprintln!("{parsed} 1 MB candidates handled; worst login + query {worst:?}");
    assert!(parsed > 0);
    assert!(
        worst < Duration::from_millis(500),
        "login + query took {worst:?}"
    );
}

/// A proxy in front of `cluster` run under `prlimit --nofile=SOFT:HARD`.
fn proxy_with_fd_limit(cluster: &Cluster, soft: u32, hard: u32, args: &[&str]) -> ProxyProcess {
    let port = ProxyProcess::pick_port();
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={soft}:{hard}"))
        .arg("--")
        .arg(proxy_bin!())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--upstream")
        .arg(format!(
            "{}?sslmode=disable",
            cluster.url("postgres", "postgres")
        ))
        .args(args);
    ProxyProcess::spawn(cmd, port)
}

/// Opens `n` connections that never send anything.
fn idle_connections(proxy: &ProxyProcess, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", proxy.port())).ok())
        .collect()
}

fn login_time(proxy: &ProxyProcess) -> Duration {
    let started = Instant::now();
    let mut c = login(proxy);
    c.send(&raw_client::query("select 1"));
    assert!(c.read_until_ready().iter().any(|m| m.tag == b'D'));
    started.elapsed()
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let cluster = Cluster::start();
    let proxy = proxy_with_fd_limit(&cluster, 64, 4096, &[]);
    let _idle = idle_connections(&proxy, 150);
    std::thread::sleep(Duration::from_millis(200));
    let took = login_time(&proxy);
    assert!(took < Duration::from_secs(2), "login took {took:?}");
}

#[test]
fn idle_unauthenticated_connections_do_not_lock_clients_out() {
    let cluster = Cluster::start();
    // The hard limit cannot be raised: only the startup cap keeps descriptors free.
    let proxy = proxy_with_fd_limit(&cluster, 100, 100, &["--max-startup-connections", "20"]);
    let idle = idle_connections(&proxy, 300);
    std::thread::sleep(Duration::from_millis(1200));
    let took = login_time(&proxy);
    assert!(took < Duration::from_secs(2), "login took {took:?}");
    // Connections over the cap were told why.
    let mut refused = RawClient {
        stream: idle.into_iter().last().expect("a connection"),
    };
    let err = refused.read_message().expect("an error");
    assert_eq!(err.sqlstate().as_deref(), Some("53300"));
    assert!(err
        .field(b'M')
        .unwrap_or_default()
        .contains("too many connections in startup phase"));
    let log = proxy.log();
    let lines = log.lines().filter(|l| l.contains("startup phase")).count();
    assert!(lines <= 2, "{lines} log lines:\n{log}");
    assert!(!log.contains("accept failed"), "{log}");
}

#[test]
fn statement_text_stays_out_of_the_debug_log() {
    let cluster = Cluster::start();
    let run = |extra: &[&str]| {
        let port = ProxyProcess::pick_port();
        // Through env(1): the test support sets RUST_LOG=info for the proxies it starts.
        let mut cmd = Command::new("env");
        cmd.arg("RUST_LOG=debug")
            .arg(proxy_bin!())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--upstream")
            .arg(format!(
                "{}?sslmode=disable",
                cluster.url("postgres", "postgres")
            ))
            .args(["--log", "debug", "--scheduler-interval-ms", "100"])
            .args(extra);
        let proxy = ProxyProcess::spawn(cmd, port);
        let mut c = login(&proxy);
        for sql in [
            "select 'secret-plain-literal'",
            "select pgtrickle.refresh_stream_table('secret_call_argument')",
            "create table if not exists src (a text)",
            "select pgtrickle.create_stream_table('st_secret', \
             $$ select a from src where a <> 'secret-defining-query' $$, schedule => '1s')",
            "insert into src values ('x')",
        ] {
            c.send(&raw_client::query(sql));
            c.read_until_ready();
        }
        // Let the scheduler refresh on its own connection.
        std::thread::sleep(Duration::from_millis(1500));
        c.send(&raw_client::query(
            "select pgtrickle.drop_stream_table('st_secret')",
        ));
        c.read_until_ready();
        proxy.log()
    };
    let log = run(&[]);
    assert!(log.contains("DEBUG"), "not a debug log:\n{log}");
    for secret in [
        "secret-plain-literal",
        "secret_call_argument",
        "secret-defining-query",
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    // Asked for, the statements are there: the test can see them.
    let log = run(&["--log-statements"]);
    assert!(log.contains("secret_call_argument"), "{log}");
}

/// Garbage instead of a startup packet (node-postgres sends Terminate when it connects and
/// leaves at once): closed silently, as PostgreSQL does, and nothing else is affected.
#[test]
fn garbage_instead_of_a_startup_packet_is_closed_silently_as_directly() {
    let (cluster, proxy) = setup!(&[]);
    for port in [cluster.port(), proxy.port()] {
        for garbage in [
            raw_client::message(b'X', &[]),
            vec![0, 0, 0, 2],
            vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        ] {
            let mut c = RawClient::connect(port);
            c.send(&garbage);
            let said = c.read_to_end();
            assert!(
                said.is_empty(),
                "port {port} answered {garbage:?} with {said:?}"
            );
        }
    }
    assert_serves(&proxy);
}
