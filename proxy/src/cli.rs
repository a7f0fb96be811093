//! The command line: flags (each also an environment variable), logging, the runtime, signal
//! handling, and the embedded server when no `--upstream` is given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::cancel::CancelRegistry;
use crate::client_limit::ClientLimit;
use crate::context::ProxyContext;
use crate::embedded::EmbeddedServer;
use crate::engine::api::interceptor::EngineInterceptorFactory;
use crate::engine::api::parse_pool::ParsePool;
use crate::engine::background::poll::Poller;
use crate::engine::background::registry::Schedulers;
use crate::engine::background::scheduler::SchedulerConfig;
use crate::engine::settings::EngineSettings;
use crate::logging::{LogFormat, LogReload};
use crate::metrics::Metrics;
use crate::monitor::Monitor;
use crate::tls::acceptor::CertReloader;
use crate::upstream::UpstreamTarget;
use crate::{config, server, tls};
use pgtrickle_planner::ApiLimits;

/// PostgreSQL wire-protocol proxy that maintains pg_trickle stream tables.
///
/// Clients connect to the proxy as they would to PostgreSQL; everything is forwarded to the
/// upstream server byte for byte.
#[derive(Debug, Parser)]
#[command(name = "pgtrickle-proxy", version, about, long_about = None)]
pub struct Args {
    /// Address to listen on for client connections.
    #[arg(long, env = "PGTRICKLE_LISTEN", default_value = "127.0.0.1:6432")]
    pub listen: SocketAddr,

    /// Upstream PostgreSQL server, as postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...&
    /// sslrootcert=...]. USER and DB are the proxy's own; clients log in as themselves.
    /// Without it, the proxy starts its own PostgreSQL in --data-dir.
    #[arg(long, env = "PGTRICKLE_UPSTREAM")]
    pub upstream: Option<String>,

    /// Data folder of the embedded PostgreSQL (used without --upstream): created with initdb on
    /// first run, reused afterwards.
    #[arg(long, env = "PGTRICKLE_DATA_DIR", default_value = "pgtrickle-data")]
    pub data_dir: PathBuf,

    /// TLS certificate chain (PEM) offered to clients; with --tls-key, enables TLS.
    #[arg(long, env = "PGTRICKLE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) matching --tls-cert.
    #[arg(long, env = "PGTRICKLE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Refuse clients that do not use TLS (needs --tls-cert and --tls-key).
    #[arg(long, env = "PGTRICKLE_TLS_REQUIRED", requires = "tls_cert")]
    pub tls_required: bool,

    /// Seconds a client has to start up and log in.
    #[arg(long, env = "PGTRICKLE_STARTUP_TIMEOUT", default_value_t = 60)]
    pub startup_timeout: u64,

    /// Seconds to let sessions finish after SIGTERM/SIGINT before closing them.
    #[arg(long, env = "PGTRICKLE_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,

    /// Worker threads of the runtime (0: one per CPU core; 1: a single-threaded runtime).
    #[arg(long, env = "PGTRICKLE_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,

    /// Milliseconds between two scheduler checks for due stream tables (writes through the proxy
    /// and API calls wake it earlier).
    #[arg(long, env = "PGTRICKLE_SCHEDULER_INTERVAL_MS", default_value_t = 1000)]
    pub scheduler_interval_ms: u64,

    /// Shortest duration schedule accepted for a stream table, in seconds.
    #[arg(long, env = "PGTRICKLE_MIN_SCHEDULE_SECONDS", default_value_t = 1)]
    pub min_schedule_seconds: u64,

    /// AUTO stream tables refresh FULL instead of DIFFERENTIAL when the changes waiting since the
    /// last refresh exceed this share of a source's rows (0 to 1).
    #[arg(long, env = "PGTRICKLE_AUTO_FULL_THRESHOLD", default_value_t = 0.5)]
    pub auto_full_threshold: f64,

    /// Longest time one poll of a foreign source may take, in seconds (reading the foreign
    /// table and writing what changed); a poll that takes longer fails and is retried.
    #[arg(long, env = "PGTRICKLE_POLL_TIMEOUT_SECONDS", default_value_t = 300)]
    pub poll_timeout_seconds: u64,

    /// Log filter (error, warn, info, debug, trace, or a tracing directive list).
    #[arg(long, env = "PGTRICKLE_LOG", default_value = DEFAULT_LOG)]
    pub log: String,

    /// Scheduled refreshes of one database that may run at once, each on a connection of the
    /// proxy's own (at least 1); a stream table still waits for the stream tables it reads.
    #[arg(long, env = "PGTRICKLE_REFRESH_WORKERS", default_value_t = 2)]
    pub refresh_workers: usize,

    /// Connections allowed in their startup phase (accepted, not yet logged in) at once; at the
    /// cap, the oldest of them (if it has had a second to log in) or the new one is closed.
    #[arg(long, env = "PGTRICKLE_MAX_STARTUP_CONNECTIONS", default_value_t = 256)]
    pub max_startup_connections: usize,

    /// Let statement text reach the log at debug level (sqlparser's and tokio-postgres's own
    /// logging); off by default, as statements may hold secrets.
    #[arg(long, env = "PGTRICKLE_LOG_STATEMENTS")]
    pub log_statements: bool,

    /// TOML file with one key per flag (the flag's name without `--`); environment variables
    /// and flags override it, and a key that names no flag is an error.
    #[arg(long, env = "PGTRICKLE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address of the HTTP endpoints for operators: /metrics (Prometheus), /health, /ready,
    /// and a status page at /. Off unless set.
    #[arg(long, env = "PGTRICKLE_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,

    /// How log lines look: text or json (one object per line).
    #[arg(long, env = "PGTRICKLE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Client sessions allowed at once (0: no limit); a client past it gets FATAL 53300
    /// (sorry, too many clients already) and the sessions already open carry on.
    #[arg(long, env = "PGTRICKLE_MAX_CLIENT_CONNECTIONS", default_value_t = 0)]
    pub max_client_connections: usize,

    /// Seconds a write to a client may make no progress (the client reads nothing while the
    /// server has more for it) before the session ends and its server connection closes
    /// (0: never).
    #[arg(
        long,
        env = "PGTRICKLE_CLIENT_WRITE_TIMEOUT_SECONDS",
        default_value_t = 300
    )]
    pub client_write_timeout_seconds: u64,
}

/// Where the log filter comes from, for SIGHUP: a flag or an environment variable stays; else
/// the configuration file is read again.
#[derive(Clone)]
struct LogSource {
    fixed: Option<String>,
    config: Option<PathBuf>,
}

impl LogSource {
    fn current(&self) -> Result<String, config::ConfigError> {
        if let Some(f) = &self.fixed {
            return Ok(f.clone());
        }
        let Some(path) = &self.config else {
            return Ok(DEFAULT_LOG.to_string());
        };
        let file = config::load(path, &Args::command())?;
        Ok(file
            .values
            .get("log")
            .cloned()
            .unwrap_or_else(|| DEFAULT_LOG.to_string()))
    }
}

const DEFAULT_LOG: &str = "info";

/// Threads parsing candidate API statements at once.
const PARSER_THREADS: usize = 2;

/// Parses the command line (and the configuration file) and runs the proxy until a signal
/// stops it.
pub fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Before clap reads the environment: the file's values become environment variables
    // that are not set, so flags and the environment override them.
    let real_log_env = std::env::var("PGTRICKLE_LOG").ok();
    let config_path = config::path_from(&argv);
    if let Some(path) = &config_path {
        match config::load(path, &Args::command()) {
            Ok(file) => file.apply_to_env(&Args::command()),
            Err(e) => {
                eprintln!("pgtrickle-proxy: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let matches = Args::command().get_matches_from(&argv);
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let log_from_flag = matches.value_source("log") == Some(clap::parser::ValueSource::CommandLine);
    let log_source = LogSource {
        fixed: if log_from_flag {
            Some(args.log.clone())
        } else {
            real_log_env
        },
        config: config_path,
    };
    let log_reload = crate::logging::init(&args.log, args.log_statements, args.log_format);
    match crate::fd_limit::raise_to_hard() {
        Ok((soft, _)) => tracing::debug!(open_files = soft, "open-file limit"),
        Err(e) => tracing::warn!("{e}"),
    }
    match run(args, log_reload, log_source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("pgtrickle-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn run(args: Args, log_reload: LogReload, log_source: LogSource) -> Result<(), BoxError> {
    let mut embedded = None;
    let upstream_url = match &args.upstream {
        Some(url) => url.clone(),
        None => {
            let server = EmbeddedServer::start(&args.data_dir)?;
            let url = server.upstream_url();
            embedded = Some(server);
            url
        }
    };
    let target = UpstreamTarget::parse(&upstream_url)?;
    let (client_tls, cert_reloader) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let (acceptor, reloader) = tls::acceptor::build_reloadable(cert, key)?;
            (Some(acceptor), Some(reloader))
        }
        _ => (None, None),
    };
    let upstream_tls = tls::connector::build(&target)?;

    // One worker: a current-thread runtime, which saves the work-stealing machinery.
    let mut runtime = match args.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if args.worker_threads > 1 {
        runtime.worker_threads(args.worker_threads);
    }
    let runtime = runtime.enable_all().build()?;
    let metrics = Arc::new(Metrics::new());
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let local = listener.local_addr()?;
        tracing::info!(listen = %local, upstream = %target.addr(), "pgtrickle-proxy ready");
        if embedded.is_some() {
            println!(
                "pgtrickle-proxy is running with an embedded PostgreSQL. Connect with:\n  \
                 psql \"host={} port={} user=postgres dbname=postgres\"",
                local.ip(),
                local.port()
            );
        }
        let wake = Arc::new(tokio::sync::Notify::new());
        let poller = Arc::new(Poller::new(
            target.clone(),
            upstream_tls.clone(),
            Duration::from_secs(args.poll_timeout_seconds.max(1)),
        ));
        let schedulers = Schedulers::new(
            target.clone(),
            upstream_tls.clone(),
            SchedulerConfig {
                tick: Duration::from_millis(args.scheduler_interval_ms.max(10)),
                refresh_workers: args.refresh_workers.max(1),
                settings: EngineSettings::new(args.auto_full_threshold),
            },
            Arc::clone(&poller),
        );
        schedulers.start(Arc::clone(&wake));
        if let Some(addr) = args.http_listen {
            let http = crate::http::bind(addr).await?;
            tracing::info!(http = %http.local_addr()?, "HTTP endpoints ready");
            let monitor = Arc::new(Monitor::new(Arc::clone(&metrics.catalog)));
            monitor.start(
                target.clone(),
                upstream_tls.clone(),
                Arc::clone(&schedulers),
            );
            let endpoints = crate::http::Endpoints {
                metrics: Arc::clone(&metrics),
                monitor,
            };
            tokio::spawn(crate::http::serve(http, endpoints));
        }
        tokio::spawn(reload_on_sighup(cert_reloader, log_reload, log_source));
        let interceptor = EngineInterceptorFactory {
            limits: ApiLimits {
                min_schedule: Duration::from_secs(args.min_schedule_seconds),
            },
            on_change: Arc::clone(&wake),
            poller: Arc::clone(&poller),
            schedulers: Arc::clone(&schedulers),
            parse_pool: ParsePool::new(PARSER_THREADS),
            api_calls: metrics.api_calls(),
        };
        let ctx = Arc::new(ProxyContext {
            target,
            upstream_tls,
            client_tls,
            client_tls_required: args.tls_required,
            cancels: Arc::new(CancelRegistry::default()),
            interceptor: Some(Arc::new(interceptor)),
            startup_timeout: Duration::from_secs(args.startup_timeout.max(1)),
            max_startup_connections: args.max_startup_connections.max(1),
            client_limit: ClientLimit::new(args.max_client_connections),
            client_write_timeout: (args.client_write_timeout_seconds > 0)
                .then(|| Duration::from_secs(args.client_write_timeout_seconds)),
            metrics: Arc::clone(&metrics),
        });
        let cut = server::serve(
            listener,
            ctx,
            shutdown_signal(),
            Duration::from_secs(args.shutdown_timeout),
        )
        .await;
        tracing::info!(sessions_cut = cut, "pgtrickle-proxy stopped");
        Ok::<(), BoxError>(())
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Some(mut server) = embedded {
        server.stop()?;
    }
    result
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop the proxy with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
    }
}

/// On SIGHUP: reads the client TLS certificate and key again (a pair that does not load keeps
/// the old one, and the log says why) and sets the log filter again (from the configuration
/// file unless a flag or an environment variable gave it). Sessions are not touched.
async fn reload_on_sighup(certs: Option<Arc<CertReloader>>, log: LogReload, log_source: LogSource) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler; reloading is off");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received; reloading");
        match log_source.current() {
            Ok(filter) => match log.set(&filter) {
                Ok(()) => tracing::info!(filter = %filter, "log filter set"),
                Err(e) => tracing::warn!("keeping the log filter: {e}"),
            },
            Err(e) => tracing::warn!("keeping the log filter: {e}"),
        }
        if let Some(certs) = &certs {
            match certs.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => tracing::warn!("keeping the old TLS certificate: {e}"),
            }
        }
    }
}
