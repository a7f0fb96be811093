//! pg_trickle's SQL API as its documentation uses it, through the proxy (issue 16,
//! docs/COMPATIBILITY.md): every parameter of create/alter accepted by name (implemented,
//! accepted with a NOTICE, or refused with 0A000), the convenience creators, pause/resume and
//! refresh state rules, the read functions' result columns, the monitoring functions and views
//! (also for a client that bypasses the proxy), refused functions, calls over the rows of a
//! query, and the examples of pg_trickle's SQL reference that PostgreSQL 15 runs.

use pgtrickle_e2e::{connect, count, psql_isolated, setup, Cluster};
use tokio_postgres::Client;

/// The SQLSTATE of `sql`'s error (it must fail).
async fn sqlstate(client: &Client, sql: &str) -> String {
    let e = client
        .batch_execute(sql)
        .await
        .expect_err(&format!("{sql}: expected an error"));
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| panic!("{sql}: {e:?}"))
}

/// One text value.
async fn text(client: &Client, sql: &str) -> Option<String> {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

/// The column names of a query's result.
async fn columns(client: &Client, sql: &str) -> Vec<String> {
    let stmt = client
        .prepare(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    stmt.columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect()
}

/// psql's stderr (NOTICEs) for `sql`, which must succeed.
fn notices(cluster: &Cluster, conninfo: &str, sql: &str) -> String {
    let out = psql_isolated(cluster, conninfo, None, &[sql]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{sql}: {stderr}");
    stderr
}

const SOURCES: &str = "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int, region text, \
                       amount numeric, status text DEFAULT 'active', created_at timestamptz \
                       DEFAULT now()); \
                       INSERT INTO orders (customer_id, region, amount) \
                       SELECT g % 5, 'r' || (g % 3), g FROM generate_series(1, 30) g; \
                       CREATE TABLE events (id serial PRIMARY KEY, event_type text, payload \
                       text, created_at timestamptz DEFAULT now()); \
                       INSERT INTO events (event_type, payload) VALUES ('a', 'x'), ('b', 'y')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_parameter_is_a_decision() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let conninfo = proxy.conninfo("postgres", "postgres");
    let client = connect(&conninfo).await;
    client.batch_execute(SOURCES).await.unwrap();

    // Every create parameter by name; numeric parameters take numeric literals.
    let err = notices(
        &cluster,
        &conninfo,
        "SELECT pgtrickle.create_stream_table(name => 'all_params', \
         query => 'SELECT region, SUM(amount) AS total FROM orders GROUP BY region', \
         schedule => '1h', refresh_mode => 'AUTO', initialize => true, \
         diamond_consistency => 'atomic', diamond_schedule_policy => 'fastest', \
         cdc_mode => 'trigger', append_only => false, pooler_compatibility_mode => true, \
         max_differential_joins => 4, max_delta_fraction => 0.25, temporal => false)",
    );
    for p in [
        "diamond_consistency",
        "diamond_schedule_policy",
        "pooler_compatibility_mode",
        "max_differential_joins",
    ] {
        assert!(err.contains(&format!("{p} has no effect")), "{p}: {err}");
    }
    assert_eq!(
        text(&client, "SELECT auto_threshold::text FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'all_params'").await.as_deref(),
        Some("0.25")
    );
    // An integer literal for a float8 parameter, as PostgreSQL casts it.
    client
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('int_fraction', 'SELECT id FROM orders', \
             max_delta_fraction => 1)",
        )
        .await
        .unwrap();
    assert_eq!(
        sqlstate(&client, "SELECT pgtrickle.create_stream_table('bad', 'SELECT id FROM orders', max_delta_fraction => 1.5)").await,
        "22023"
    );
    // Refusals name the alternative (0A000).
    for (param, value) in [
        ("partition_by", "'id'"),
        ("output_distribution_column", "'id'"),
        ("temporal", "true"),
        ("storage_backend", "'citus_columnar'"),
        ("sink", "'kafka'"),
    ] {
        let sql = format!(
            "SELECT pgtrickle.create_stream_table('refused', 'SELECT id FROM orders', {param} => {value})"
        );
        assert_eq!(sqlstate(&client, &sql).await, "0A000", "{sql}");
    }
    // append_only: pg_trickle's refusal for FULL, then kept.
    assert_eq!(
        sqlstate(&client, "SELECT pgtrickle.create_stream_table('ao', 'SELECT id FROM events', refresh_mode => 'FULL', append_only => true)").await,
        "22023"
    );
    client
        .batch_execute(
            "SELECT pgtrickle.create_stream_table(name => 'event_log_st', \
             query => 'SELECT id, event_type, payload, created_at FROM events', \
             schedule => '30s', append_only => true)",
        )
        .await
        .unwrap();
    assert_eq!(
        text(&client, "SELECT append_only::text FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'event_log_st'").await.as_deref(),
        Some("true")
    );
    // Inserts and a delete on an append-only stream table: still the query's result.
    client
        .batch_execute(
            "INSERT INTO events (event_type) VALUES ('c'); DELETE FROM events WHERE id = 1; \
             SELECT pgtrickle.refresh_stream_table('event_log_st')",
        )
        .await
        .unwrap();
    assert_eq!(count(&client, "SELECT count(*) FROM event_log_st").await, 2);

    // Every alter parameter by name.
    let err = notices(
        &cluster,
        &conninfo,
        "SELECT pgtrickle.alter_stream_table('all_params', tier => 'warm', fuse => 'off', \
         fuse_ceiling => 100, fuse_sensitivity => 2, max_differential_joins => 3, \
         max_delta_fraction => 0.1, post_refresh_action => 'analyze', \
         reindex_drift_threshold => 0.3, pooler_compatibility_mode => false, append_only => false)",
    );
    assert!(err.contains("tier has no effect"), "{err}");
    assert_eq!(
        text(&client, "SELECT auto_threshold::text || ' ' || post_refresh_action FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'all_params'").await.as_deref(),
        Some("0.1 analyze")
    );
    for sql in [
        "SELECT pgtrickle.alter_stream_table('all_params', fuse => 'on')",
        "SELECT pgtrickle.alter_stream_table('all_params', post_refresh_action => 'reindex')",
        "SELECT pgtrickle.alter_stream_table('all_params', partition_by => 'region')",
        "SELECT pgtrickle.alter_stream_table('all_params', sink => 'kafka')",
    ] {
        assert_eq!(sqlstate(&client, sql).await, "0A000", "{sql}");
    }
    assert_eq!(
        sqlstate(
            &client,
            "SELECT pgtrickle.alter_stream_table('all_params', tier => 'lukewarm')"
        )
        .await,
        "22023"
    );
    // A new query keeps the options.
    client
        .batch_execute(
            "SELECT pgtrickle.alter_stream_table('all_params', \
             query => 'SELECT region, SUM(amount) AS total, COUNT(*) AS cnt FROM orders GROUP BY region')",
        )
        .await
        .unwrap();
    assert_eq!(
        text(&client, "SELECT auto_threshold::text || ' ' || post_refresh_action FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'all_params'").await.as_deref(),
        Some("0.1 analyze")
    );

    // The convenience creators and set_stream_table_refresh_policy.
    client
        .batch_execute(
            "SELECT pgtrickle.create_stream_table_fast_append_only('completed_orders', \
             'SELECT id, amount, created_at FROM orders WHERE status = ''completed'''); \
             SELECT pgtrickle.create_stream_table_realtime('live_order_counts', \
             'SELECT status, count(*) FROM orders GROUP BY status'); \
             SELECT pgtrickle.create_stream_table_batch('hourly_revenue', \
             'SELECT date_trunc(''hour'', created_at) AS hour, sum(amount) FROM orders GROUP BY 1'); \
             SELECT pgtrickle.create_stream_table_cost_optimized('daily_kpi_cache', \
             'SELECT date_trunc(''day'', created_at) AS day, count(*) AS events FROM orders GROUP BY 1'); \
             SELECT pgtrickle.set_stream_table_refresh_policy('hourly_revenue', 'FULL')",
        )
        .await
        .unwrap();
    let rows = client
        .query(
            "SELECT pgt_name, schedule, refresh_mode, append_only FROM pgtrickle.pgt_stream_tables \
             WHERE pgt_name IN ('completed_orders', 'live_order_counts', 'hourly_revenue', \
             'daily_kpi_cache') ORDER BY pgt_name",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, String, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let want = [
        ("completed_orders", "calculated", "DIFFERENTIAL", true),
        ("daily_kpi_cache", "15m", "AUTO", false),
        ("hourly_revenue", "5m", "FULL", false),
        ("live_order_counts", "1s", "DIFFERENTIAL", false),
    ];
    assert_eq!(
        got,
        want.map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d))
    );
    assert_eq!(
        sqlstate(
            &client,
            "SELECT pgtrickle.set_stream_table_refresh_policy('hourly_revenue', 'IMMEDIATE')"
        )
        .await,
        "22023"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_read_functions_monitoring_and_refusals() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client.batch_execute(SOURCES).await.unwrap();
    client
        .batch_execute(
            "SELECT pgtrickle.create_stream_table(name => 'order_totals', \
             query => 'SELECT region, SUM(amount) AS total FROM orders GROUP BY region', \
             schedule => '5m', refresh_mode => 'DIFFERENTIAL'); \
             SELECT pgtrickle.create_stream_table('report', \
             'SELECT region, total FROM order_totals WHERE total > 10', refresh_mode => 'FULL')",
        )
        .await
        .unwrap();

    // State rules.
    client
        .batch_execute("SELECT pgtrickle.pause_stream_table('order_totals')")
        .await
        .unwrap();
    assert_eq!(
        text(
            &client,
            "SELECT status FROM pgtrickle.pgt_status() WHERE name = 'public.order_totals'"
        )
        .await
        .as_deref(),
        Some("SUSPENDED")
    );
    assert_eq!(
        sqlstate(
            &client,
            "SELECT pgtrickle.pause_stream_table('order_totals')"
        )
        .await,
        "22023"
    );
    assert_eq!(
        sqlstate(
            &client,
            "SELECT pgtrickle.refresh_stream_table('order_totals')"
        )
        .await,
        "55000"
    );
    client
        .batch_execute("SELECT pgtrickle.resume_stream_table('order_totals')")
        .await
        .unwrap();
    assert_eq!(
        sqlstate(
            &client,
            "SELECT pgtrickle.resume_stream_table('order_totals')"
        )
        .await,
        "22023"
    );
    assert_eq!(
        sqlstate(&client, "SELECT pgtrickle.refresh_stream_table('no_such')").await,
        "42P01"
    );

    // A differential refresh counts its rows as pg_trickle does.
    // (Separate statements: a query string with a call runs as one READ COMMITTED
    // transaction, whose refreshes are FULL; after the stream table created in one, the first
    // refresh is FULL too.)
    client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('order_totals')")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO orders (customer_id, region, amount) VALUES (1, 'new', 5)")
        .await
        .unwrap();
    client
        .batch_execute("SELECT pgtrickle.refresh_stream_table('order_totals')")
        .await
        .unwrap();
    let history_columns = columns(
        &client,
        "SELECT * FROM pgtrickle.get_refresh_history('order_totals', 5)",
    )
    .await;
    assert_eq!(
        history_columns[..11],
        [
            "refresh_id",
            "data_timestamp",
            "start_time",
            "end_time",
            "action",
            "status",
            "rows_inserted",
            "rows_updated",
            "rows_deleted",
            "duration_ms",
            "error_message"
        ]
    );
    let row = client
        .query_one(
            "SELECT action, rows_inserted, data_timestamp IS NOT NULL, duration_ms >= 0 \
             FROM pgtrickle.get_refresh_history('order_totals', 1)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "DIFFERENTIAL");
    assert!(row.get::<_, Option<i64>>(1).unwrap_or(0) >= 1, "{row:?}");
    assert!(row.get::<_, bool>(2) && row.get::<_, bool>(3));
    let status_columns = columns(&client, "SELECT * FROM pgtrickle.pgt_status()").await;
    assert_eq!(
        status_columns[..8],
        [
            "name",
            "status",
            "refresh_mode",
            "is_populated",
            "consecutive_errors",
            "schedule",
            "data_timestamp",
            "staleness"
        ]
    );
    assert_eq!(
        text(&client, "SELECT (data_timestamp IS NOT NULL)::text FROM pgtrickle.pgt_status() WHERE name = 'public.order_totals'").await.as_deref(),
        Some("true")
    );
    let explain = client
        .query(
            "SELECT property, value FROM pgtrickle.explain_st('order_totals')",
            &[],
        )
        .await
        .unwrap();
    let properties: Vec<String> = explain.iter().map(|r| r.get(0)).collect();
    for p in [
        "pgt_name",
        "defining_query",
        "refresh_mode",
        "status",
        "is_populated",
        "dvm_supported",
        "operator_tree",
        "output_columns",
        "source_oids",
        "delta_query",
    ] {
        assert!(properties.iter().any(|q| q == p), "{p}: {properties:?}");
    }
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgtrickle.explain_st('order_totals', with_analyze => true) WHERE property = 'explain_analyze'").await,
        1
    );

    // Monitoring, through the proxy and directly.
    let direct = connect(&cluster.conninfo("postgres", "postgres")).await;
    for c in [&client, &direct] {
        assert_eq!(
            columns(c, "SELECT * FROM pgtrickle.health_check()").await,
            ["check_name", "severity", "detail"]
        );
        assert_eq!(count(c, "SELECT count(*) FROM pgtrickle.health_check() WHERE check_name = 'error_tables' AND severity = 'OK'").await, 1);
        assert_eq!(count(c, "SELECT count(*) FROM pgtrickle.change_buffer_sizes() WHERE source_table = 'public.orders'").await, 1);
        assert_eq!(count(c, "SELECT count(*) FROM pgtrickle.trigger_inventory() WHERE source_table = 'public.orders' AND present AND enabled").await, 4);
        assert_eq!(
            count(
                c,
                "SELECT count(*) FROM pgtrickle.check_cdc_health() WHERE alert IS NOT NULL"
            )
            .await,
            0
        );
        let tree: Vec<String> = c
            .query("SELECT tree_line FROM pgtrickle.dependency_tree()", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            tree,
            [
                "public.report",
                "└── public.order_totals",
                "    └── public.orders [src]"
            ]
        );
        assert_eq!(count(c, "SELECT count(*) FROM pgtrickle.st_refresh_stats() WHERE pgt_name = 'order_totals' AND successful_refreshes >= 2").await, 1);
        assert!(count(c, "SELECT count(*) FROM pgtrickle.refresh_timeline(100)").await >= 3);
        assert_eq!(
            count(
                c,
                "SELECT count(*) FROM pgtrickle.stream_table_lineage('report')"
            )
            .await,
            2
        );
        assert_eq!(
            count(
                c,
                "SELECT count(*) FROM pgtrickle.diagnose_errors('report')"
            )
            .await,
            0
        );
        assert_eq!(
            count(c, "SELECT count(*) FROM pgtrickle.list_sources('report')").await,
            1
        );
        assert_eq!(
            count(
                c,
                "SELECT count(*) FROM pgtrickle.quick_health WHERE total_stream_tables = 2"
            )
            .await,
            1
        );
        assert_eq!(
            count(c, "SELECT count(*) FROM pgtrickle.stream_tables_info").await,
            2
        );
        assert_eq!(
            count(c, "SELECT count(*) FROM pgtrickle.pg_stat_stream_tables").await,
            2
        );
        assert_eq!(
            count(c, "SELECT count(*) FROM pgtrickle.pgt_cdc_status").await,
            2
        );
        assert_eq!(
            count(
                c,
                "SELECT count(*) FROM pgtrickle.health_summary() WHERE total_stream_tables = 2"
            )
            .await,
            1
        );
        assert_eq!(
            count(c, "SELECT count(*) FROM pgtrickle.diamond_groups()").await,
            0
        );
        // Refused functions exist, and say what to use instead.
        for sql in [
            "SELECT pgtrickle.bulk_create('[]'::jsonb)",
            "SELECT pgtrickle.repair_stream_table('report')",
            "SELECT pgtrickle.set_stream_table_sla('report', interval '10 seconds')",
            "SELECT pgtrickle.gate_source('orders')",
        ] {
            assert_eq!(sqlstate(c, sql).await, "0A000", "{sql}");
        }
    }
    // A direct call of a call the proxy answers is told to use the proxy, whatever arguments.
    assert_eq!(
        sqlstate(&direct, "SELECT pgtrickle.create_stream_table('x', 'SELECT 1', max_delta_fraction => 0.5, sink => NULL)").await,
        "0A000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_rows_of_a_query() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "60000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client.batch_execute(SOURCES).await.unwrap();
    for name in ["a1", "a2", "b1"] {
        client
            .batch_execute(&format!(
                "SELECT pgtrickle.create_stream_table('{name}', 'SELECT id, amount FROM orders')"
            ))
            .await
            .unwrap();
    }
    client
        .batch_execute("INSERT INTO orders (customer_id, region, amount) VALUES (9, 'z', 1)")
        .await
        .unwrap();
    // One result row per call, in order.
    let rows = client
        .simple_query(
            "SELECT pgtrickle.refresh_stream_table(pgt_schema || '.' || pgt_name) \
             FROM pgtrickle.pgt_stream_tables ORDER BY pgt_id",
        )
        .await
        .unwrap();
    let data = rows
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        .count();
    assert_eq!(data, 3);
    for name in ["a1", "a2", "b1"] {
        assert_eq!(
            count(&client, &format!("SELECT count(*) FROM {name}")).await,
            31
        );
    }
    // Undone with the client's transaction.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute(
            "SELECT pgtrickle.drop_stream_table(pgt_name) FROM pgtrickle.pgt_stream_tables",
        )
        .await
        .unwrap();
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgtrickle.pgt_stream_tables").await,
        0
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgtrickle.pgt_stream_tables").await,
        3
    );
    // Extended protocol, with a WHERE.
    let dropped = client
        .query(
            "SELECT pgtrickle.drop_stream_table(pgt_name) FROM pgtrickle.pgt_stream_tables \
             WHERE pgt_name LIKE 'a%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(dropped.len(), 2);
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgtrickle.pgt_stream_tables").await,
        1
    );
    // A failing call fails the whole statement.
    client
        .batch_execute("SELECT pgtrickle.create_stream_table('c1', 'SELECT id FROM orders')")
        .await
        .unwrap();
    assert_eq!(
        sqlstate(
            &client,
            "SELECT pgtrickle.resume_stream_table(pgt_name) FROM pgtrickle.pgt_stream_tables"
        )
        .await,
        "22023"
    );
    // pg_trickle's uninstall instructions.
    client
        .batch_execute(
            "SELECT pgtrickle.drop_stream_table(pgt_name) FROM pgtrickle.pgt_stream_tables",
        )
        .await
        .unwrap();
    assert_eq!(
        count(&client, "SELECT count(*) FROM pgtrickle.pgt_stream_tables").await,
        0
    );
}
