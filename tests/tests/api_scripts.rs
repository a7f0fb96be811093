//! Query strings of several statements that call the pgtrickle API among other SQL (migration
//! files sent whole, `psql -c "...; ...; ..."`), through the proxy: they run statement by
//! statement as one implicit transaction, as PostgreSQL runs such a string, or inside the
//! client's transaction block; an error anywhere undoes all of it (or fails the block).

use pgtrickle_e2e::{
    await_catalog, connect, contents, count, failure, psql_isolated, relation_exists,
    rows_differing, setup,
};
use tokio_postgres::{Client, SimpleQueryMessage};

async fn stream_tables(client: &Client) -> String {
    contents(client, "SELECT pgt_name FROM pgtrickle.pgt_stream_tables")
        .await
        .replace(['(', ')'], "")
}

const QUERY: &str = "SELECT region, count(*) AS n, sum(amount) AS total FROM sales GROUP BY region";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_sent_as_one_string_runs_in_order() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    let messages = client
        .simple_query(&format!(
            "CREATE TABLE sales (id serial PRIMARY KEY, region text, amount numeric);
             INSERT INTO sales (region, amount) VALUES ('eu', 10), ('eu', 5), ('us', 7), (NULL, 1);
             -- the stream table, then a first look at it
             SELECT pgtrickle.create_stream_table(name => 'sales_by_region',
                 query => $$ {QUERY} $$, schedule => '1h', refresh_mode => 'DIFFERENTIAL');
             SELECT region, n, total FROM sales_by_region ORDER BY region NULLS FIRST;
             INSERT INTO sales (region, amount) VALUES ('us', 3);
             SELECT pgtrickle.refresh_stream_table('sales_by_region');
             SELECT total FROM sales_by_region WHERE region = 'us';"
        ))
        .await
        .unwrap();
    // Each statement's answer in order: CREATE, INSERT, the call's row, three rows, INSERT,
    // the refresh's row, the refreshed total.
    let summary: Vec<String> = messages
        .iter()
        .map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => format!("C{n}"),
            SimpleQueryMessage::Row(r) => format!("R{}", r.get(0).unwrap_or("NULL")),
            _ => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        summary,
        ["C0", "C4", "R", "C1", "RNULL", "Reu", "Rus", "C3", "C1", "R", "C1", "R10", "C1"],
        "{messages:?}"
    );
    assert_eq!(
        rows_differing(&client, "sales_by_region", "region, n, total", QUERY).await,
        0
    );
    // Committed: another session sees all of it.
    let other = connect(&proxy.conninfo("postgres", "postgres")).await;
    assert_eq!(stream_tables(&other).await, "sales_by_region");
    assert_eq!(count(&other, "SELECT count(*) FROM sales").await, 5);
    // The stream table keeps working afterwards, on its own.
    client
        .batch_execute("DELETE FROM sales WHERE region = 'eu'")
        .await
        .unwrap();
    client
        .simple_query("SELECT pgtrickle.refresh_stream_table('sales_by_region')")
        .await
        .unwrap();
    assert_eq!(
        rows_differing(&client, "sales_by_region", "region, n, total", QUERY).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_anywhere_undoes_the_whole_string() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    // A failing plain statement after the call: the table and the stream table are gone.
    let (code, _) = failure(
        &client,
        &format!(
            "CREATE TABLE sales (id int, region text, amount numeric);
             SELECT pgtrickle.create_stream_table('sales_by_region', $$ {QUERY} $$);
             SELECT 1 / 0"
        ),
    )
    .await;
    assert_eq!(code, "22012");
    assert!(!relation_exists(&client, "sales").await);
    assert!(!relation_exists(&client, "sales_by_region").await);
    // The session is idle and usable.
    assert_eq!(count(&client, "SELECT 1::int8").await, 1);

    client
        .batch_execute(&format!(
            "CREATE TABLE sales (id int, region text, amount numeric);
             INSERT INTO sales VALUES (1, 'eu', 1);
             SELECT pgtrickle.create_stream_table('sales_by_region', $$ {QUERY} $$);"
        ))
        .await
        .unwrap();
    // A failing call in the middle: the insert before it is undone, the one after never runs.
    let (code, message) = failure(
        &client,
        "INSERT INTO sales VALUES (2, 'us', 2);
         SELECT pgtrickle.refresh_stream_table('no_such_table');
         INSERT INTO sales VALUES (3, 'us', 3)",
    )
    .await;
    assert_eq!(code, "42P01", "{message}");
    assert!(message.contains("no_such_table"), "{message}");
    assert_eq!(count(&client, "SELECT count(*) FROM sales").await, 1);
    // A call with bad arguments fails at its place, with the planner's error.
    let (code, _) = failure(
        &client,
        "INSERT INTO sales VALUES (4, 'us', 4);
         SELECT pgtrickle.create_stream_table('x', 'SELECT 1', schedule => 'soon')",
    )
    .await;
    assert_eq!(code, "22023");
    assert_eq!(count(&client, "SELECT count(*) FROM sales").await, 1);
    assert_eq!(stream_tables(&client).await, "sales_by_region");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_transaction_block_the_string_is_part_of_it() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute("CREATE TABLE sales (id int, region text, amount numeric)")
        .await
        .unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO sales VALUES (1, 'eu', 1);
             SELECT pgtrickle.create_stream_table('sales_by_region', $$ {QUERY} $$);"
        ))
        .await
        .unwrap();
    assert_eq!(
        count(&client, "SELECT count(*) FROM sales_by_region").await,
        1
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    assert!(!relation_exists(&client, "sales_by_region").await);
    assert_eq!(count(&client, "SELECT count(*) FROM sales").await, 0);

    // An error inside the block leaves the block failed, as PostgreSQL would.
    client.batch_execute("BEGIN").await.unwrap();
    let (code, _) = failure(
        &client,
        "INSERT INTO sales VALUES (1, 'eu', 1); SELECT pgtrickle.drop_stream_table('nothing')",
    )
    .await;
    assert_eq!(code, "42P01");
    let (code, _) = failure(&client, "SELECT 1").await;
    assert_eq!(code, "25P02");
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&client, "SELECT count(*) FROM sales").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_control_in_the_string_is_refused_before_anything_runs() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    let (code, message) = failure(
        &client,
        &format!(
            "CREATE TABLE sales (id int, region text, amount numeric); BEGIN;
             SELECT pgtrickle.create_stream_table('sales_by_region', $$ {QUERY} $$); COMMIT;"
        ),
    )
    .await;
    assert_eq!(code, "0A000");
    assert!(
        message.contains("create_stream_table") && message.contains("transaction control"),
        "{message}"
    );
    assert!(!relation_exists(&client, "sales").await);
    await_catalog(&client, &proxy).await;
    // Read functions among other statements are plain SQL: forwarded as they are.
    let messages = client
        .simple_query("SELECT count(*) FROM pgtrickle.pgt_status(); SELECT 2")
        .await
        .unwrap();
    assert_eq!(
        messages
            .iter()
            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_dash_c_with_several_statements() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let out = psql_isolated(
        &cluster,
        &proxy.conninfo("postgres", "postgres"),
        None,
        &[&format!(
            "CREATE TABLE sales (id int, region text, amount numeric);
             INSERT INTO sales VALUES (1, 'eu', 2), (2, 'eu', 3);
             SELECT pgtrickle.create_stream_table('sales_by_region', $$ {QUERY} $$);
             SELECT region || '=' || total FROM sales_by_region"
        )],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // psql 15 prints every result of the string: two command tags, the call's empty value,
    // the stream table's row.
    assert_eq!(stdout.trim(), "CREATE TABLE\nINSERT 0 2\n\neu=5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_string_whose_answers_would_flood_the_proxy_fails_cleanly() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE sales (id int, region text, amount numeric); \
             SELECT pgtrickle.create_stream_table('sales_by_region', $$ {QUERY} $$)"
        ))
        .await
        .unwrap();
    // 70 MB of rows after a call: more than the proxy holds for one string.
    let (code, message) = failure(
        &client,
        "INSERT INTO sales VALUES (1, 'eu', 1);
         SELECT pgtrickle.refresh_stream_table('sales_by_region');
         SELECT repeat('x', 1000000) FROM generate_series(1, 70)",
    )
    .await;
    assert_eq!(code, "54000", "{message}");
    assert!(message.contains("64 MB"), "{message}");
    assert_eq!(count(&client, "SELECT count(*) FROM sales").await, 0);
    // Inside a block the block fails, as for any error.
    client.batch_execute("BEGIN").await.unwrap();
    let (code, _) = failure(
        &client,
        "SELECT pgtrickle.refresh_stream_table('sales_by_region');
         SELECT repeat('x', 1000000) FROM generate_series(1, 70)",
    )
    .await;
    assert_eq!(code, "54000");
    let (code, _) = failure(&client, "SELECT 1").await;
    assert_eq!(code, "25P02");
    client.batch_execute("ROLLBACK").await.unwrap();
    // The same rows sent on their own are forwarded as usual.
    let rows = client
        .simple_query("SELECT repeat('x', 1000000) FROM generate_series(1, 70)")
        .await
        .unwrap();
    assert_eq!(
        rows.iter()
            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
            .count(),
        70
    );
}
