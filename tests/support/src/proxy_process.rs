//! A pgtrickle-proxy process started by a test from a given binary, on a free port, stopped
//! with SIGTERM on drop.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// A running proxy; its stderr is collected in the background for assertions.
pub struct ProxyProcess {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl ProxyProcess {
    /// Starts `bin --listen 127.0.0.1:PORT --upstream UPSTREAM ARGS...` and waits until it
    /// accepts connections.
    pub fn start(bin: &Path, upstream: &str, args: &[&str]) -> ProxyProcess {
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--upstream")
            .arg(upstream)
            .args(args);
        ProxyProcess::spawn(cmd, port)
    }

    /// Starts a prepared command that will listen on `port`, and waits until it accepts
    /// connections (for tests of the command line itself).
    pub fn spawn(mut cmd: Command, port: u16) -> ProxyProcess {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd.spawn().expect("spawn pgtrickle-proxy");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("PGTRICKLE_TEST_ECHO").is_some() {
                        eprintln!("[proxy] {line}");
                    }
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let mut proxy = ProxyProcess { child, port, log };
        proxy.wait_listening(Duration::from_secs(120));
        proxy
    }

    fn wait_listening(&mut self, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("proxy exited early ({status}):\n{}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("proxy did not listen within {timeout:?}:\n{}", self.log());
    }

    /// The port the proxy listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq keyword/value connection string through the proxy.
    pub fn conninfo(&self, user: &str, db: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} dbname={db}", self.port)
    }

    /// Everything the proxy printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status (at most `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Picks a port for a proxy that a test starts itself with [`ProxyProcess::spawn`].
    pub fn pick_port() -> u16 {
        free_port()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if self.terminate(Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}
