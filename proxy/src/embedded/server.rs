//! Creating, starting and stopping the embedded PostgreSQL server in a data folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use super::binaries::{find_server_binaries, INSTALL_ADVICE};
use super::run_as::{hand_over, server_command};

/// Why the embedded server could not be set up.
#[derive(Debug, Error)]
pub enum EmbeddedError {
    /// No initdb/pg_ctl/postgres on this machine.
    #[error("{INSTALL_ADVICE}")]
    NoBinaries,
    /// A command failed.
    #[error("{command} failed: {output}")]
    Command {
        /// What was run.
        command: String,
        /// What it printed.
        output: String,
    },
    /// File system trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A PostgreSQL server the proxy started and will stop.
#[derive(Debug)]
pub struct EmbeddedServer {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    started_here: bool,
}

fn run(mut cmd: Command, what: &str) -> Result<String, EmbeddedError> {
    let out = cmd.output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(EmbeddedError::Command {
            command: what.to_string(),
            output: text,
        })
    }
}

fn free_port() -> Result<u16, EmbeddedError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl EmbeddedServer {
    /// Initialises `data` if it holds no cluster yet, and starts the server on a free port of
    /// 127.0.0.1 (or reuses a server already running there).
    pub fn start(data: &Path) -> Result<EmbeddedServer, EmbeddedError> {
        let bin = find_server_binaries().ok_or(EmbeddedError::NoBinaries)?;
        std::fs::create_dir_all(data)?;
        let data = data.canonicalize()?;
        if !data.join("PG_VERSION").exists() {
            tracing::info!(data = %data.display(), "creating a PostgreSQL cluster with initdb");
            hand_over(&data)?;
            let mut cmd = server_command(&bin.join("initdb"));
            cmd.arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"]);
            run(cmd, "initdb")?;
        }
        if let Some(port) = running_port(&bin, &data) {
            tracing::info!(
                port,
                "reusing the PostgreSQL server already running in the data folder"
            );
            return Ok(EmbeddedServer {
                bin,
                data,
                port,
                started_here: false,
            });
        }
        let port = free_port()?;
        let mut cmd = server_command(&bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-w", "-t", "120", "-l"])
            .arg(data.join("server.log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}'",
                data.display()
            ))
            .arg("start");
        run(cmd, "pg_ctl start").map_err(|e| match e {
            EmbeddedError::Command { command, output } => EmbeddedError::Command {
                command,
                output: format!(
                    "{output}\nserver log ({}):\n{}",
                    data.join("server.log").display(),
                    std::fs::read_to_string(data.join("server.log")).unwrap_or_default()
                ),
            },
            e => e,
        })?;
        tracing::info!(port, data = %data.display(), "embedded PostgreSQL started");
        Ok(EmbeddedServer {
            bin,
            data,
            port,
            started_here: true,
        })
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The upstream URL for this server.
    pub fn upstream_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// Stops the server if this proxy started it.
    pub fn stop(&mut self) -> Result<(), EmbeddedError> {
        if self.started_here {
            let mut cmd = server_command(&self.bin.join("pg_ctl"));
            cmd.arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "-t", "60", "stop"]);
            run(cmd, "pg_ctl stop")?;
            self.started_here = false;
            tracing::info!("embedded PostgreSQL stopped");
        }
        Ok(())
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("{e}");
        }
    }
}

/// The port of a server already running in `data`, from postmaster.pid (line 4), if
/// `pg_ctl status` says it runs.
fn running_port(bin: &Path, data: &Path) -> Option<u16> {
    let mut cmd = server_command(&bin.join("pg_ctl"));
    cmd.arg("-D").arg(data).arg("status");
    run(cmd, "pg_ctl status").ok()?;
    let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    pid_file.lines().nth(3)?.trim().parse().ok()
}
