//! A throwaway PostgreSQL cluster: initdb into a temporary folder, a free port on 127.0.0.1,
//! fsync off, stopped and deleted on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::pg_bin::{client_program, pg_bin_dir, pg_bin_dir_for};
use crate::ports::free_port;
use crate::run_as::{hand_over, server_command};

/// How to set up a cluster beyond the defaults (trust authentication, no TLS).
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Server certificate and key (PEM); turns `ssl = on`.
    pub tls: Option<(String, String)>,
    /// Full contents of pg_hba.conf; default trusts every local and loopback connection.
    pub hba: Option<String>,
    /// Extra postgresql.conf lines.
    pub config: Vec<String>,
    /// A PostgreSQL major version other than the tests' own ([`pg_bin_dir`]); the test panics
    /// when it is not installed (scripts/install-pg.sh).
    pub major: Option<u32>,
}

/// A running PostgreSQL server owned by a test.
pub struct Cluster {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    running: bool,
}

impl Cluster {
    /// Starts a cluster with the default options.
    pub fn start() -> Cluster {
        Cluster::start_with(ClusterOptions::default())
    }

    /// Starts a cluster set up as `options` say.
    pub fn start_with(options: ClusterOptions) -> Cluster {
        let bin = match options.major {
            Some(major) => pg_bin_dir_for(major).unwrap_or_else(|| {
                panic!("PostgreSQL {major} is not installed: run scripts/install-pg.sh {major}")
            }),
            None => pg_bin_dir(),
        };
        let dir = tempfile::Builder::new()
            .prefix("pgtrickle-test-")
            .tempdir()
            .expect("create temp dir");
        let data = dir.path().join("data");
        hand_over(dir.path());
        let out = server_command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C", "--no-instructions"])
            .output()
            .expect("run initdb");
        assert_success("initdb", &out);

        let mut conf = String::from(
            "\n# pgtrickle test cluster\nlisten_addresses = '127.0.0.1'\nfsync = off\n\
             synchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n\
             shared_buffers = 32MB\nmax_prepared_transactions = 10\n",
        );
        conf.push_str(&format!(
            "unix_socket_directories = '{}'\n",
            dir.path().display()
        ));
        if let Some((cert, key)) = &options.tls {
            std::fs::write(data.join("server.crt"), cert).expect("write server.crt");
            std::fs::write(data.join("server.key"), key).expect("write server.key");
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        for line in &options.config {
            conf.push_str(line);
            conf.push('\n');
        }
        append(&data.join("postgresql.conf"), &conf);
        if let Some(hba) = &options.hba {
            std::fs::write(data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        }
        hand_over(dir.path());
        if options.tls.is_some() {
            set_mode_0600(&data.join("server.key"));
        }

        let mut cluster = Cluster {
            _dir: dir,
            data,
            bin,
            port: 0,
            running: false,
        };
        cluster.start_server();
        cluster
    }

    fn start_server(&mut self) {
        // A port that was free can be taken before the server binds it: retry a few times.
        let mut last = None;
        for _ in 0..5 {
            let port = if self.port == 0 {
                free_port()
            } else {
                self.port
            };
            let out = self
                .pg_ctl()
                .arg("start")
                .args(["-w", "-t", "60", "-o"])
                .arg(format!("-p {port}"))
                .arg("-l")
                .arg(self.data.join("server.log"))
                .output()
                .expect("run pg_ctl start");
            if out.status.success() {
                self.port = port;
                self.running = true;
                return;
            }
            last = Some(out);
        }
        let log = std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default();
        panic!(
            "pg_ctl start failed: {:?}\nserver log:\n{log}",
            last.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        );
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = server_command(&self.bin.join("pg_ctl"));
        cmd.arg("-D").arg(&self.data);
        cmd
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder holding the server binaries this cluster runs.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// A client program (`psql`, `pgbench` ...) for this server: the one beside it, else the
    /// machine's (see [`client_program`]).
    pub fn client_program(&self, name: &str) -> PathBuf {
        client_program(&self.bin, name)
    }

    /// The server's major version (`SHOW server_version_num` / 10000).
    pub fn major_version(&self) -> u32 {
        self.psql("show server_version_num")
            .trim()
            .parse::<u32>()
            .map(|n| n / 10000)
            .expect("server_version_num")
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// A URL for `user` and `db` on this cluster, as the proxy's `--upstream` takes it.
    pub fn url(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// A libpq keyword/value connection string for `user` and `db`.
    pub fn conninfo(&self, user: &str, db: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} dbname={db}", self.port)
    }

    /// Runs `sql` with psql as the superuser `postgres` in database `postgres`, stopping at the
    /// first error, and returns the unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let out = self.psql_command("postgres", "postgres", sql);
        assert_success("psql", &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `sql` with psql and returns its raw output, success or not.
    pub fn psql_command(&self, user: &str, db: &str, sql: &str) -> Output {
        Command::new(self.client_program("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.conninfo(user, db))
            .arg("-c")
            .arg(sql)
            .output()
            .expect("run psql")
    }

    /// Stops the server (fast shutdown: open sessions are terminated).
    pub fn stop(&mut self) {
        if self.running {
            let out = self
                .pg_ctl()
                .args(["stop", "-m", "fast", "-w", "-t", "60"])
                .output()
                .expect("run pg_ctl stop");
            assert_success("pg_ctl stop", &out);
            self.running = false;
        }
    }

    /// Starts a stopped server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.start_server();
    }

    /// Starts the server again after [`Cluster::stop`], on the same port.
    pub fn start_again(&mut self) {
        if !self.running {
            self.start_server();
        }
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .pg_ctl()
                .args(["stop", "-m", "immediate", "-w", "-t", "30"])
                .output();
        }
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open postgresql.conf");
    f.write_all(text.as_bytes())
        .expect("append postgresql.conf");
}

fn set_mode_0600(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 0600");
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
