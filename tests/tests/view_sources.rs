//! Sources that are not plain tables, through the proxy: views (expanded into the query and
//! maintained DIFFERENTIAL when that gives the owner nothing it cannot read directly, else
//! kept FULL with the reason), partitioned tables (FULL: their capture would miss writes), and
//! queries PostgreSQL accepts but the proxy's SQL parser cannot read (FULL in AUTO with a
//! notice, 0A000 under DIFFERENTIAL, never a parser error). Each is compared with its defining
//! query after random writes (NULLs and duplicate rows included) and refreshes.

use pgtrickle_e2e::{connect, exec, failure, psql_isolated, refresh, rows_differing, setup};
use pgtrickle_test_support::Cluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

/// psql's stderr (NOTICEs) for `sql`, which must succeed.
fn notices(cluster: &Cluster, conninfo: &str, sql: &str) -> String {
    let out = psql_isolated(cluster, conninfo, None, &[sql]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{sql}: {stderr}");
    stderr
}

async fn effective_mode(client: &Client, st: &str) -> String {
    client
        .query_one(
            "SELECT effective_mode FROM pgtrickle.pgt_status() WHERE name = $1",
            &[&st],
        )
        .await
        .unwrap()
        .get(0)
}

async fn last_action(client: &Client, st: &str) -> String {
    client
        .query_one(
            &format!("SELECT action FROM pgtrickle.get_refresh_history('{st}', 1)"),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// A random batch of writes to `o (id, cid, amt)`: inserts with duplicates and NULLs, updates,
/// deletes; and now and then to `c (id, region)`.
fn random_writes(rng: &mut StdRng) -> String {
    let mut sql = String::new();
    for _ in 0..rng.gen_range(1..5) {
        let null_or = |rng: &mut StdRng, hi: i32| {
            if rng.gen_bool(0.15) {
                "NULL".to_string()
            } else {
                rng.gen_range(0..hi).to_string()
            }
        };
        match rng.gen_range(0..10) {
            0..=4 => {
                let row = format!(
                    "({}, {}, {})",
                    rng.gen_range(0..20),
                    null_or(rng, 5),
                    null_or(rng, 30)
                );
                let copies = if rng.gen_bool(0.3) { 2 } else { 1 };
                sql.push_str(&format!(
                    "INSERT INTO o VALUES {};",
                    vec![row; copies].join(", ")
                ));
            }
            5..=6 => sql.push_str(&format!(
                "UPDATE o SET amt = amt + {}, cid = {} WHERE id = {};",
                rng.gen_range(-10..10),
                null_or(rng, 5),
                rng.gen_range(0..20)
            )),
            7 => sql.push_str(&format!(
                "DELETE FROM o WHERE id = {};",
                rng.gen_range(0..20)
            )),
            8 => sql.push_str(&format!(
                "INSERT INTO c VALUES ({}, {});",
                rng.gen_range(0..5),
                ["'n'", "'s'", "NULL"][rng.gen_range(0..3)]
            )),
            _ => sql.push_str(&format!(
                "DELETE FROM c WHERE id = {};",
                rng.gen_range(0..5)
            )),
        }
    }
    sql
}

const TABLES: &str = "CREATE TABLE o (id int, cid int, amt int); \
                      CREATE TABLE c (id int, region text); \
                      INSERT INTO o VALUES (1, 1, 20), (2, 1, 5), (3, 2, 40), (3, 2, 40), \
                      (4, NULL, 15); \
                      INSERT INTO c VALUES (1, 'n'), (2, 's'), (3, NULL)";

/// Views (nested, joined, with renamed columns) are expanded: the stream tables over them are
/// DIFFERENTIAL and equal their queries after every refresh; the views are recorded as
/// dependencies next to their base tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_are_expanded_and_maintained_differentially() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "600000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    exec(&client, &proxy, TABLES).await;
    exec(
        &client,
        &proxy,
        "CREATE VIEW big (order_id, customer, amount) AS SELECT id, cid, amt FROM o WHERE amt > 10; \
         CREATE VIEW big_with_region AS SELECT b.*, c.region FROM big b JOIN c ON c.id = b.customer",
    )
    .await;
    let cases = [
        (
            "by_region",
            "region, n, total",
            "SELECT region, count(*) AS n, sum(amount) AS total FROM big_with_region GROUP BY region",
            "DIFFERENTIAL",
        ),
        ("big_rows", "order_id, customer, amount", "SELECT * FROM big", "AUTO"),
        (
            "big_left",
            "id, amount, region",
            "SELECT c.id, big.amount, c.region FROM c LEFT JOIN big ON big.customer = c.id",
            "AUTO",
        ),
    ];
    for (st, _, query, mode) in cases {
        exec(
            &client,
            &proxy,
            &format!("SELECT pgtrickle.create_stream_table('{st}', $${query}$$, '1h', '{mode}')"),
        )
        .await;
        assert_eq!(
            effective_mode(&client, &format!("public.{st}")).await,
            "DIFFERENTIAL",
            "{st}"
        );
    }
    let deps: Vec<String> = client
        .query(
            "SELECT DISTINCT d.source_name FROM pgtrickle.pgt_dependencies d \
             JOIN pgtrickle.pgt_stream_tables s USING (pgt_id) WHERE s.pgt_name = 'by_region' \
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(deps, ["big", "big_with_region", "c", "o"]);
    let mut rng = StdRng::seed_from_u64(15);
    for round in 0..12 {
        let writes = random_writes(&mut rng);
        exec(&client, &proxy, &writes).await;
        for (st, cols, query, mode) in cases {
            refresh(&client, &proxy, st).await;
            // AUTO may choose FULL for a refresh by its cost model (these tables are tiny).
            if mode == "DIFFERENTIAL" {
                assert_eq!(
                    last_action(&client, st).await,
                    "DIFFERENTIAL",
                    "{st} round {round}"
                );
            }
            assert_eq!(
                rows_differing(&client, st, cols, query).await,
                0,
                "{st} after round {round}: {writes}"
            );
        }
    }
    // Dropping an expanded view stops the refreshes (they read its definition as created).
    exec(&client, &proxy, "SELECT pgtrickle.drop_stream_table('big_rows'); SELECT pgtrickle.drop_stream_table('big_left')").await;
    exec(&client, &proxy, "DROP VIEW big_with_region").await;
    let (code, _) = failure(
        &client,
        "SELECT pgtrickle.refresh_stream_table('by_region')",
    )
    .await;
    assert_eq!(code, "42P01");
}

/// A role that may read a view but not the table below it gets a FULL stream table over the
/// view (the rows the view shows it, nothing more), with the reason; DIFFERENTIAL is refused.
/// So do security_barrier views and views over tables with row-level security. A view over a
/// table the role reads itself is expanded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_are_expanded_only_when_the_owner_reads_their_tables_itself() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "600000"]);
    let admin = connect(&proxy.conninfo("postgres", "postgres")).await;
    exec(
        &admin,
        &proxy,
        &format!(
            "{TABLES}; CREATE ROLE bob LOGIN; CREATE SCHEMA bob AUTHORIZATION bob; \
             CREATE VIEW visible AS SELECT id, amt FROM o WHERE amt > 10; \
             GRANT SELECT ON visible TO bob; \
             CREATE VIEW barrier WITH (security_barrier) AS SELECT id, region FROM c \
             WHERE region IS NOT NULL; \
             CREATE TABLE guarded (id int, who text); ALTER TABLE guarded ENABLE ROW LEVEL SECURITY; \
             CREATE POLICY mine ON guarded USING (who = current_user); \
             INSERT INTO guarded VALUES (1, 'bob'), (2, 'postgres'); \
             CREATE VIEW guarded_view AS SELECT id, who FROM guarded; \
             CREATE VIEW regions AS SELECT id, region FROM c; \
             GRANT SELECT ON c, barrier, guarded, guarded_view, regions TO bob"
        ),
    )
    .await;
    let bob_conninfo = proxy.conninfo("bob", "postgres");
    let bob = connect(&bob_conninfo).await;
    // bob cannot read o directly.
    let (code, _) = failure(&bob, "SELECT * FROM o").await;
    assert_eq!(code, "42501");
    for (st, query, why) in [
        (
            "bob.vis",
            "SELECT id, amt FROM visible",
            "reads public.o with its owner's rights",
        ),
        (
            "bob.bar",
            "SELECT id, region FROM barrier",
            "security_barrier",
        ),
        (
            "bob.gua",
            "SELECT id, who FROM guarded_view",
            "row-level security",
        ),
    ] {
        let out = notices(
            &cluster,
            &bob_conninfo,
            &format!("SELECT pgtrickle.create_stream_table('{st}', $${query}$$, '1h', 'AUTO')"),
        );
        assert!(
            out.contains("uses FULL refresh") && out.contains(why),
            "{st}: {out}"
        );
        assert_eq!(effective_mode(&bob, st).await, "FULL", "{st}");
        let (code, message) = failure(
            &bob,
            &format!(
                "SELECT pgtrickle.create_stream_table('{st}_d', $${query}$$, '1h', 'DIFFERENTIAL')"
            ),
        )
        .await;
        assert_eq!(code, "0A000", "{st}: {message}");
        assert!(message.contains(why), "{st}: {message}");
    }
    exec(
        &bob,
        &proxy,
        "SELECT pgtrickle.create_stream_table('bob.reg', $$SELECT id, region FROM regions$$, '1h', 'AUTO')",
    )
    .await;
    assert_eq!(effective_mode(&bob, "bob.reg").await, "DIFFERENTIAL");
    let mut rng = StdRng::seed_from_u64(1515);
    for round in 0..6 {
        let writes = random_writes(&mut rng);
        exec(&admin, &proxy, &writes).await;
        for (st, cols, query) in [
            ("bob.vis", "id, amt", "SELECT id, amt FROM visible"),
            ("bob.bar", "id, region", "SELECT id, region FROM barrier"),
            ("bob.gua", "id, who", "SELECT id, who FROM guarded_view"),
            ("bob.reg", "id, region", "SELECT id, region FROM regions"),
        ] {
            refresh(&bob, &proxy, st).await;
            // Compared as bob sees the query: the stream table holds what bob's view shows.
            assert_eq!(
                rows_differing(&bob, st, cols, query).await,
                0,
                "{st} round {round}"
            );
        }
    }
    // The guarded view applies its owner's (postgres's) policy... as PostgreSQL does; bob's
    // stream table holds exactly what bob reads through the view.
    let n: i64 = bob
        .query_one("SELECT count(*) FROM bob.gua", &[])
        .await
        .unwrap()
        .get(0);
    let direct: i64 = bob
        .query_one("SELECT count(*) FROM guarded_view", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, direct);
}

/// Partitioned tables as sources: capture triggers sit on the root and on every partition, so
/// writes aimed at the root or at a partition are maintained DIFFERENTIAL. A partition created
/// or attached later, and a DETACH, are not captured: the refreshes then recompute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_sources_are_maintained_differentially() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "600000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    exec(
        &client,
        &proxy,
        "CREATE TABLE m (id int, v int) PARTITION BY RANGE (id); \
         CREATE TABLE m_low PARTITION OF m FOR VALUES FROM (0) TO (10); \
         CREATE TABLE m_high PARTITION OF m FOR VALUES FROM (10) TO (100) PARTITION BY RANGE (id); \
         CREATE TABLE m_high_a PARTITION OF m_high FOR VALUES FROM (10) TO (50); \
         CREATE TABLE m_high_b PARTITION OF m_high FOR VALUES FROM (50) TO (100); \
         INSERT INTO m VALUES (1, 1), (12, 2)",
    )
    .await;
    let query = "SELECT id % 3 AS g, count(*) AS n, sum(v) AS s FROM m GROUP BY id % 3";
    exec(
        &client,
        &proxy,
        &format!("SELECT pgtrickle.create_stream_table('mp', $${query}$$, '1h', 'DIFFERENTIAL')"),
    )
    .await;
    let mut rng = StdRng::seed_from_u64(7);
    for round in 0..10 {
        let mut writes = String::new();
        for _ in 0..3 {
            let table = ["m", "m_low", "m_high", "m_high_a", "m_high_b"][rng.gen_range(0..5)];
            let (lo, hi) = match table {
                "m_low" => (0, 10),
                "m_high" => (10, 100),
                "m_high_a" => (10, 50),
                "m_high_b" => (50, 100),
                _ => (0, 100),
            };
            let id = rng.gen_range(lo..hi);
            let v = if rng.gen_bool(0.2) {
                "NULL".to_string()
            } else {
                rng.gen_range(0..9).to_string()
            };
            writes.push_str(&match rng.gen_range(0..4) {
                0 | 1 => format!("INSERT INTO {table} VALUES ({id}, {v}), ({id}, {v});"),
                2 => format!("UPDATE {table} SET v = {v} WHERE id % 4 = {};", id % 4),
                _ => format!("DELETE FROM {table} WHERE id % 5 = {};", id % 5),
            });
        }
        // Rows moving between partitions.
        writes.push_str("UPDATE m SET id = id + 45 WHERE id BETWEEN 10 AND 12;");
        exec(&client, &proxy, &writes).await;
        refresh(&client, &proxy, "mp").await;
        assert_eq!(last_action(&client, "mp").await, "DIFFERENTIAL");
        assert_eq!(
            rows_differing(&client, "mp", "g, n, s", query).await,
            0,
            "round {round}: {writes}"
        );
    }
    // A partition attached after the create (with rows, then written directly), and a DETACH,
    // escape the capture: the refreshes recompute (FULL, with the reason), and stay equal.
    for (change, writes) in [
        (
            "CREATE TABLE m_top (id int, v int); INSERT INTO m_top VALUES (150, 3); \
             ALTER TABLE m ATTACH PARTITION m_top FOR VALUES FROM (100) TO (200)",
            "INSERT INTO m_top VALUES (160, 4)",
        ),
        (
            "ALTER TABLE m DETACH PARTITION m_low",
            "INSERT INTO m_low VALUES (5, 5); INSERT INTO m VALUES (120, 1)",
        ),
    ] {
        exec(&client, &proxy, change).await;
        refresh(&client, &proxy, "mp").await;
        assert_eq!(last_action(&client, "mp").await, "FULL", "{change}");
        assert_eq!(
            rows_differing(&client, "mp", "g, n, s", query).await,
            0,
            "{change}"
        );
        exec(&client, &proxy, writes).await;
        refresh(&client, &proxy, "mp").await;
        assert_eq!(
            rows_differing(&client, "mp", "g, n, s", query).await,
            0,
            "{change}; {writes}"
        );
    }
    let reason: String = client
        .query_one(
            "SELECT reason FROM pgtrickle.get_refresh_history('mp', 1)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(reason.contains("partitions"), "{reason}");
}

/// Queries PostgreSQL accepts that the proxy's SQL parser cannot read: FULL in AUTO with a
/// notice naming the parser, 0A000 under DIFFERENTIAL; never a parser error (42601).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_the_parser_cannot_read_are_full_in_auto() {
    let (cluster, proxy) = setup!(&["--scheduler-interval-ms", "600000"]);
    let conninfo = proxy.conninfo("postgres", "postgres");
    let client = connect(&conninfo).await;
    exec(&client, &proxy, TABLES).await;
    let queries = [
        (
            "rows_from",
            "id, a, b",
            "SELECT o.id, t.a, t.b FROM o, ROWS FROM (generate_series(1, o.cid), \
             generate_series(1, 2)) AS t(a, b)",
        ),
        (
            "collation_for",
            "region, coll",
            "SELECT region, COLLATION FOR (region) AS coll FROM c",
        ),
        (
            "substring_similar",
            "id, sub",
            "SELECT c.id, substring(c.region SIMILAR 'n%' ESCAPE '#') AS sub FROM c JOIN o ON o.cid = c.id",
        ),
    ];
    for (st, _, query) in queries {
        let out = notices(
            &cluster,
            &conninfo,
            &format!("SELECT pgtrickle.create_stream_table('{st}', $${query}$$, '1h', 'AUTO')"),
        );
        assert!(
            out.contains("uses FULL refresh") && out.contains("parser"),
            "{st}: {out}"
        );
        let (code, message) = failure(
            &client,
            &format!(
                "SELECT pgtrickle.create_stream_table('{st}_d', $${query}$$, '1h', 'DIFFERENTIAL')"
            ),
        )
        .await;
        assert_eq!(code, "0A000", "{st}: {message}");
        assert!(message.contains("parser"), "{message}");
        exec(
            &client,
            &proxy,
            &format!("SELECT pgtrickle.create_stream_table('{st}_f', $${query}$$, '1h', 'FULL')"),
        )
        .await;
    }
    let mut rng = StdRng::seed_from_u64(42);
    for round in 0..4 {
        let writes = random_writes(&mut rng);
        exec(&client, &proxy, &writes).await;
        for (st, cols, query) in queries {
            for name in [st.to_string(), format!("{st}_f")] {
                refresh(&client, &proxy, &name).await;
                assert_eq!(
                    rows_differing(&client, &name, cols, query).await,
                    0,
                    "{name} round {round}"
                );
            }
        }
    }
}
