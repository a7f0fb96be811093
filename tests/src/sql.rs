//! Statements as the end-to-end tests run them through the proxy: statements that must succeed
//! (failing the test with the proxy's log), statements that must fail (their SQLSTATE and
//! message), a manual refresh of a stream table, and look-ups in the catalog.

use tokio_postgres::Client;

use crate::ProxyProcess;

/// Runs `sql` through `client`, panicking with the statement, the error and the proxy log.
pub async fn exec(client: &Client, proxy: &ProxyProcess, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}\nproxy log:\n{}", proxy.log()));
}

/// Refreshes stream table `st` by hand (`pgtrickle.refresh_stream_table`), which must succeed.
pub async fn refresh(client: &Client, proxy: &ProxyProcess, st: &str) {
    exec(
        client,
        proxy,
        &format!("SELECT pgtrickle.refresh_stream_table('{st}')"),
    )
    .await;
}

/// The SQLSTATE and message of `sql` (a query string in the simple protocol), which must fail
/// with an error of the server.
pub async fn failure(client: &Client, sql: &str) -> (String, String) {
    let e = client
        .simple_query(sql)
        .await
        .expect_err("the query string should fail");
    let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e:?}"));
    (db.code().code().to_string(), db.message().to_string())
}

/// The SQLSTATE of `sql`, which must fail (see [`failure`]).
pub async fn sqlstate(client: &Client, sql: &str) -> String {
    failure(client, sql).await.0
}

/// The SQLSTATE of an error, if the server sent one.
pub fn sqlstate_of(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

/// Whether relation `name` (as `to_regclass` reads it) exists.
pub async fn relation_exists(client: &Client, name: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .unwrap_or_else(|e| panic!("to_regclass({name}): {e:?}"))
        .get(0)
}

/// Whether `role` is a superuser.
pub async fn is_superuser(admin: &Client, role: &str) -> bool {
    admin
        .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .unwrap_or_else(|e| panic!("rolsuper of {role}: {e:?}"))
        .get(0)
}
