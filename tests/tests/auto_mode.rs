//! AUTO through the proxy: each refresh goes the way the cost model expects to be cheaper, from
//! the measured refreshes the history records (what ran, how long it took, how many changes it
//! consumed), and the stream table equals its query whichever way it went.

use pgtrickle_e2e::{connect, rows_differing, setup};
use tokio_postgres::Client;

/// The last refresh of `st` as the history records it: action, reason, duration, changes.
async fn last_refresh(client: &Client, st: &str) -> (String, Option<String>, f64, Option<i64>) {
    let r = client
        .query_one(
            "SELECT h.action, h.reason, h.duration_ms, h.delta_rows \
             FROM pgtrickle.pgt_refresh_history h \
             JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) \
             WHERE s.pgt_name = $1 ORDER BY h.refresh_id DESC LIMIT 1",
            &[&st],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

/// Runs `write`, refreshes `st`, checks that it equals `query` (over `cols`), and returns the
/// refresh as the history records it.
async fn write_and_refresh(
    client: &Client,
    write: &str,
    st: &str,
    cols: &str,
    query: &str,
) -> (String, Option<String>, f64, Option<i64>) {
    client.batch_execute(write).await.unwrap();
    client
        .batch_execute(&format!("SELECT pgtrickle.refresh_stream_table('{st}')"))
        .await
        .unwrap();
    assert_eq!(
        rows_differing(client, st, cols, query).await,
        0,
        "{st} after {write}"
    );
    last_refresh(client, st).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_applies_few_changes_and_recomputes_when_most_rows_changed() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "600000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    let query = "SELECT grp, sum(val) AS total, count(*) AS n FROM src GROUP BY grp";
    client
        .batch_execute(
            "CREATE TABLE src (id int PRIMARY KEY, grp int NOT NULL, val int NOT NULL); \
             INSERT INTO src SELECT g, g % 100, g FROM generate_series(1, 200000) g; \
             ANALYZE src",
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table('auto_st', $${query}$$, '1h', 'AUTO')"
        ))
        .await
        .unwrap();
    let (action, _, population_ms, _) = last_refresh(&client, "auto_st").await;
    assert_eq!(action, "FULL");
    assert!(population_ms > 0.0, "the population is measured");

    // A few changes: applied, and the history says how many and how long. (The source is
    // large enough that recomputing it costs clearly more than applying a few changes, even on
    // a busy machine: the model goes by measured times.)
    let cols = "grp, total, n";
    for round in 0..3 {
        let write = format!("UPDATE src SET val = val + 1 WHERE id % 10000 = {round}");
        let (action, reason, ms, changes) =
            write_and_refresh(&client, &write, "auto_st", cols, query).await;
        assert_eq!((action.as_str(), reason), ("DIFFERENTIAL", None));
        assert!(ms > 0.0);
        assert!(changes.unwrap_or(0) >= 20, "changes consumed: {changes:?}");
    }

    // Every row changed: recomputing is expected to be far cheaper.
    let (action, reason, _, changes) = write_and_refresh(
        &client,
        "UPDATE src SET val = val * 2",
        "auto_st",
        cols,
        query,
    )
    .await;
    assert_eq!(action, "FULL");
    let reason = reason.unwrap_or_default();
    assert!(
        reason.starts_with("AUTO: recomputing is cheaper"),
        "reason: {reason}"
    );
    assert_eq!(changes, None, "a FULL refresh records no consumed changes");

    // And back to applying when the changes are few again.
    let write = "DELETE FROM src WHERE id % 5000 = 7";
    let (action, ..) = write_and_refresh(&client, write, "auto_st", cols, query).await;
    assert_eq!(action, "DIFFERENTIAL");
}

/// DIFFERENTIAL stream tables never go FULL for cost, and do not count their changes (a scan of
/// the buffer that only AUTO needs); they record their durations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_never_recomputes_for_cost() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "600000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute(
            "CREATE TABLE src (id int PRIMARY KEY, val int NOT NULL); \
             INSERT INTO src SELECT g, g FROM generate_series(1, 5000) g; ANALYZE src",
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('diff_st', \
             'SELECT sum(val) AS total FROM src', '1h', 'DIFFERENTIAL')",
        )
        .await
        .unwrap();
    let query = "SELECT sum(val) AS total FROM src";
    let (action, reason, ms, changes) = write_and_refresh(
        &client,
        "UPDATE src SET val = val + 1",
        "diff_st",
        "total",
        query,
    )
    .await;
    assert_eq!((action.as_str(), reason), ("DIFFERENTIAL", None));
    assert!(ms > 0.0);
    assert_eq!(changes, None, "DIFFERENTIAL does not count its changes");
}
