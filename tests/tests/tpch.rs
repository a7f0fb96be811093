//! TPC-H through the proxy: the 22 queries (tests/tpch/queries, the spec's validation values,
//! PostgreSQL 15 spellings) as stream tables over TPC-H-shaped data generated in SQL
//! (tests/tpch), then cycles of RF1 (new orders), RF2 (old orders deleted) and updates, each
//! followed by a refresh of every stream table and a comparison with its query as a bag.
//!
//! Every query is requested DIFFERENTIAL except those of `FULL_ONLY` (tpch_support), whose
//! DIFFERENTIAL request must fail naming the blocking construct and which are created FULL. The
//! DIFFERENTIAL ones must be so in `pgt_status()` and refresh DIFFERENTIAL in every cycle (the
//! refresh history): a silent fallback to FULL fails the test. The three queries blocked only
//! by their ORDER BY ... LIMIT are also maintained DIFFERENTIAL without it (`UNLIMITED`). Each
//! DIFFERENTIAL one must also see changes in some cycle, so that the data exercises its delta
//! rules. Run time: about 100 s on 2 busy cores (SF 0.01: 60,000 lineitems).
//!
//! `TPCH_SF` (default 0.01) and `TPCH_CYCLES` (default 10) change the scale and the number of
//! cycles. The data is deterministic (every value a hash of its key), so a failure repeats.

mod tpch_support;

use std::collections::BTreeMap;
use std::time::Instant;

use pgtrickle_e2e::{connect, exec, failure, refresh, rows_differing, setup};
use tpch_support::*;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn create_sql(name: &str, query: &str, mode: &str) -> String {
    format!("SELECT pgtrickle.create_stream_table('{name}', $${query}$$, '1h', '{mode}')")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_queries_stay_equal_to_their_stream_tables_through_refresh_cycles() {
    let started = Instant::now();
    let sf: f64 = env_or("TPCH_SF", 0.01);
    let cycles: u32 = env_or("TPCH_CYCLES", 10);
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "600000"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;

    exec(&client, &proxy, SCHEMA).await;
    exec(&client, &proxy, &format!("SET tpch.sf = '{sf}'")).await;
    exec(&client, &proxy, GENERATE).await;
    exec(&client, &proxy, ORDERS).await;
    exec(&client, &proxy, "ANALYZE").await;
    println!("SF {sf}: data in {:?}", started.elapsed());

    let mut queries: Vec<(&str, String)> = QUERIES.iter().map(|(n, q)| (*n, body(q))).collect();
    for (name, of) in UNLIMITED {
        let (_, q) = QUERIES.iter().find(|(n, _)| *n == of).expect("a query");
        queries.push((name, without_limit(&body(q))));
    }
    let mut cols = BTreeMap::new();
    for (name, query) in &queries {
        let expected = match full_only(name) {
            Some((_, construct, _)) => {
                let (code, message) =
                    failure(&client, &create_sql(name, query, "DIFFERENTIAL")).await;
                assert!(
                    code == "0A000" && message.contains(construct),
                    "{name}: DIFFERENTIAL refused with {code} {message}, expected 0A000 naming \
                     {construct} (if the planner now maintains {name}, move it out of FULL_ONLY)"
                );
                "FULL"
            }
            None => "DIFFERENTIAL",
        };
        exec(&client, &proxy, &create_sql(name, query, expected)).await;
        assert_eq!(
            modes(&client, name).await,
            (expected.to_string(), expected.to_string()),
            "{name}: requested and effective mode"
        );
        let c = columns(&client, name).await;
        assert_eq!(
            rows_differing(&client, name, &c, query).await,
            0,
            "{name} after its creation"
        );
        cols.insert(*name, c);
    }
    println!("created in {:?}", started.elapsed());

    let mut failures = Vec::new();
    let mut refresh_ms: BTreeMap<&str, Vec<u128>> = BTreeMap::new();
    let mut rows_changed: BTreeMap<&str, i64> = BTreeMap::new();
    for cycle in 1..=cycles {
        exec(&client, &proxy, &format!("SET tpch.cycle = '{cycle}'")).await;
        exec(&client, &proxy, &format!("{RF1}\n{ORDERS}")).await;
        exec(&client, &proxy, RF2).await;
        exec(&client, &proxy, UPDATES).await;
        for (name, query) in &queries {
            let t = Instant::now();
            refresh(&client, &proxy, name).await;
            refresh_ms
                .entry(name)
                .or_default()
                .push(t.elapsed().as_millis());
            let (action, reason) = last_refresh(&client, name).await;
            let expected = if full_only(name).is_some() {
                "FULL"
            } else {
                "DIFFERENTIAL"
            };
            if action != expected {
                failures.push(format!(
                    "{name} cycle {cycle}: refreshed {action} ({reason:?}), expected {expected}"
                ));
            }
            let changed: Option<i64> = client
                .query_one(
                    "SELECT rows_changed FROM pgtrickle.get_refresh_history($1, 1)",
                    &[name],
                )
                .await
                .unwrap_or_else(|e| panic!("{e:?}"))
                .get(0);
            *rows_changed.entry(name).or_default() += changed.unwrap_or(0);
            if let Some((_, n, keys)) = LIMITED.iter().find(|(q, _, _)| q == name) {
                // The data is deterministic; this guards the comparison's premise.
                assert!(
                    limit_is_deterministic(&client, query, *n, keys).await,
                    "{name} cycle {cycle}: the sort keys tie at the limit, the comparison \
                     would be ambiguous"
                );
            }
            let c = &cols[name];
            let n = rows_differing(&client, name, c, query).await;
            if n != 0 {
                let rows = differing_rows(&client, name, c, query).await;
                failures.push(format!(
                    "{name} cycle {cycle} ({action}): {n} rows differ\n{rows}"
                ));
            }
        }
        println!("cycle {cycle} done at {:?}", started.elapsed());
    }
    for (name, ms) in &refresh_ms {
        println!(
            "{name} refresh ms per cycle: {ms:?}, rows changed {}",
            rows_changed[name]
        );
    }
    for (name, _) in &queries {
        if full_only(name).is_none() && rows_changed[name] == 0 {
            failures.push(format!(
                "{name}: no refresh changed a row in {cycles} cycles (the changes miss it)"
            ));
        }
    }
    println!("total {:?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
