//! The stream-table API through the proxy as Rust's sqlx sends it: `sqlx::query(..).bind(..)`
//! prepares a named statement it caches per connection (Parse/Describe/Sync, then
//! Bind/Execute/Sync), `Connection::begin` sends a simple-query BEGIN, and `Executor::execute`
//! of a bare string sends a simple Query. The test creates a source and a stream table with
//! bound parameters, writes, refreshes (the cached statement, several times), reads, checks
//! the SQLSTATEs of bad calls, creates and refreshes in a committed transaction, rolls back a
//! create, and drops, on one connection and on a pool.

use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::{Connection, Executor, Row};

use pgtrickle_e2e::setup;

const QUERY: &str = "SELECT customer, sum(amount) AS total, count(*) AS n \
                     FROM sx_orders WHERE paid GROUP BY customer";
const CREATE: &str = "SELECT pgtrickle.create_stream_table(name => $1, query => $2, \
                      schedule => $3, refresh_mode => $4)";
const REFRESH: &str = "SELECT pgtrickle.refresh_stream_table($1)";

type Group = (Option<String>, Option<String>, i64);

/// The rows of `sql` (three columns: text, numeric, bigint) as sorted tuples.
async fn groups(conn: &mut PgConnection, sql: &str) -> Vec<Group> {
    let sql = format!("SELECT customer, total::text, n FROM ({sql}) AS q");
    let mut rows: Vec<Group> = sqlx::query_as(&sql)
        .fetch_all(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.sort();
    rows
}

/// Asserts that stream table `st` holds what its query returns, and returns that.
async fn assert_equal(conn: &mut PgConnection, st: &str, what: &str) -> Vec<Group> {
    let got = groups(conn, &format!("SELECT * FROM {st}")).await;
    let want = groups(conn, QUERY).await;
    assert_eq!(got, want, "{what}: {st} differs from its query");
    assert!(!got.is_empty(), "{what}: {st} is empty");
    got
}

async fn is_missing(conn: &mut PgConnection, name: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NULL")
        .bind(name)
        .fetch_one(conn)
        .await
        .expect("to_regclass")
}

/// The SQLSTATE of a failed statement.
fn sqlstate(result: Result<Vec<sqlx::postgres::PgRow>, sqlx::Error>) -> String {
    match result {
        Ok(rows) => panic!("no error, {} rows", rows.len()),
        Err(e) => e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned())
            .unwrap_or_else(|| panic!("not a server error: {e}")),
    }
}

async fn create(
    conn: &mut PgConnection,
    name: &str,
    mode: &str,
) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
    sqlx::query(CREATE)
        .bind(name)
        .bind(QUERY)
        .bind("1h")
        .bind(mode)
        .fetch_all(conn)
        .await
}

#[tokio::test]
async fn sqlx_stream_tables() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port());
    let mut conn = PgConnection::connect(&url).await.expect("connect sqlx");

    conn.execute(
        "CREATE TABLE sx_orders (id int PRIMARY KEY, customer text, amount numeric, \
         paid boolean NOT NULL)",
    )
    .await
    .expect("create sx_orders");
    for i in 1..=60i32 {
        sqlx::query("INSERT INTO sx_orders VALUES ($1, $2, $3::numeric / 4, $4)")
            .bind(i)
            .bind(format!("c{}", i % 4))
            .bind(i)
            .bind(i % 3 != 0)
            .execute(&mut conn)
            .await
            .expect("insert");
    }

    let answer = create(&mut conn, "sx_totals", "DIFFERENTIAL")
        .await
        .expect("create_stream_table");
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].columns().len(), 1);
    let before = assert_equal(&mut conn, "sx_totals", "after create").await;
    assert_eq!(before.len(), 4);

    sqlx::query("UPDATE sx_orders SET paid = NOT paid WHERE id % $1 = 0")
        .bind(7i32)
        .execute(&mut conn)
        .await
        .expect("update");
    assert_eq!(
        groups(&mut conn, "SELECT * FROM sx_totals").await,
        before,
        "changed before its refresh (schedule 1h)"
    );
    // The cached named statement, several times.
    for i in 0..6i32 {
        sqlx::query("INSERT INTO sx_orders VALUES ($1, 'c1', $2, true)")
            .bind(100 + i)
            .bind(i)
            .execute(&mut conn)
            .await
            .expect("insert");
        let rows = sqlx::query(REFRESH)
            .bind("sx_totals")
            .fetch_all(&mut conn)
            .await
            .expect("refresh_stream_table");
        assert_eq!(rows.len(), 1);
        assert_equal(&mut conn, "sx_totals", "after a refresh").await;
    }

    // Errors keep the session usable.
    let missing = sqlx::query(REFRESH)
        .bind("sx_missing")
        .fetch_all(&mut conn)
        .await;
    assert_eq!(sqlstate(missing), "42P01");
    let bad = sqlx::query(CREATE)
        .bind("sx_bad")
        .bind(QUERY)
        .bind("soon")
        .bind("FULL")
        .fetch_all(&mut conn)
        .await;
    assert_eq!(sqlstate(bad), "22023");
    assert!(is_missing(&mut conn, "sx_bad").await);
    let n: i32 = sqlx::query_scalar("SELECT $1::int + 1")
        .bind(41i32)
        .fetch_one(&mut conn)
        .await
        .expect("after errors");
    assert_eq!(n, 42);

    // Create, write, refresh and read in a committed transaction.
    let mut tx = conn.begin().await.expect("begin");
    create(&mut tx, "sx_tx", "DIFFERENTIAL")
        .await
        .expect("create in a transaction");
    sqlx::query("INSERT INTO sx_orders VALUES (500, 'c2', 9, true)")
        .execute(&mut *tx)
        .await
        .expect("insert in a transaction");
    sqlx::query(REFRESH)
        .bind("sx_tx")
        .fetch_all(&mut *tx)
        .await
        .expect("refresh in a transaction");
    assert_equal(&mut tx, "sx_tx", "inside its transaction").await;
    tx.commit().await.expect("commit");
    assert_equal(&mut conn, "sx_tx", "after commit").await;

    // A rolled-back create leaves nothing; a failed call fails its transaction.
    let mut tx = conn.begin().await.expect("begin");
    create(&mut tx, "sx_rb", "FULL")
        .await
        .expect("create to roll back");
    assert!(!is_missing(&mut tx, "sx_rb").await);
    tx.rollback().await.expect("rollback");
    assert!(is_missing(&mut conn, "sx_rb").await);
    let mut tx = conn.begin().await.expect("begin");
    let failed = sqlx::query(REFRESH)
        .bind("sx_missing")
        .fetch_all(&mut *tx)
        .await;
    assert_eq!(sqlstate(failed), "42P01");
    let after = sqlx::query("SELECT 1").fetch_all(&mut *tx).await;
    assert_eq!(sqlstate(after), "25P02");
    tx.rollback().await.expect("rollback");

    // A pool: statements on whichever connection, a refresh through each.
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .connect(&url)
        .await
        .expect("pool");
    let refreshes = (0..6).map(|_| {
        let pool = pool.clone();
        async move {
            sqlx::query(REFRESH)
                .bind("sx_totals")
                .fetch_all(&pool)
                .await
                .map(|rows| rows.len())
        }
    });
    for result in futures_util::future::join_all(refreshes).await {
        assert_eq!(result.expect("refresh on the pool"), 1);
    }
    let status: Vec<(String, String)> =
        sqlx::query_as("SELECT name, refresh_mode FROM pgtrickle.pgt_status() ORDER BY name")
            .fetch_all(&pool)
            .await
            .expect("pgt_status");
    assert_eq!(
        status,
        vec![
            ("public.sx_totals".into(), "DIFFERENTIAL".into()),
            ("public.sx_tx".into(), "DIFFERENTIAL".into()),
        ]
    );
    pool.close().await;

    // Simple protocol: a bare string.
    conn.execute("SELECT pgtrickle.drop_stream_table('sx_tx')")
        .await
        .expect("drop (simple protocol)");
    let dropped = sqlx::query("SELECT pgtrickle.drop_stream_table($1)")
        .bind("sx_totals")
        .fetch_all(&mut conn)
        .await
        .expect("drop");
    assert_eq!(dropped.len(), 1);
    assert!(is_missing(&mut conn, "sx_totals").await);
    assert!(is_missing(&mut conn, "sx_tx").await);
    let first = sqlx::query("SELECT count(*) FROM pgtrickle.pgt_status()")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(first.get::<i64, _>(0), 0);
    conn.close().await.expect("close");
}
