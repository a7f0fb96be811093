//! The SQL examples of pg_trickle's SQL reference (trickle-labs/pg-trickle,
//! docs/SQL_REFERENCE.md) that PostgreSQL 15 can run, sent unchanged through the proxy, with
//! the result shapes the reference documents (docs/COMPATIBILITY.md).

use pgtrickle_e2e::{connect, count, setup};
use tokio_postgres::Client;

async fn run(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

async fn columns(client: &Client, sql: &str) -> Vec<String> {
    client
        .prepare(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect()
}

const TABLES: &str = "
CREATE TABLE orders (id serial PRIMARY KEY, region text, amount numeric, customer_id int,
                     user_id int, status text DEFAULT 'active');
INSERT INTO orders (region, amount, customer_id, user_id)
    SELECT 'r' || (g % 3), g * 10, g % 4, g % 5 FROM generate_series(1, 40) g;
CREATE TABLE events (id serial PRIMARY KEY, event_type text, payload text,
                     ts timestamptz DEFAULT now(), created_at timestamptz DEFAULT now());
INSERT INTO events (event_type, payload) VALUES ('click', 'a'), ('view', 'b');
CREATE TABLE sales (region text, revenue numeric);
INSERT INTO sales VALUES ('north', 10), ('south', 20);
CREATE TABLE employees (employee_id int PRIMARY KEY, name text, department text,
                        salary numeric, active bool, manager_id int);
INSERT INTO employees VALUES (1, 'ann', 'eng', 100, true, NULL), (2, 'bob', 'eng', 80, true, 1),
                             (3, 'cid', 'ops', 70, false, 1);
CREATE TABLE users (id int PRIMARY KEY, name text, active bool);
INSERT INTO users VALUES (0, 'zero', true), (1, 'one', true), (2, 'two', false);
CREATE TABLE customers (id int PRIMARY KEY, name text);
INSERT INTO customers VALUES (1, 'c1'), (2, 'c2'), (7, 'c7');
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_reference_examples_run_unchanged() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    run(&client, TABLES).await;

    // create_stream_table's examples.
    for sql in [
        "SELECT pgtrickle.create_stream_table(
            name     => 'order_totals',
            query    => 'SELECT region, SUM(amount) AS total FROM orders GROUP BY region',
            schedule => '2m'
        )",
        "SELECT pgtrickle.create_stream_table(
            name         => 'hourly_summary',
            query        => 'SELECT date_trunc(''hour'', ts), COUNT(*) FROM events GROUP BY 1',
            schedule     => '@hourly',
            refresh_mode => 'FULL'
        )",
        "SELECT pgtrickle.create_stream_table(
            name         => 'daily_report',
            query        => 'SELECT region, SUM(revenue) AS total FROM sales GROUP BY region',
            schedule     => '0 6 * * 1-5',
            refresh_mode => 'FULL'
        )",
        "SELECT pgtrickle.create_stream_table(
            name     => 'sales_summary',
            query    => 'SELECT region, COUNT(*) AS cnt, SUM(amount) AS total, AVG(amount) AS avg_amount
             FROM orders GROUP BY region',
            schedule => '1m'
        )",
        "SELECT pgtrickle.create_stream_table(
            name     => 'salary_ranges',
            query    => 'SELECT department, MIN(salary) AS min_sal, MAX(salary) AS max_sal
             FROM employees GROUP BY department',
            schedule => '2m'
        )",
        "SELECT pgtrickle.create_stream_table(
            name                      => 'pooled_orders',
            query                     => 'SELECT id, amount FROM orders',
            schedule                  => '5m',
            pooler_compatibility_mode => true
        )",
        "SELECT pgtrickle.create_stream_table(
            name     => 'active_order_totals',
            query    => 'WITH active_users AS (
                SELECT id, name FROM users WHERE active = true
            )
            SELECT a.id, a.name, SUM(o.amount) AS total
            FROM active_users a
            JOIN orders o ON o.user_id = a.id
            GROUP BY a.id, a.name',
            schedule => '1m'
        )",
        "SELECT pgtrickle.create_stream_table(
            name        => 'event_log_st',
            query       => 'SELECT id, event_type, payload, created_at FROM events',
            schedule    => '30s',
            append_only => true
        )",
        "SELECT pgtrickle.create_stream_table(
            name     => 'active_customers',
            query    => 'SELECT c.id, c.name
             FROM customers c
             WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)',
            schedule => '1m'
        )",
        "SELECT pgtrickle.create_stream_table_fast_append_only(
            'completed_orders',
            'SELECT id, amount, status FROM orders WHERE status = ''completed'''
        )",
        "SELECT pgtrickle.create_stream_table_realtime(
            'live_order_counts',
            'SELECT status, count(*) FROM orders GROUP BY status'
        )",
        "SELECT pgtrickle.create_stream_table_if_not_exists(
            'order_totals',
            'SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id',
            '1m',
            'DIFFERENTIAL'
        )",
        "SELECT pgtrickle.create_or_replace_stream_table(
            name         => 'order_totals',
            query        => 'SELECT region, SUM(amount) AS total FROM orders GROUP BY region',
            schedule     => '2m',
            refresh_mode => 'DIFFERENTIAL'
        )",
    ] {
        run(&client, sql).await;
    }
    assert_eq!(count(&client, "SELECT count(*) FROM order_totals").await, 3);
    assert_eq!(
        count(&client, "SELECT count(*) FROM active_customers").await,
        2
    );

    // alter_stream_table's examples (tier needs tiered scheduling: accepted without effect).
    for sql in [
        "SELECT pgtrickle.alter_stream_table('order_totals',
            query => 'SELECT region, SUM(amount) AS total FROM orders WHERE status = ''active'' GROUP BY region')",
        "SELECT pgtrickle.alter_stream_table('order_totals',
            query => 'SELECT region, SUM(amount) AS total, COUNT(*) AS cnt FROM orders GROUP BY region')",
        "SELECT pgtrickle.alter_stream_table('order_totals', schedule => '5m')",
        "SELECT pgtrickle.alter_stream_table('order_totals', refresh_mode => 'FULL')",
        "SELECT pgtrickle.alter_stream_table('order_totals',
            refresh_mode => 'DIFFERENTIAL', schedule => '5m')",
        "SELECT pgtrickle.alter_stream_table('order_totals', cdc_mode => 'trigger')",
        "SELECT pgtrickle.alter_stream_table('event_log_st', append_only => true)",
        "SELECT pgtrickle.alter_stream_table('order_totals', pooler_compatibility_mode => true)",
        "SELECT pgtrickle.alter_stream_table('order_totals', tier => 'warm')",
        "SELECT pgtrickle.alter_stream_table('order_totals', status => 'SUSPENDED')",
        "SELECT pgtrickle.resume_stream_table('order_totals')",
        "SELECT pgtrickle.pause_stream_table('order_totals')",
        "SELECT pgtrickle.alter_stream_table('order_totals', status => 'ACTIVE')",
        "SELECT pgtrickle.set_stream_table_refresh_policy('order_totals', 'DIFFERENTIAL')",
        "SELECT pgtrickle.refresh_stream_table('order_totals')",
    ] {
        run(&client, sql).await;
    }

    // Status and monitoring examples, with the documented columns.
    let shapes: &[(&str, &[&str])] = &[
        (
            "SELECT * FROM pgtrickle.pgt_status()",
            &["name", "status", "refresh_mode", "is_populated", "consecutive_errors", "schedule", "data_timestamp", "staleness"],
        ),
        (
            "SELECT check_name, severity, detail FROM pgtrickle.health_check() WHERE severity != 'OK'",
            &["check_name", "severity", "detail"],
        ),
        (
            "SELECT * FROM pgtrickle.health_summary()",
            &["total_stream_tables", "active_count", "error_count", "suspended_count", "stale_count", "reinit_pending", "max_staleness_seconds", "scheduler_status", "cache_hit_rate"],
        ),
        (
            "SELECT start_time, stream_table, action, status, round(duration_ms::numeric,1) AS ms
             FROM pgtrickle.refresh_timeline(20)",
            &["start_time", "stream_table", "action", "status", "ms"],
        ),
        (
            "SELECT * FROM pgtrickle.refresh_timeline(100) WHERE status = 'ERROR'",
            &["start_time", "stream_table", "action", "status", "rows_inserted", "rows_updated", "rows_deleted", "duration_ms", "error_message"],
        ),
        (
            "SELECT pgt_name, status, total_refreshes, avg_duration_ms, stale
             FROM pgtrickle.st_refresh_stats()",
            &["pgt_name", "status", "total_refreshes", "avg_duration_ms", "stale"],
        ),
        (
            "SELECT action, status, rows_inserted, duration_ms
             FROM pgtrickle.get_refresh_history('order_totals', 5)",
            &["action", "status", "rows_inserted", "duration_ms"],
        ),
        ("SELECT pgtrickle.get_staleness('order_totals')", &["get_staleness"]),
        (
            "SELECT * FROM pgtrickle.explain_refresh_mode('public.order_totals')",
            &["configured_mode", "effective_mode", "downgrade_reason"],
        ),
        (
            "SELECT * FROM pgtrickle.check_cdc_health()",
            &["source_relid", "source_table", "cdc_mode", "slot_name", "lag_bytes", "confirmed_lsn", "alert"],
        ),
        (
            "SELECT * FROM pgtrickle.change_buffer_sizes() ORDER BY pending_rows DESC",
            &["stream_table", "source_table", "source_oid", "cdc_mode", "pending_rows", "buffer_bytes"],
        ),
        (
            "SELECT source_table, trigger_type, trigger_name
             FROM pgtrickle.trigger_inventory()
             WHERE NOT present OR NOT enabled",
            &["source_table", "trigger_type", "trigger_name"],
        ),
        (
            "SELECT tree_line, status, refresh_mode FROM pgtrickle.dependency_tree()",
            &["tree_line", "status", "refresh_mode"],
        ),
        (
            "SELECT * FROM pgtrickle.diamond_groups()",
            &["group_id", "member_name", "member_schema", "is_convergence", "epoch", "schedule_policy"],
        ),
        (
            "SELECT * FROM pgtrickle.pgt_scc_status()",
            &["scc_id", "member_count", "members", "last_iterations", "last_converged_at"],
        ),
        ("SELECT * FROM pgtrickle.explain_st('order_totals')", &["property", "value"]),
        (
            "SELECT * FROM pgtrickle.list_sources('order_totals')",
            &["source_table", "source_oid", "source_type", "cdc_mode", "columns_used"],
        ),
        (
            "SELECT event_time, error_type, error_message, remediation
             FROM pgtrickle.diagnose_errors('order_totals')",
            &["event_time", "error_type", "error_message", "remediation"],
        ),
        (
            "SELECT * FROM pgtrickle.slot_health()",
            &["slot_name", "source_relid", "active", "retained_wal_bytes", "wal_status"],
        ),
        (
            "SELECT name, fuse_mode, fuse_state, fuse_ceiling, blown_at FROM pgtrickle.fuse_status()",
            &["name", "fuse_mode", "fuse_state", "fuse_ceiling", "blown_at"],
        ),
        (
            "SELECT * FROM pgtrickle.quick_health",
            &["total_stream_tables", "error_tables", "stale_tables", "scheduler_running", "status"],
        ),
    ];
    for (sql, want) in shapes {
        let got = columns(&client, sql).await;
        assert_eq!(&got[..want.len()], *want, "{sql}");
        client
            .query(*sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    for sql in [
        "SELECT * FROM pgtrickle.stream_tables_info",
        "SELECT * FROM pgtrickle.pg_stat_stream_tables",
        "SELECT * FROM pgtrickle.pgt_cdc_status",
        "SELECT pgt_name, status, consecutive_errors FROM pgtrickle.pgt_stream_tables WHERE status = 'SUSPENDED'",
    ] {
        client
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    // drop_stream_table's example, then the uninstall form.
    run(
        &client,
        "SELECT pgtrickle.drop_stream_table('order_totals')",
    )
    .await;
    run(
        &client,
        "SELECT pgtrickle.drop_stream_table(pgt_schema || '.' || pgt_name) FROM pgtrickle.pgt_stream_tables",
    )
    .await;
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgtrickle.pgt_stream_tables").await,
        0
    );
}
