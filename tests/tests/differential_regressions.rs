//! Wrong results and stuck refreshes that users found, as they reported them, through the
//! proxy: each stream table must equal its defining query after every refresh, and a refresh
//! must recover once the data allows the query to run.

use pgtrickle_e2e::{connect, rows_differing, setup};
use tokio_postgres::Client;

async fn history(client: &Client, st: &str) -> (String, Option<String>) {
    let r = client
        .query_one(
            &format!("SELECT action, reason FROM pgtrickle.get_refresh_history('{st}', 1)"),
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

/// An aggregate over a subquery that aggregates a LEFT JOIN (TPC-H q13's shape): the deleted
/// left row without a match must leave the outer count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregate_over_a_grouped_left_join_follows_unmatched_left_rows() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "600000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    let query = "SELECT COUNT(*) AS n FROM (SELECT c.id, COUNT(o.id) AS cnt FROM c \
                 LEFT JOIN o ON o.cid = c.id GROUP BY c.id) s";
    client
        .batch_execute(
            "CREATE TABLE c (id int PRIMARY KEY); \
             CREATE TABLE o (id int PRIMARY KEY, cid int); \
             INSERT INTO c VALUES (1)",
        )
        .await
        .unwrap();
    // On its own: a create inside a script populates in the script's READ COMMITTED
    // transaction, and its next refresh is FULL.
    client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table('m1', $${query}$$, '1h', 'DIFFERENTIAL')"
        ))
        .await
        .unwrap();
    for change in [
        "DELETE FROM c WHERE id = 1",
        "INSERT INTO c VALUES (1), (2), (3)",
        "INSERT INTO o VALUES (10, 1), (11, 1)",
        "DELETE FROM o WHERE id = 10; DELETE FROM c WHERE id = 3",
        "UPDATE o SET cid = 2; INSERT INTO c VALUES (4)",
        "DELETE FROM c WHERE id IN (1, 4)",
    ] {
        client.batch_execute(change).await.unwrap();
        client
            .batch_execute("SELECT pgtrickle.refresh_stream_table('m1')")
            .await
            .unwrap();
        assert_eq!(history(&client, "m1").await.0, "DIFFERENTIAL");
        assert_eq!(
            rows_differing(&client, "m1", "n", query).await,
            0,
            "after {change}"
        );
    }
}

/// A row version that makes an expression fail, corrected before the refresh: the refresh
/// succeeds (recomputing, with the reason in the history), and the next ones are differential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrected_row_version_that_fails_an_expression_does_not_stick_the_refresh() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "600000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    let query = "SELECT SUM(val / denom) AS ratio FROM src";
    client
        .batch_execute(
            "CREATE TABLE src (id int PRIMARY KEY, val int NOT NULL, denom int NOT NULL); \
             INSERT INTO src VALUES (1, 10, 2)",
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table('st', '{query}', '1h', 'DIFFERENTIAL')"
        ))
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO src VALUES (2, 30, 0); UPDATE src SET denom = 3 WHERE id = 2")
        .await
        .unwrap();
    client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('st')")
        .await
        .expect("the refresh recovers");
    assert_eq!(rows_differing(&client, "st", "ratio", query).await, 0);
    let (action, reason) = history(&client, "st").await;
    assert_eq!(action, "FULL");
    let reason = reason.unwrap_or_default();
    assert!(
        reason.contains("22012"),
        "the reason names the error: {reason}"
    );
    client
        .batch_execute("INSERT INTO src VALUES (3, 9, 3)")
        .await
        .unwrap();
    client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('st')")
        .await
        .unwrap();
    assert_eq!(
        history(&client, "st").await,
        ("DIFFERENTIAL".to_string(), None)
    );
    client
        .batch_execute("UPDATE src SET val = 12 WHERE id = 3")
        .await
        .unwrap();
    client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('st')")
        .await
        .unwrap();
    assert_eq!(
        history(&client, "st").await,
        ("DIFFERENTIAL".to_string(), None)
    );
    assert_eq!(rows_differing(&client, "st", "ratio", query).await, 0);
    // A row that fails the query itself still fails the refresh, which keeps the contents.
    client
        .batch_execute("INSERT INTO src VALUES (4, 1, 0)")
        .await
        .unwrap();
    let e = client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('st')")
        .await
        .expect_err("division by zero in the query itself");
    assert_eq!(e.code().map(|c| c.code()), Some("22012"), "{e:?}");
    let kept: Option<i64> = client
        .query_one("SELECT ratio::int8 FROM st", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, Some(5 + 10 + 4));
}
