//! A randomised oracle for stream tables over a foreign table: a keyless remote table
//! `r(k, v, t)` with small value domains (duplicates and NULLs are frequent) read through
//! postgres_fdw, and a local table `l(k, w)`. Several defining queries (filtered projection,
//! GROUP BY with COUNT/SUM, local JOIN and LEFT JOIN foreign, DISTINCT, one FULL) are refreshed
//! after every round of random writes on both sides, and must equal their queries run directly
//! (as bags).
//!
//! The seed is printed; `FDW_ORACLE_SEED=<n>` replays a run.

use std::time::{SystemTime, UNIX_EPOCH};

use pgtrickle_e2e::{
    await_catalog, connect, contents, postgres_fdw_server_sql, rows_differing, setup, Cluster,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ROUNDS: usize = 25;

/// (name, columns, defining query, extra create arguments)
const QUERIES: [(&str, &str, &str, &str); 7] = [
    (
        "o_filtered",
        "k, t",
        "SELECT k, t FROM fr WHERE v >= 1 OR t IS NULL",
        "",
    ),
    (
        "o_grouped",
        "k, n, s",
        "SELECT k, COUNT(*) AS n, SUM(v) AS s FROM fr GROUP BY k",
        "",
    ),
    (
        "o_joined",
        "k, w, v, t",
        "SELECT l.k, l.w, fr.v, fr.t FROM l JOIN fr ON fr.k = l.k",
        "",
    ),
    ("o_distinct", "t, v", "SELECT DISTINCT t, v FROM fr", ""),
    (
        "o_joined_grouped",
        "w, n, s",
        "SELECT l.w, COUNT(*) AS n, SUM(fr.v) AS s FROM l JOIN fr ON fr.k = l.k GROUP BY l.w",
        "",
    ),
    (
        "o_left_joined",
        "k, w, t",
        "SELECT l.k, l.w, fr.t FROM l LEFT JOIN fr ON fr.k = l.k",
        "",
    ),
    (
        "o_grouped_full",
        "t, n, s",
        "SELECT t, COUNT(*) AS n, SUM(k) AS s FROM fr GROUP BY t",
        ", refresh_mode => 'FULL'",
    ),
];

/// A value from a small domain, or NULL about one time in five.
fn int_or_null(rng: &mut StdRng, max: i32) -> String {
    if rng.gen_ratio(1, 5) {
        "NULL".into()
    } else {
        rng.gen_range(0..=max).to_string()
    }
}

fn text_or_null(rng: &mut StdRng) -> String {
    match rng.gen_range(0..4) {
        0 => "NULL".into(),
        1 => "'a'".into(),
        2 => "'b'".into(),
        _ => "'c'".into(),
    }
}

/// A comparison with a small-domain value (`IS NULL` when the value is NULL).
fn matches(rng: &mut StdRng, column: &str, max: i32) -> String {
    let value = int_or_null(rng, max);
    if value == "NULL" {
        format!("{column} IS NULL")
    } else {
        format!("{column} = {value}")
    }
}

/// One batch of writes on the remote table `r`.
fn remote_batch(rng: &mut StdRng) -> String {
    let mut statements = Vec::new();
    for _ in 0..rng.gen_range(1..=4) {
        let statement = match rng.gen_range(0..6) {
            0 | 1 => {
                let rows: Vec<String> = (0..rng.gen_range(1..=5))
                    .map(|_| {
                        format!(
                            "({}, {}, {})",
                            int_or_null(rng, 4),
                            int_or_null(rng, 3),
                            text_or_null(rng)
                        )
                    })
                    .collect();
                format!("INSERT INTO r VALUES {}", rows.join(", "))
            }
            // An exact duplicate of an existing row.
            2 => "INSERT INTO r SELECT k, v, t FROM r ORDER BY random() LIMIT 1".into(),
            3 => format!(
                "UPDATE r SET v = {} WHERE {}",
                int_or_null(rng, 3),
                matches(rng, "k", 4)
            ),
            4 => format!(
                "UPDATE r SET t = {} WHERE ctid IN (SELECT ctid FROM r WHERE {} LIMIT 2)",
                text_or_null(rng),
                matches(rng, "v", 3)
            ),
            // One of possibly several identical rows.
            _ => format!(
                "DELETE FROM r WHERE ctid IN (SELECT ctid FROM r WHERE {} LIMIT {})",
                matches(rng, "k", 4),
                rng.gen_range(1..=2)
            ),
        };
        statements.push(statement);
    }
    statements.join("; ")
}

/// One batch of writes on the local table `l`.
fn local_batch(rng: &mut StdRng) -> String {
    match rng.gen_range(0..4) {
        0 | 1 => format!(
            "INSERT INTO l VALUES ({}, {})",
            int_or_null(rng, 4),
            int_or_null(rng, 2)
        ),
        2 => format!(
            "UPDATE l SET w = {} WHERE {}",
            int_or_null(rng, 2),
            matches(rng, "k", 4)
        ),
        _ => format!(
            "DELETE FROM l WHERE ctid IN (SELECT ctid FROM l WHERE {} LIMIT 1)",
            matches(rng, "k", 4)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_writes_on_both_sides_keep_stream_tables_equal_to_their_queries() {
    let seed: u64 = std::env::var("FDW_ORACLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("foreign oracle seed: {seed} (FDW_ORACLE_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);

    let remote = Cluster::start();
    remote.psql(
        "CREATE TABLE r (k int, v int, t text); \
         INSERT INTO r SELECT CASE WHEN g % 7 = 0 THEN NULL ELSE g % 5 END, \
         CASE WHEN g % 6 = 0 THEN NULL ELSE g % 4 END, \
         (ARRAY['a', 'b', NULL, 'c'])[g % 4 + 1] FROM generate_series(1, 30) g",
    );
    let (_local, proxy) = setup!(&[
        "--scheduler-interval-ms",
        "60000",
        "--poll-timeout-seconds",
        "60",
    ]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    // A first create racing the scheduler's set-up is foreign_tables.rs's business, not the
    // oracle's.
    await_catalog(&client, &proxy).await;
    let remote_client = connect(&remote.conninfo("postgres", "postgres")).await;
    client
        .batch_execute(&format!(
            "{} CREATE FOREIGN TABLE fr (k int, v int, t text) SERVER remote_analytics \
             OPTIONS (table_name 'r'); \
             CREATE TABLE l (k int, w int); \
             INSERT INTO l SELECT g % 5, g % 3 FROM generate_series(1, 8) g; \
             INSERT INTO l VALUES (NULL, 1), (2, NULL)",
            postgres_fdw_server_sql("remote_analytics", &remote)
        ))
        .await
        .unwrap();
    for (name, _, query, extra) in QUERIES {
        client
            .batch_execute(&format!(
                "SELECT pgtrickle.create_stream_table(name => '{name}', query => $q${query}$q$, \
                 schedule => '1h'{extra})"
            ))
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: create {name}: {e:?}\n{}", proxy.log()));
    }

    // The stream tables read the foreign table's mirror (one for all of them).
    let oid: u32 = client
        .query_one("SELECT 'fr'::regclass::oid", &[])
        .await
        .unwrap()
        .get(0);
    let has_mirror: bool = client
        .query_one(
            &format!("SELECT to_regclass('pgtrickle_changes.mirror_{oid}') IS NOT NULL"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        has_mirror,
        "no mirror pgtrickle_changes.mirror_{oid} for fr"
    );

    for round in 0..ROUNDS {
        // Some rounds leave the remote alone (a poll that finds nothing).
        let remote_sql = if rng.gen_ratio(4, 5) {
            remote_batch(&mut rng)
        } else {
            String::new()
        };
        remote_client
            .batch_execute(&remote_sql)
            .await
            .unwrap_or_else(|e| panic!("seed {seed} round {round}: {remote_sql}: {e:?}"));
        let local_sql = if rng.gen_ratio(2, 3) {
            let sql = local_batch(&mut rng);
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("seed {seed} round {round}: {sql}: {e:?}"));
            sql
        } else {
            String::new()
        };
        for (name, cols, query, _) in QUERIES {
            client
                .batch_execute(&format!("SELECT pgtrickle.refresh_stream_table('{name}')"))
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "seed {seed} round {round}: refresh {name}: {e:?}\n{}",
                        proxy.log()
                    )
                });
            let differing = rows_differing(&client, name, cols, query).await;
            assert_eq!(
                differing,
                0,
                "seed {seed} round {round}: {name} differs from its query by {differing} rows \
                 after remote writes [{remote_sql}] and local writes [{local_sql}]\n\
                 {name}: {}\nquery: {}\nproxy log:\n{}",
                contents(&client, &format!("SELECT {cols} FROM {name}")).await,
                contents(&client, query).await,
                proxy.log()
            );
        }
    }
}
