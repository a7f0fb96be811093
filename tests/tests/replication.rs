//! Replication connections through the proxy: COPY BOTH with pg_recvlogical (logical decoding)
//! and the physical stream of pg_basebackup.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgtrickle_e2e::{proxy_bin, proxy_for, Cluster, ClusterOptions};

fn replication_cluster() -> Cluster {
    Cluster::start_with(ClusterOptions {
        config: vec![
            "wal_level = logical".into(),
            "max_wal_senders = 5".into(),
            "max_replication_slots = 5".into(),
        ],
        ..Default::default()
    })
}

#[test]
fn logical_decoding_streams_through_copy_both() {
    let cluster = replication_cluster();
    let proxy = proxy_for(proxy_bin!(), &cluster, &[]);
    cluster.psql("create table repl (id int primary key, v text)");
    let conninfo = format!(
        "{} replication=database",
        proxy.conninfo("postgres", "postgres")
    );
    let recvlogical = cluster.client_program("pg_recvlogical");
    let out = Command::new(&recvlogical)
        .args([
            "-d",
            &conninfo,
            "--slot",
            "s1",
            "--plugin",
            "test_decoding",
            "--create-slot",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("changes.txt");
    let mut child = Command::new(&recvlogical)
        .args([
            "-d", &conninfo, "--slot", "s1", "--start", "-F", "1", "-s", "1", "-f",
        ])
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    cluster.psql(
        "insert into repl values (1, 'one'), (2, 'two'); update repl set v = 'deux' where id = 2",
    );
    let started = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains("table public.repl: UPDATE: id[integer]:2 v[text]:'deux'") {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "changes not streamed; got:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        text.contains("table public.repl: INSERT: id[integer]:1 v[text]:'one'"),
        "{text}"
    );
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn pg_basebackup_streams_a_physical_backup() {
    let cluster = replication_cluster();
    let proxy = proxy_for(proxy_bin!(), &cluster, &[]);
    cluster.psql("create table marker (v text); insert into marker values ('in the backup')");
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("backup");
    let out = Command::new(cluster.client_program("pg_basebackup"))
        .args([
            "-d",
            &proxy.conninfo("postgres", "postgres"),
            "-X",
            "stream",
            "-c",
            "fast",
            "-D",
        ])
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(target.join("PG_VERSION").exists());
    assert!(target.join("backup_label").exists());
}
