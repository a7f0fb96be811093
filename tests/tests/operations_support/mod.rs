//! What the operations tests share: a proxy with `--http-listen`, a tiny HTTP/1.1 client and
//! waiting for a condition on an endpoint.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pgtrickle_e2e::{free_port, proxy_bin, proxy_for, Cluster, ProxyProcess};

/// A cluster and a proxy serving HTTP on the returned port, with `args` added.
pub fn setup_http(args: &[&str]) -> (Cluster, ProxyProcess, u16) {
    let cluster = Cluster::start();
    let (proxy, port) = proxy_with_http(&cluster, args);
    (cluster, proxy, port)
}

/// A proxy in front of `cluster` serving HTTP on the returned port.
pub fn proxy_with_http(cluster: &Cluster, args: &[&str]) -> (ProxyProcess, u16) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut all = vec!["--http-listen", addr.as_str()];
    all.extend_from_slice(args);
    let proxy = proxy_for(proxy_bin!(), cluster, &all);
    (proxy, port)
}

/// `GET path` on 127.0.0.1:`port`: the status code, the headers and the body; None if the
/// connection fails.
pub fn try_get(port: u16, path: &str) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, head.to_string(), body.to_string()))
}

/// `GET path`, which must answer.
pub fn get(port: u16, path: &str) -> (u16, String) {
    let (code, _, body) =
        try_get(port, path).unwrap_or_else(|| panic!("GET {path} on port {port} failed"));
    (code, body)
}

/// Waits up to `timeout` until `GET path` answers `code` with a body for which `ok` holds;
/// returns the body, or panics with the last answer and the proxy's log.
pub fn wait_for(
    proxy: &ProxyProcess,
    port: u16,
    path: &str,
    code: u16,
    timeout: Duration,
    ok: impl Fn(&str) -> bool,
) -> String {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < timeout {
        if let Some((c, _, body)) = try_get(port, path) {
            if c == code && ok(&body) {
                return body;
            }
            last = Some((c, body));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "GET {path}: no {code} with the expected body within {timeout:?}; last: {last:?}\nproxy log:\n{}",
        proxy.log()
    );
}

/// The lines of a Prometheus text that start with `family` and contain every one of `parts`.
pub fn series<'a>(text: &'a str, family: &str, parts: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(family)
                && l[family.len()..].starts_with(['{', ' '])
                && parts.iter().all(|p| l.contains(p))
        })
        .collect()
}

/// The value of the first series of `family` matching `parts`.
pub fn value(text: &str, family: &str, parts: &[&str]) -> Option<f64> {
    series(text, family, parts)
        .first()
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
