//! What the foreign-table tests (foreign_tables.rs, foreign_failures.rs, foreign_mirrors.rs)
//! share: a remote cluster reached with postgres_fdw and a local one behind the proxy, stream
//! tables created, refreshed and compared with their queries (failing with the proxy log), the
//! rows of `pgtrickle.pgt_poll_status()`, mirror look-ups, and CSV files for file_fdw.

// Each test file compiles this module on its own and uses a part of it.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pgtrickle_e2e::{
    await_catalog, connect, contents, count, exec, postgres_fdw_server_sql, proxy_bin, proxy_for,
    rows_differing, Cluster, ProxyProcess,
};
use tokio_postgres::Client;

/// The remote table most tests read: 30 products in 3 categories.
pub const PRODUCTS: &str = "CREATE TABLE products (id int, category text, price numeric); \
    INSERT INTO products SELECT g, 'c' || (g % 3), g FROM generate_series(1, 30) g";

/// The local foreign table over it.
pub const REMOTE_PRODUCTS: &str = "CREATE FOREIGN TABLE remote_products \
    (id int, category text, price numeric) SERVER remote_analytics \
    OPTIONS (table_name 'products')";

/// A remote cluster, the local cluster the proxy fronts, the proxy, and a client through it
/// (as `postgres`) on which server `remote_analytics` reaches the remote.
pub struct Fdw {
    pub remote: Cluster,
    pub local: Cluster,
    pub proxy: ProxyProcess,
    pub client: Client,
}

/// Starts both clusters and the proxy (`--scheduler-interval-ms scheduler_ms`), runs
/// `remote_sql` on the remote and declares server `remote_analytics` in the local database.
pub async fn fdw_setup(remote_sql: &str, scheduler_ms: &str) -> Fdw {
    let remote = Cluster::start();
    remote.psql(remote_sql);
    let local = Cluster::start();
    // A poll that hangs fails after 30 s rather than the default five minutes (the tables
    // here are tiny).
    let proxy = proxy_for(
        proxy_bin!(),
        &local,
        &[
            "--scheduler-interval-ms",
            scheduler_ms,
            "--poll-timeout-seconds",
            "30",
        ],
    );
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute(&postgres_fdw_server_sql("remote_analytics", &remote))
        .await
        .unwrap_or_else(|e| panic!("declare server remote_analytics: {e:?}"));
    await_catalog(&client, &proxy).await;
    Fdw {
        remote,
        local,
        proxy,
        client,
    }
}

/// Creates stream table `name` over `query`, with `rest` appended to the arguments (such as
/// `, schedule => '1h'`).
pub async fn create_st(client: &Client, proxy: &ProxyProcess, name: &str, query: &str, rest: &str) {
    exec(
        client,
        proxy,
        &format!(
            "SELECT pgtrickle.create_stream_table(name => '{name}', query => $q${query}$q$ \
             {rest})"
        ),
    )
    .await;
}

/// A refresh that must fail: returns the SQLSTATE and message of its error.
pub async fn refresh_error(client: &Client, proxy: &ProxyProcess, st: &str) -> (String, String) {
    let err = client
        .batch_execute(&format!("SELECT pgtrickle.refresh_stream_table('{st}')"))
        .await
        .err()
        .unwrap_or_else(|| {
            panic!(
                "refresh of {st} succeeded but should have failed\nproxy log:\n{}",
                proxy.log()
            )
        });
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("refresh of {st}: not a database error: {err:?}"));
    (db.code().code().to_string(), db.message().to_string())
}

/// Asserts that a refresh's error message is not empty and names the foreign table or the
/// failure (one of `any_of`).
pub fn assert_error_names(code: &str, message: &str, any_of: &[&str]) {
    assert!(!message.is_empty(), "empty error message ({code})");
    assert!(
        any_of.iter().any(|w| message.contains(w)),
        "the error ({code}: {message}) names none of {any_of:?}"
    );
}

/// Asserts that a refresh of `st` fails (`situation` says why it should) with an error naming
/// one of `any_of`, and that `st` (columns `cols`) still holds `kept`. Returns the SQLSTATE.
pub async fn assert_refresh_fails_keeping(
    client: &Client,
    proxy: &ProxyProcess,
    st: &str,
    cols: &str,
    kept: &str,
    any_of: &[&str],
    situation: &str,
) -> String {
    let (code, message) = refresh_error(client, proxy, st).await;
    eprintln!("refresh {situation}: {code}: {message}");
    assert_error_names(&code, &message, any_of);
    assert_eq!(
        contents(client, &format!("SELECT {cols} FROM {st}")).await,
        kept,
        "{st} changed although its refresh failed ({situation})"
    );
    code
}

/// Asserts that stream table `st` (columns `cols`) equals `query` as a bag.
pub async fn assert_equal(
    client: &Client,
    proxy: &ProxyProcess,
    st: &str,
    cols: &str,
    query: &str,
) {
    let differing = rows_differing(client, st, cols, query).await;
    assert_eq!(
        differing,
        0,
        "{st} differs from its query by {differing} rows\n{st}: {}\nquery: {}\nproxy log:\n{}",
        contents(client, &format!("SELECT {cols} FROM {st}")).await,
        contents(client, query).await,
        proxy.log()
    );
}

/// Waits until `st` equals `query` (up to `limit`), checking every 200 ms.
pub async fn await_equal(
    client: &Client,
    proxy: &ProxyProcess,
    st: &str,
    cols: &str,
    query: &str,
    limit: Duration,
) {
    let started = Instant::now();
    while rows_differing(client, st, cols, query).await != 0 {
        assert!(
            started.elapsed() < limit,
            "{st} did not converge within {limit:?} without a manual refresh\n{st}: {}\n\
             query: {}\npoll status: {}\nproxy log:\n{}",
            contents(client, &format!("SELECT {cols} FROM {st}")).await,
            contents(client, query).await,
            contents(client, "SELECT * FROM pgtrickle.pgt_poll_status()").await,
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One row of `pgtrickle.pgt_poll_status()`.
#[derive(Debug)]
pub struct Poll {
    pub mirror: String,
    pub polled: bool,
    pub rows_scanned: i64,
    pub rows_changed: i64,
    pub scan_skipped: bool,
    pub consecutive_errors: i32,
    pub last_error: Option<String>,
}

/// The poll status of `source` (schema-qualified, as format('%I.%I') prints it), if any.
pub async fn poll_status(client: &Client, source: &str) -> Option<Poll> {
    let rows = client
        .query(
            "SELECT mirror, last_poll_at IS NOT NULL, duration_ms, rows_scanned, rows_changed, \
             scan_skipped, consecutive_errors, last_error \
             FROM pgtrickle.pgt_poll_status() WHERE source = $1",
            &[&source],
        )
        .await
        .unwrap_or_else(|e| panic!("pgt_poll_status(): {e:?}"));
    assert!(
        rows.len() <= 1,
        "{} poll status rows for {source}",
        rows.len()
    );
    rows.first().map(|r| {
        let _duration: Option<f64> = r.get(2);
        Poll {
            mirror: r.get(0),
            polled: r.get(1),
            rows_scanned: r.get(3),
            rows_changed: r.get(4),
            scan_skipped: r.get(5),
            consecutive_errors: r.get(6),
            last_error: r.get(7),
        }
    })
}

/// The poll status of `source`, which must exist ([`poll_status`]).
pub async fn poll_of(client: &Client, proxy: &ProxyProcess, source: &str) -> Poll {
    match poll_status(client, source).await {
        Some(poll) => poll,
        None => panic!(
            "no pgt_poll_status() row for {source}; all rows: {}\nproxy log:\n{}",
            contents(client, "SELECT * FROM pgtrickle.pgt_poll_status()").await,
            proxy.log()
        ),
    }
}

/// The mirror table of foreign table `foreign` (`pgtrickle_changes.mirror_<oid>`).
pub async fn mirror_of(client: &Client, foreign: &str) -> String {
    let oid: u32 = client
        .query_one(&format!("SELECT '{foreign}'::regclass::oid"), &[])
        .await
        .unwrap_or_else(|e| panic!("oid of {foreign}: {e:?}"))
        .get(0);
    format!("pgtrickle_changes.mirror_{oid}")
}

/// How many mirror tables exist.
pub async fn mirror_count(client: &Client) -> i64 {
    count(
        client,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'pgtrickle_changes' \
         AND tablename LIKE 'mirror\\_%'",
    )
    .await
}

/// A folder the server (user `postgres`) can read, for CSV files written by the test.
pub fn csv_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pgtrickle-fdw-")
        .tempdir()
        .expect("create csv dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod csv dir");
    dir
}

/// Writes `text` to `path` atomically: a temporary file in the same folder, renamed over it.
pub fn write_atomically(path: &Path, text: &str) {
    let tmp: PathBuf = path.with_file_name(format!(
        ".tmp-{}",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).expect("write temporary csv");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).expect("chmod csv");
    std::fs::rename(&tmp, path).expect("rename csv into place");
}
