//! pgbench through the proxy with the simple, extended and prepared protocols: every
//! transaction must succeed.

use std::process::Command;

use pgtrickle_e2e::{setup, Cluster};

fn pgbench(cluster: &Cluster, port: u16, args: &[&str]) -> String {
    let out = Command::new(cluster.client_program("pgbench"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(args)
        .arg("postgres")
        .output()
        .expect("run pgbench");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    text
}

#[test]
fn pgbench_runs_without_failures_in_every_protocol_mode() {
    let (cluster, proxy) = setup!(&[]);
    pgbench(&cluster, proxy.port(), &["-i", "-s", "1", "-q"]);
    for mode in ["simple", "extended", "prepared"] {
        for builtin in [&["-S"][..], &["-N"][..], &[][..]] {
            // -n: no vacuum, which would also empty pgbench_history between runs.
            let mut args = vec!["-n", "-M", mode, "-c", "4", "-j", "2", "-t", "150"];
            args.extend_from_slice(builtin);
            let text = pgbench(&cluster, proxy.port(), &args);
            assert!(
                text.contains("number of transactions actually processed: 600/600"),
                "{mode} {builtin:?}:\n{text}"
            );
            assert!(
                text.contains("number of failed transactions: 0 "),
                "{mode} {builtin:?}:\n{text}"
            );
        }
    }
    // The data the proxied runs wrote is really in the server.
    let history: u64 = cluster
        .psql("select count(*) from pgbench_history")
        .trim()
        .parse()
        .unwrap();
    // -N and the default script write one history row per transaction; -S writes none.
    assert_eq!(history, 3 * 2 * 600);
}
