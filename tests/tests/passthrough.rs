//! Through the proxy versus directly, with the same results: data types, errors with their
//! SQLSTATE, transactions and savepoints, COPY of 100k rows, LISTEN/NOTIFY to an idle listener,
//! pipelined extended-protocol batches (byte-identical answers), a 100 MB value, FunctionCall.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use pgtrickle_e2e::raw_client::{self, RawClient};
use pgtrickle_e2e::{connect, setup};
use tokio_postgres::{AsyncMessage, SimpleQueryMessage};

async fn simple_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

const TYPED_VALUES: &str = "select 1::int2, 2147483647::int4, '-9223372036854775808'::int8, \
    123456789.0123456789::numeric, 'NaN'::numeric, 1.5::float4, 'Infinity'::float8, \
    true, null::text, 'héllo wörld ✓ 日本'::text, E'\\\\x00ff10'::bytea, '2024-02-29'::date, \
    '2024-02-29 12:34:56.789'::timestamp, '2024-02-29 12:34:56+05'::timestamptz, \
    '1 year 2 mons 3 days 04:05:06'::interval, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, \
    '{\"a\": [1, 2, null]}'::json, '{\"b\": {\"c\": true}}'::jsonb, \
    array[1, null, 3]::int[], array['x', 'y z']::text[], '(1,2)'::point, \
    '192.168.0.1/24'::inet, '08:00:2b:01:02:03'::macaddr, 'a & b'::tsquery, \
    int4range(1, 10), '12:00'::time, repeat('x', 10000)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_types_are_the_same_through_the_proxy() {
    let (cluster, proxy) = setup!(&[]);
    let direct = connect(&cluster.conninfo("postgres", "postgres")).await;
    let proxied = connect(&proxy.conninfo("postgres", "postgres")).await;
    assert_eq!(
        simple_rows(&proxied, TYPED_VALUES).await,
        simple_rows(&direct, TYPED_VALUES).await
    );

    // Extended protocol, binary parameters and results.
    let sql = "select $1::int4 + 1, $2::text || '!', $3::bytea, $4::float8 * 2, $5::bool, $6::int8";
    let bytes: Vec<u8> = (0..=255).collect();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&41i32, &"ünïcode", &bytes, &1.25f64, &true, &i64::MIN];
    for client in [&direct, &proxied] {
        let row = client.query_one(sql, &params).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
        assert_eq!(row.get::<_, String>(1), "ünïcode!");
        assert_eq!(row.get::<_, Vec<u8>>(2), bytes);
        assert_eq!(row.get::<_, f64>(3), 2.5);
        assert!(row.get::<_, bool>(4));
        assert_eq!(row.get::<_, i64>(5), i64::MIN);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_their_sqlstate_and_message() {
    let (cluster, proxy) = setup!(&[]);
    let direct = connect(&cluster.conninfo("postgres", "postgres")).await;
    let proxied = connect(&proxy.conninfo("postgres", "postgres")).await;
    direct
        .batch_execute("create table uniq (id int primary key)")
        .await
        .unwrap();
    direct
        .batch_execute("insert into uniq values (1)")
        .await
        .unwrap();
    let cases = [
        ("select 1/0", "22012"),
        ("select * from no_such_table", "42P01"),
        ("insert into uniq values (1)", "23505"),
        ("selec 1", "42601"),
        ("select 'abc'::int", "22P02"),
    ];
    for (sql, code) in cases {
        let d = direct.simple_query(sql).await.unwrap_err();
        let p = proxied.simple_query(sql).await.unwrap_err();
        let (d, p) = (d.as_db_error().unwrap(), p.as_db_error().unwrap());
        assert_eq!(p.code().code(), code, "{sql}");
        assert_eq!(p.code(), d.code());
        assert_eq!(p.message(), d.message());
        assert_eq!(p.position(), d.position());
        // The session goes on after an error.
        assert_eq!(
            simple_rows(&proxied, "select 7").await,
            vec![vec![Some("7".into())]]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_and_savepoints_behave_as_directly() {
    let (_cluster, proxy) = setup!(&[]);
    let mut client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute("create table acct (id int, v int)")
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    tx.execute("insert into acct values (1, 10)", &[])
        .await
        .unwrap();
    tx.batch_execute("savepoint s1").await.unwrap();
    tx.execute("insert into acct values (2, 20)", &[])
        .await
        .unwrap();
    assert!(tx.batch_execute("select 1/0").await.is_err());
    // The transaction is failed until the savepoint is rolled back.
    let failed = tx.batch_execute("select 1").await.unwrap_err();
    assert_eq!(failed.code().unwrap().code(), "25P02");
    tx.batch_execute("rollback to savepoint s1").await.unwrap();
    tx.execute("insert into acct values (3, 30)", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.execute("insert into acct values (4, 40)", &[])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let rows = simple_rows(&client, "select id from acct order by id").await;
    assert_eq!(rows, vec![vec![Some("1".into())], vec![Some("3".into())]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out_of_100k_rows() {
    let (cluster, proxy) = setup!(&[]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    client
        .batch_execute("create table c (id int, name text, payload bytea)")
        .await
        .unwrap();
    let sink = client
        .copy_in("copy c from stdin with (format csv)")
        .await
        .unwrap();
    let mut sink = Box::pin(sink);
    let mut data = String::new();
    for i in 0..100_000 {
        data.push_str(&format!("{i},\"name, {i}\",\\x{:02x}\n", i % 256));
        if data.len() > 64 * 1024 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut data)))
                .await
                .unwrap();
        }
    }
    sink.send(bytes::Bytes::from(data)).await.unwrap();
    assert_eq!(sink.as_mut().finish().await.unwrap(), 100_000);

    let out: Vec<bytes::Bytes> = client
        .copy_out("copy (select * from c order by id) to stdout")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let proxied_out: Vec<u8> = out.concat();
    let direct = connect(&cluster.conninfo("postgres", "postgres")).await;
    let direct_out: Vec<bytes::Bytes> = direct
        .copy_out("copy (select * from c order by id) to stdout")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(proxied_out.iter().filter(|&&b| b == b'\n').count(), 100_000);
    assert_eq!(proxied_out, direct_out.concat());

    // A COPY that fails half way leaves the session usable.
    let sink = client.copy_in("copy c (id) from stdin").await.unwrap();
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from_static(b"1\nnot a number\n"))
        .await
        .unwrap();
    let err = sink.as_mut().finish().await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22P02");
    assert_eq!(
        simple_rows(&client, "select count(*) from c").await,
        vec![vec![Some("100000".into())]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_an_idle_listener() {
    let (_cluster, proxy) = setup!(&[]);
    let (listener, mut connection) = tokio_postgres::connect(
        &proxy.conninfo("postgres", "postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if tx.send(m).is_err() {
                break;
            }
        }
    });
    listener.batch_execute("listen chan").await.unwrap();
    // The listener now sits idle; another session notifies through the proxy.
    let notifier = connect(&proxy.conninfo("postgres", "postgres")).await;
    for i in 0..3 {
        notifier
            .batch_execute(&format!("notify chan, 'payload {i}'"))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match rx.recv().await {
                    Some(AsyncMessage::Notification(n)) => return n,
                    Some(_) => continue,
                    None => panic!("listener connection ended"),
                }
            }
        })
        .await
        .expect("notification not delivered to the idle listener");
        assert_eq!(got.channel(), "chan");
        assert_eq!(got.payload(), format!("payload {i}"));
    }
    // A notice raised by the server also reaches the client.
    listener
        .batch_execute("do $$ begin raise notice 'hello from plpgsql'; end $$")
        .await
        .unwrap();
    let notice = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(AsyncMessage::Notice(n)) = rx.recv().await {
                return n;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(notice.message(), "hello from plpgsql");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_keep_their_order() {
    let (_cluster, proxy) = setup!(&[]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    let stmt = client.prepare("select $1::int4 * 2").await.unwrap();
    // tokio-postgres pipelines requests that are polled together.
    let futures = (0..500).map(|i| {
        let client = &client;
        let stmt = &stmt;
        async move {
            if i % 50 == 49 {
                // Errors inside the pipeline fail only their own request.
                client.query_one("select 1/0", &[]).await.map(|_| -1)
            } else {
                client
                    .query_one(stmt, &[&i])
                    .await
                    .map(|r| r.get::<_, i32>(0))
            }
        }
    });
    let results = futures_util::future::join_all(futures).await;
    for (i, r) in results.into_iter().enumerate() {
        if i % 50 == 49 {
            assert_eq!(r.unwrap_err().code().unwrap().code(), "22012");
        } else {
            assert_eq!(r.unwrap(), i as i32 * 2);
        }
    }
}

/// Sends the same bytes to the server directly and through the proxy, and returns both
/// answers (everything after login, up to `ready` ReadyForQuery messages).
fn raw_exchange(direct_port: u16, proxy_port: u16, bytes: &[u8], ready: usize) -> [Vec<u8>; 2] {
    [direct_port, proxy_port].map(|port| {
        let (mut c, _) = RawClient::login(port, "postgres", "postgres");
        c.send(bytes);
        let mut out = Vec::new();
        for _ in 0..ready {
            for m in c.read_until_ready() {
                out.push(m.tag);
                out.extend_from_slice(&m.body);
            }
        }
        out
    })
}

#[test]
fn extended_protocol_pipeline_answers_are_byte_identical() {
    let (cluster, proxy) = setup!(&[]);
    cluster.psql("create table pipe (id int primary key, t text)");
    use raw_client::*;
    let mut batch = Vec::new();
    // Named statement and portal, unnamed ones, an error that skips to Sync, then a new batch.
    batch.extend(parse("ins", "insert into pipe values (1, 'a') returning *"));
    batch.extend(bind("p1", "ins"));
    batch.extend(describe_portal("p1"));
    batch.extend(execute("p1"));
    batch.extend(parse("", "select 1/0"));
    batch.extend(bind("", ""));
    batch.extend(execute(""));
    batch.extend(parse("", "select 'skipped'"));
    batch.extend(bind("", ""));
    batch.extend(execute(""));
    batch.extend(sync());
    batch.extend(parse("", "select id, t from pipe order by id"));
    batch.extend(bind("", ""));
    batch.extend(execute(""));
    batch.extend(sync());
    batch.extend(query("select count(*) from pipe; select 'two'"));
    let [direct, proxied] = raw_exchange(cluster.port(), proxy.port(), &batch, 3);
    assert!(!direct.is_empty());
    // The first attempt inserted id 1 directly, the second failed on the duplicate: compare
    // the proxied run against a direct run on the same state instead.
    let [direct_again, _] = raw_exchange(cluster.port(), proxy.port(), &batch, 3);
    assert_eq!(proxied, direct_again);
}

#[test]
fn flush_without_sync_gets_answers_at_once() {
    let (_cluster, proxy) = setup!(&[]);
    use raw_client::*;
    let (mut c, _) = RawClient::login(proxy.port(), "postgres", "postgres");
    let mut batch = parse("", "select 42");
    batch.extend(bind("", ""));
    batch.extend(execute(""));
    batch.extend(flush());
    c.send(&batch);
    let tags: Vec<u8> = (0..4).map(|_| c.read_message().unwrap().tag).collect();
    assert_eq!(tags, b"12DC");
    // The implicit transaction stays open until Sync.
    c.send(&sync());
    let ready = c.read_message().unwrap();
    assert_eq!((ready.tag, ready.body.clone()), (b'Z', b"I".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_value_round_trips() {
    let (_cluster, proxy) = setup!(&[]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    let big: String = "0123456789abcdef".repeat(100 * 1024 * 1024 / 16);
    client
        .batch_execute("create table big (v text)")
        .await
        .unwrap();
    client
        .execute("insert into big values ($1)", &[&big])
        .await
        .unwrap();
    let row = client
        .query_one("select v, length(v), md5(v) from big", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(1) as usize, big.len());
    let back: String = row.get(0);
    assert!(back == big, "value changed on the way");
    // The proxy streamed the value through instead of buffering whole messages.
    let rss_kb = pgtrickle_e2e::rss_kb(proxy.pid());
    assert!(
        rss_kb < 64 * 1024,
        "proxy RSS {rss_kb} kB after a 100 MB value"
    );
}

#[test]
fn function_call_protocol_works_for_large_objects() {
    let (cluster, proxy) = setup!(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob.bin");
    let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &content).unwrap();
    // psql's \lo_import and \lo_export use libpq's large-object API: FunctionCall messages.
    let out = std::process::Command::new(cluster.client_program("psql"))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(proxy.conninfo("postgres", "postgres"))
        .arg("-c")
        .arg(format!("\\lo_import {}", file.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let oid: String = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    let exported = dir.path().join("back.bin");
    let out = std::process::Command::new(cluster.client_program("psql"))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(proxy.conninfo("postgres", "postgres"))
        .arg("-c")
        .arg(format!("\\lo_export {oid} {}", exported.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&exported).unwrap(), content);
}
