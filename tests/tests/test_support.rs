//! The test-support module itself: a throwaway cluster starts, answers, stops and starts again.

use pgtrickle_e2e::Cluster;

#[test]
fn cluster_starts_answers_and_restarts() {
    let mut cluster = Cluster::start();
    assert_eq!(cluster.psql("select 40 + 2").trim(), "42");
    assert_eq!(cluster.psql("show fsync").trim(), "off");
    let port = cluster.port();
    cluster.stop();
    assert!(!cluster
        .psql_command("postgres", "postgres", "select 1")
        .status
        .success());
    cluster.start_again();
    assert_eq!(cluster.port(), port);
    assert_eq!(cluster.psql("select 1").trim(), "1");
}
