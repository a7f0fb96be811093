//! The founding document's examples over local tables (shared/seed), run verbatim through the
//! proxy: the DuckLake bridge table and metadata tables. Each stream table must equal its
//! defining query after writes and a refresh.

use pgtrickle_e2e::{connect, rows_differing, setup};

const REVENUE_QUERY: &str = "SELECT date_trunc('minute', occurred_at) AS minute, product_id, \
    SUM(revenue_usd) AS total_revenue, COUNT(*) AS purchase_count FROM events_bridge \
    WHERE event_type = 'purchase' GROUP BY date_trunc('minute', occurred_at), product_id";

const SMALL_FILES_QUERY: &str = "SELECT dt.schema_name, dt.table_name, COUNT(*) AS \
    small_file_count, SUM(df.file_size_bytes) AS total_small_file_bytes FROM ducklake_data_file df \
    JOIN ducklake_table dt ON dt.table_id = df.table_id WHERE df.file_size_bytes < 10 * 1024 * 1024 \
    AND df.deleted_snapshot_id IS NULL GROUP BY dt.schema_name, dt.table_name";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_documents_local_examples_work_verbatim() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute(
            "CREATE TABLE events_bridge (
                event_id BIGINT PRIMARY KEY,
                user_id INT,
                product_id INT,
                event_type TEXT,
                revenue_usd NUMERIC(10,2),
                occurred_at TIMESTAMPTZ
            );
            INSERT INTO events_bridge
            SELECT g, g % 13, g % 5, CASE WHEN g % 3 = 0 THEN 'view' ELSE 'purchase' END,
                   (g % 100) / 3.0, timestamptz '2026-01-01 10:00' + g * interval '17 seconds'
            FROM generate_series(1, 2000) g;
            CREATE TABLE ducklake_table (table_id BIGINT, schema_name TEXT, table_name TEXT);
            CREATE TABLE ducklake_data_file (data_file_id BIGINT, table_id BIGINT,
                file_size_bytes BIGINT, deleted_snapshot_id BIGINT);
            INSERT INTO ducklake_table VALUES (1, 'main', 'events'), (2, 'main', 'users');
            INSERT INTO ducklake_data_file
            SELECT g, 1 + g % 2, (g * 7919) % (20 * 1024 * 1024),
                   CASE WHEN g % 10 = 0 THEN g END
            FROM generate_series(1, 500) g;",
        )
        .await
        .unwrap();
    // Verbatim from the document.
    client
        .batch_execute(
            "SELECT pgtrickle.create_stream_table(
    name => 'revenue_by_minute',
    query => $$
        SELECT
            date_trunc('minute', occurred_at) AS minute,
            product_id,
            SUM(revenue_usd) AS total_revenue,
            COUNT(*) AS purchase_count
        FROM events_bridge
        WHERE event_type = 'purchase'
        GROUP BY date_trunc('minute', occurred_at), product_id
    $$,
    schedule => '5s',
    refresh_mode => 'DIFFERENTIAL'
);",
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "SELECT pgtrickle.create_stream_table(
    name => 'ducklake_small_file_counts',
    query => $$
        SELECT
            dt.schema_name,
            dt.table_name,
            COUNT(*) AS small_file_count,
            SUM(df.file_size_bytes) AS total_small_file_bytes
        FROM ducklake_data_file df
        JOIN ducklake_table dt ON dt.table_id = df.table_id
        WHERE df.file_size_bytes < 10 * 1024 * 1024
          AND df.deleted_snapshot_id IS NULL
        GROUP BY dt.schema_name, dt.table_name
    $$,
    schedule => '1m',
    refresh_mode => 'DIFFERENTIAL'
);",
        )
        .await
        .unwrap();
    let revenue_cols = "minute, product_id, total_revenue, purchase_count";
    let files_cols = "schema_name, table_name, small_file_count, total_small_file_bytes";
    assert_eq!(
        rows_differing(&client, "revenue_by_minute", revenue_cols, REVENUE_QUERY).await,
        0
    );
    assert_eq!(
        rows_differing(
            &client,
            "ducklake_small_file_counts",
            files_cols,
            SMALL_FILES_QUERY
        )
        .await,
        0
    );
    client
        .batch_execute(
            "INSERT INTO events_bridge VALUES (5000, 1, 1, 'purchase', 99.99, '2026-01-01 10:00:30');
             UPDATE events_bridge SET event_type = 'purchase' WHERE event_id % 9 = 0;
             DELETE FROM events_bridge WHERE event_id % 11 = 0;
             UPDATE ducklake_data_file SET deleted_snapshot_id = 1 WHERE data_file_id % 7 = 0;
             INSERT INTO ducklake_table VALUES (3, 'other', 'logs');
             INSERT INTO ducklake_data_file VALUES (9001, 3, 100, NULL), (9002, 3, 200, NULL);
             DELETE FROM ducklake_data_file WHERE data_file_id = 2;",
        )
        .await
        .unwrap();
    client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('revenue_by_minute')")
        .await
        .unwrap();
    client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('ducklake_small_file_counts')")
        .await
        .unwrap();
    assert_eq!(
        rows_differing(&client, "revenue_by_minute", revenue_cols, REVENUE_QUERY).await,
        0
    );
    assert_eq!(
        rows_differing(
            &client,
            "ducklake_small_file_counts",
            files_cols,
            SMALL_FILES_QUERY
        )
        .await,
        0
    );
    let modes: Vec<String> = client
        .query("SELECT effective_mode FROM pgtrickle.pgt_status()", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(modes, vec!["DIFFERENTIAL", "DIFFERENTIAL"]);
}
