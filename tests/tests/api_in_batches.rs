//! API calls anywhere in an extended-protocol batch or pipeline, as drivers send them (pgjdbc
//! with autocommit off sends `BEGIN` before the call without a Sync; pipelines put several
//! statements in one batch): each call runs at its place, after the answers to what came
//! before it and before what comes after, with the batch's error semantics (an error skips to
//! Sync). Checked message by message with a raw protocol client.

use pgtrickle_e2e::raw_client::{
    bind, describe_portal, execute, parse, query, sync, Message, RawClient,
};
use pgtrickle_e2e::setup;

fn tags(answer: &[Message]) -> String {
    answer.iter().map(|m| m.tag as char).collect()
}

fn statement(sql: &str) -> Vec<u8> {
    [parse("", sql), bind("", ""), execute("")].concat()
}

fn value(client: &mut RawClient, sql: &str) -> String {
    client.send(&query(sql));
    let answer = client.read_until_ready();
    let row = answer.iter().find(|m| m.tag == b'D').expect("a row");
    let len = i32::from_be_bytes(row.body[2..6].try_into().unwrap());
    if len < 0 {
        return "NULL".into();
    }
    String::from_utf8(row.body[6..6 + len as usize].to_vec()).unwrap()
}

#[test]
fn a_call_after_begin_in_one_batch_runs_in_that_transaction() {
    let (_cluster, proxy) = setup!(&[]);
    let (mut c, _) = RawClient::login(proxy.port(), "postgres", "postgres");
    c.send(&query(
        "CREATE TABLE src (id int PRIMARY KEY, v int); INSERT INTO src VALUES (1, 10)",
    ));
    c.read_until_ready();
    // BEGIN, the call, a write after it, one Sync: as pgjdbc sends with autocommit off.
    c.send(
        &[
            statement("BEGIN"),
            parse(
                "",
                "SELECT pgtrickle.create_stream_table('st', 'SELECT id, v FROM src', '1h', 'FULL')",
            ),
            bind("", ""),
            describe_portal(""),
            execute(""),
            statement("INSERT INTO src VALUES (2, 20)"),
            sync(),
        ]
        .concat(),
    );
    let answer = c.read_until_ready();
    assert_eq!(tags(&answer), "12C12TDC12CZ", "{answer:?}");
    assert_eq!(
        answer.last().unwrap().body,
        b"T",
        "still in the transaction"
    );
    // Nobody else sees it before COMMIT; ROLLBACK undoes the call.
    let (mut other, _) = RawClient::login(proxy.port(), "postgres", "postgres");
    assert_eq!(value(&mut other, "SELECT to_regclass('st') IS NULL"), "t");
    c.send(&query("ROLLBACK"));
    c.read_until_ready();
    assert_eq!(value(&mut c, "SELECT to_regclass('st') IS NULL"), "t");
    // And COMMIT keeps it, with the write after it.
    c.send(
        &[
            statement("BEGIN"),
            statement(
                "SELECT pgtrickle.create_stream_table('st', 'SELECT id, v FROM src', '1h', 'FULL')",
            ),
            statement("INSERT INTO src VALUES (3, 30)"),
            statement("COMMIT"),
            sync(),
        ]
        .concat(),
    );
    let answer = c.read_until_ready();
    assert_eq!(tags(&answer), "12C12DC12C12CZ", "{answer:?}");
    assert_eq!(answer.last().unwrap().body, b"I");
    c.send(&query("SELECT pgtrickle.refresh_stream_table('st')"));
    c.read_until_ready();
    assert_eq!(value(&mut c, "SELECT sum(v) FROM st"), "40");
}

#[test]
fn a_pipeline_of_statements_and_calls_keeps_its_order() {
    let (_cluster, proxy) = setup!(&[]);
    let (mut c, _) = RawClient::login(proxy.port(), "postgres", "postgres");
    // Several statements and calls in one batch, no transaction block: each call after the
    // statements before it (it reads the table they created).
    c.send(
        &[
            statement("CREATE TABLE src (id int PRIMARY KEY, v int)"),
            statement("INSERT INTO src VALUES (1, 1), (2, 2)"),
            statement(
                "SELECT pgtrickle.create_stream_table('st', 'SELECT sum(v) AS s FROM src', '1h', 'DIFFERENTIAL')",
            ),
            statement("INSERT INTO src VALUES (3, 3)"),
            statement("SELECT pgtrickle.refresh_stream_table('st')"),
            statement("SELECT s FROM st"),
            sync(),
        ]
        .concat(),
    );
    let answer = c.read_until_ready();
    assert_eq!(tags(&answer), "12C12C12DC12C12DC12DCZ", "{answer:?}");
    let last_row = answer.iter().rev().find(|m| m.tag == b'D').unwrap();
    assert_eq!(
        &last_row.body[6..],
        b"6",
        "the refresh saw the insert before it"
    );
    // The session goes on normally.
    assert_eq!(value(&mut c, "SELECT count(*) FROM src"), "3");
}

#[test]
fn an_error_before_a_call_skips_the_call_and_the_rest_to_sync() {
    let (_cluster, proxy) = setup!(&[]);
    let (mut c, _) = RawClient::login(proxy.port(), "postgres", "postgres");
    c.send(&query("CREATE TABLE src (id int PRIMARY KEY, v int)"));
    c.read_until_ready();
    c.send(
        &[
            statement("BEGIN"),
            statement("SELECT 1 / 0"),
            statement(
                "SELECT pgtrickle.create_stream_table('st', 'SELECT id FROM src', '1h', 'FULL')",
            ),
            statement("INSERT INTO src VALUES (1, 1)"),
            sync(),
        ]
        .concat(),
    );
    let answer = c.read_until_ready();
    // 1 / 0 fails at Bind (folded when planned).
    assert_eq!(tags(&answer), "12C1EZ", "{answer:?}");
    assert_eq!(answer.last().unwrap().body, b"E", "the transaction failed");
    c.send(&query("ROLLBACK"));
    c.read_until_ready();
    assert_eq!(value(&mut c, "SELECT to_regclass('st') IS NULL"), "t");
    assert_eq!(value(&mut c, "SELECT count(*) FROM src"), "0");
}

#[test]
fn a_failing_call_in_a_batch_skips_the_rest_to_sync() {
    let (_cluster, proxy) = setup!(&[]);
    let (mut c, _) = RawClient::login(proxy.port(), "postgres", "postgres");
    c.send(&query("CREATE TABLE src (id int PRIMARY KEY, v int)"));
    c.read_until_ready();
    c.send(
        &[
            statement("BEGIN"),
            statement("INSERT INTO src VALUES (1, 1)"),
            statement("SELECT pgtrickle.refresh_stream_table('no_such_table')"),
            statement("INSERT INTO src VALUES (2, 2)"),
            sync(),
        ]
        .concat(),
    );
    let answer = c.read_until_ready();
    assert_eq!(tags(&answer), "12C12C12EZ", "{answer:?}");
    let error = answer.iter().find(|m| m.tag == b'E').unwrap();
    assert_eq!(error.sqlstate().as_deref(), Some("42P01"));
    assert_eq!(answer.last().unwrap().body, b"E");
    c.send(&query("ROLLBACK"));
    c.read_until_ready();
    assert_eq!(value(&mut c, "SELECT count(*) FROM src"), "0");
}
