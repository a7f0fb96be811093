//! Benchmark helper (run by benches/stream_tables.sh, not by the tests): measures the time from
//! a committed write through the proxy to its visibility in a `calculated` stream table.
//! Usage: freshness CONNINFO SAMPLES

use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let conninfo = args.next().expect("usage: freshness CONNINFO SAMPLES");
    let samples: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    let client = pgtrickle_e2e::connect(&conninfo).await;
    client
        .batch_execute("DROP TABLE IF EXISTS fresh_src; CREATE TABLE fresh_src (k int, v int)")
        .await
        .expect("create source");
    client
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('fresh_st', \
             'SELECT k, count(*) AS n FROM fresh_src GROUP BY k')",
        )
        .await
        .expect("create stream table");
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples as i32 {
        let started = Instant::now();
        client
            .execute("INSERT INTO fresh_src VALUES ($1, 1)", &[&i])
            .await
            .expect("insert");
        loop {
            let n = client
                .query_opt("SELECT n FROM fresh_st WHERE k = $1", &[&i])
                .await
                .expect("poll");
            if n.is_some() {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!("write {i} not visible after 30 s");
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        times.push(started.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "samples {samples}: median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 9 / 10]),
        ms(times[times.len() - 1])
    );
}
