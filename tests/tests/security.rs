//! The proxy's security boundary, tested as a hostile ordinary role: nothing a role does
//! through a stream table (functions in its query, triggers on its storage, objects on anyone's
//! search_path, the catalog, the change schema) gives it more than it has directly, whether the
//! refresh is the scheduler's (on the proxy's own connection, a superuser's or not), the
//! owner's, or a superuser's by hand.

use std::time::Duration;

use pgtrickle_e2e::{
    await_catalog, connect, count, is_superuser, proxy_bin, rows_differing, setup, Cluster,
    ProxyProcess,
};
use tokio_postgres::Client;

/// Functions an attacker puts in a query or a trigger: each tries, when it runs on a session
/// whose real user is someone else, to leave the owner's identity and make `bob` a superuser
/// (or, with a non-superuser proxy, to read `alice.secret` as the proxy's role could).
const ESCAPES: &[(&str, &str)] = &[
    ("esc_reset", "RESET ROLE"),
    (
        "esc_config",
        "PERFORM pg_catalog.set_config('role', 'none', false)",
    ),
    ("esc_session", "SET SESSION AUTHORIZATION DEFAULT"),
];

fn escape_function(name: &str, how: &str, returns: &str) -> String {
    let (ret, result) = if returns == "trigger" {
        ("trigger", "NULL")
    } else {
        ("bool", "true")
    };
    format!(
        "CREATE FUNCTION bob.{name}() RETURNS {ret} LANGUAGE plpgsql AS $f$ BEGIN \
           IF session_user <> current_user THEN \
             {how}; \
             BEGIN ALTER ROLE bob SUPERUSER; EXCEPTION WHEN OTHERS THEN NULL; END; \
             BEGIN INSERT INTO bob.loot SELECT secret FROM alice.secret; \
             EXCEPTION WHEN OTHERS THEN NULL; END; \
           END IF; RETURN {result}; END $f$"
    )
}

/// Roles `bob` (the attacker, with a schema of its own) and `alice` (with a secret table bob
/// may not read).
async fn roles(admin: &Client) {
    admin
        .batch_execute(
            "CREATE ROLE bob LOGIN; CREATE SCHEMA bob AUTHORIZATION bob; \
             CREATE ROLE alice LOGIN; CREATE SCHEMA alice AUTHORIZATION alice; \
             CREATE TABLE alice.secret (secret text); ALTER TABLE alice.secret OWNER TO alice; \
             INSERT INTO alice.secret VALUES ('the secret'); \
             CREATE TABLE bob.loot (loot text); ALTER TABLE bob.loot OWNER TO bob",
        )
        .await
        .unwrap();
}

/// Bob's stream tables: for each escape, one whose query calls it (FULL and DIFFERENTIAL) and
/// one whose storage has a trigger (and a deferred constraint trigger) calling it.
async fn hostile_stream_tables(bob: &Client) -> Vec<String> {
    bob.batch_execute(
        "CREATE TABLE bob.t (id int PRIMARY KEY, v int); INSERT INTO bob.t VALUES (1, 1), (2, 2)",
    )
    .await
    .unwrap();
    let mut names = Vec::new();
    for (f, how) in ESCAPES {
        bob.batch_execute(&escape_function(f, how, "bool"))
            .await
            .unwrap();
        bob.batch_execute(&escape_function(&format!("{f}_trg"), how, "trigger"))
            .await
            .unwrap();
        for mode in ["FULL", "DIFFERENTIAL"] {
            let st = format!("bob.q_{f}_{}", mode.to_lowercase());
            bob.batch_execute(&format!(
                "SELECT pgtrickle.create_stream_table('{st}', \
                 'SELECT id, v FROM bob.t WHERE bob.{f}()', '1s', '{mode}')"
            ))
            .await
            .unwrap_or_else(|e| panic!("create {st}: {e:?}"));
            names.push(st);
        }
        let st = format!("bob.trg_{f}");
        bob.batch_execute(&format!(
            "SELECT pgtrickle.create_stream_table('{st}', 'SELECT id, v FROM bob.t', '1s', \
             'DIFFERENTIAL'); \
             CREATE TRIGGER esc AFTER INSERT OR UPDATE OR DELETE ON {st} \
               FOR EACH STATEMENT EXECUTE FUNCTION bob.{f}_trg()"
        ))
        .await
        .unwrap();
        names.push(st);
    }
    bob.batch_execute(
        "SELECT pgtrickle.create_stream_table('bob.deferred', 'SELECT id, v FROM bob.t', '1s', \
         'DIFFERENTIAL'); \
         CREATE CONSTRAINT TRIGGER esc AFTER INSERT OR UPDATE OR DELETE ON bob.deferred \
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bob.esc_reset_trg()",
    )
    .await
    .unwrap();
    names.push("bob.deferred".into());
    names
}

/// Writes to bob's source, lets the scheduler refresh for a while, and has a superuser refresh
/// every stream table by hand; checks that bob gained nothing and that the escapes were
/// refused by PostgreSQL.
async fn attack(admin: &Client, bob: &Client, names: &[String], proxy: &ProxyProcess) {
    for round in 0..3 {
        bob.batch_execute(&format!(
            "UPDATE bob.t SET v = v + 1; INSERT INTO bob.t VALUES ({}, 0)",
            10 + round
        ))
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    for st in names {
        let err = admin
            .batch_execute(&format!(
                "UPDATE bob.t SET v = v + 1; SELECT pgtrickle.refresh_stream_table('{st}')"
            ))
            .await;
        let err = err.expect_err(&format!("a superuser's refresh of {st} ran the escape"));
        let text = format!("{err:?}");
        assert!(
            text.contains("security-restricted operation") || text.contains("SUSPENDED"),
            "{st}: {text}"
        );
    }
    assert!(
        !is_superuser(admin, "bob").await,
        "bob became a superuser\n{}",
        proxy.log()
    );
    assert_eq!(count(admin, "SELECT count(*) FROM bob.loot").await, 0);
    // The scheduler tried too, and recorded PostgreSQL's refusal.
    let refused = count(
        admin,
        "SELECT count(*) FROM pgtrickle.pgt_refresh_history WHERE status = 'FAILED' \
         AND error LIKE '%security-restricted operation%'",
    )
    .await;
    assert!(refused > 0, "no scheduled refresh ran the escapes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_the_owner_controls_cannot_leave_its_identity_with_a_superuser_proxy() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let admin = connect(&proxy.conninfo("postgres", "postgres")).await;
    await_catalog(&admin, &proxy).await;
    roles(&admin).await;
    let bob = connect(&proxy.conninfo("bob", "postgres")).await;
    let names = hostile_stream_tables(&bob).await;
    attack(&admin, &bob, &names, &proxy).await;
    // The owner's own refreshes work (its code is harmless on its own session), once the
    // stream table the scheduler suspended is active again (a SUSPENDED one is not refreshed).
    bob.batch_execute(
        "SELECT pgtrickle.alter_stream_table('bob.q_esc_reset_full', status => 'ACTIVE')",
    )
    .await
    .unwrap();
    bob.batch_execute("SELECT pgtrickle.refresh_stream_table('bob.q_esc_reset_full')")
        .await
        .unwrap();
}

/// A proxy whose role is as docs/SECURITY.md recommends: no superuser, CREATE on the
/// database, and membership in the roles that own stream tables (bob and alice, see [`roles`],
/// which it creates).
async fn ordinary_proxy(cluster: &Cluster) -> ProxyProcess {
    let setup = connect(&cluster.conninfo("postgres", "postgres")).await;
    setup
        .batch_execute(
            "CREATE ROLE pgtrickle_proxy LOGIN; \
             GRANT CREATE ON DATABASE postgres TO pgtrickle_proxy",
        )
        .await
        .unwrap();
    roles(&setup).await;
    setup
        .batch_execute("GRANT bob TO pgtrickle_proxy; GRANT alice TO pgtrickle_proxy")
        .await
        .unwrap();
    let upstream = format!(
        "{}?sslmode=disable",
        cluster.url("pgtrickle_proxy", "postgres")
    );
    ProxyProcess::start(proxy_bin!(), &upstream, &["--scheduler-interval-ms", "200"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_the_owner_controls_cannot_leave_its_identity_with_an_ordinary_proxy_role() {
    let cluster = Cluster::start();
    let proxy = ordinary_proxy(&cluster).await;
    let admin = connect(&proxy.conninfo("postgres", "postgres")).await;
    await_catalog(&admin, &proxy).await;
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgtrickle' \
             AND nspowner = 'pgtrickle_proxy'::regrole"
        )
        .await,
        1
    );
    let bob = connect(&proxy.conninfo("bob", "postgres")).await;
    let names = hostile_stream_tables(&bob).await;
    attack(&admin, &bob, &names, &proxy).await;
    // A source whose owner the proxy's role is not a member of: a clear refusal.
    admin
        .batch_execute("CREATE TABLE public.foreign_owned (x int); GRANT SELECT ON public.foreign_owned TO bob")
        .await
        .unwrap();
    let e = bob
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('bob.fo', 'SELECT x FROM public.foreign_owned', \
             '1h', 'DIFFERENTIAL')",
        )
        .await
        .expect_err("capture on a table the proxy's role may not trigger");
    let db = e.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "42501", "{db:?}");
    assert!(db.message().contains("proxy's role"), "{db:?}");
    assert!(
        db.hint().unwrap_or_default().contains("SECURITY.md"),
        "{db:?}"
    );
    // Ordinary stream tables work under an ordinary proxy role.
    bob.batch_execute(
        "CREATE TABLE bob.plain (k int, v int); INSERT INTO bob.plain VALUES (1, 1), (1, 2); \
         SELECT pgtrickle.create_stream_table('bob.sums', \
           'SELECT k, sum(v) AS s FROM bob.plain GROUP BY k', '1s', 'DIFFERENTIAL'); \
         INSERT INTO bob.plain VALUES (1, 3), (2, 5); \
         SELECT pgtrickle.refresh_stream_table('bob.sums')",
    )
    .await
    .unwrap();
    assert_eq!(count(&bob, "SELECT sum(s)::int8 FROM bob.sums").await, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_created_later_on_the_search_path_are_never_run_by_refreshes() {
    let (_cluster, proxy) = setup!(&["--scheduler-interval-ms", "200"]);
    let admin = connect(&proxy.conninfo("postgres", "postgres")).await;
    await_catalog(&admin, &proxy).await;
    roles(&admin).await;
    search_path_attack(&proxy, &admin, "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_created_later_on_the_search_path_are_never_run_with_an_ordinary_proxy_role() {
    let cluster = Cluster::start();
    let proxy = ordinary_proxy(&cluster).await;
    let admin = connect(&proxy.conninfo("postgres", "postgres")).await;
    await_catalog(&admin, &proxy).await;
    search_path_attack(&proxy, &admin, "alice").await;
}

/// `victim` creates stream tables over `public.people`; bob then plants exact-type overloads
/// on public; the victim's and the scheduler's refreshes must never call them.
async fn search_path_attack(proxy: &ProxyProcess, admin: &Client, victim_role: &str) {
    // PUBLIC's CREATE on public: the default before PostgreSQL 15, common after upgrades.
    admin
        .batch_execute(
            "GRANT CREATE ON SCHEMA public TO PUBLIC; \
             CREATE TABLE public.people (id int, name varchar(20)); \
             INSERT INTO public.people VALUES (1, 'Ann'), (2, 'BOB'), (2, 'BOB'); \
             CREATE TABLE bob.calls (who text); ALTER TABLE bob.calls OWNER TO bob; \
             GRANT INSERT ON bob.calls TO PUBLIC; GRANT SELECT ON public.people TO PUBLIC",
        )
        .await
        .unwrap();
    admin
        .batch_execute(&format!("ALTER TABLE public.people OWNER TO {victim_role}"))
        .await
        .unwrap();
    // A bag (no key: rows are hashed) and a grouped stream table of the victim's, created
    // before bob's functions exist.
    let victim = connect(&proxy.conninfo(victim_role, "postgres")).await;
    victim
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('public.lowered', \
               'SELECT lower(name) AS n FROM people', '1s', 'DIFFERENTIAL'); \
             SELECT pgtrickle.create_stream_table('public.per_name', \
               'SELECT lower(name) AS n, count(*) AS c FROM people GROUP BY lower(name)', \
               '1s', 'DIFFERENTIAL')",
        )
        .await
        .unwrap();
    let bob = connect(&proxy.conninfo("bob", "postgres")).await;
    // Exact-type matches beat pg_catalog's candidates that need a cast (int4 -> int8,
    // varchar -> text).
    for (signature, returns, body) in [
        (
            "hash_record_extended(record, integer)",
            "bigint",
            "SELECT 0::bigint",
        ),
        ("lower(varchar)", "text", "SELECT 'pwned'::text"),
    ] {
        bob.batch_execute(&format!(
            "CREATE FUNCTION public.{signature} RETURNS {returns} LANGUAGE plpgsql AS $f$ \
             BEGIN INSERT INTO bob.calls VALUES (current_user); \
             BEGIN ALTER ROLE bob SUPERUSER; EXCEPTION WHEN OTHERS THEN NULL; END; \
             RETURN ({body}); END $f$"
        ))
        .await
        .unwrap();
    }
    admin
        .batch_execute(
            "INSERT INTO people VALUES (3, 'Cid'), (4, 'DEE'); DELETE FROM people WHERE id = 1",
        )
        .await
        .unwrap();
    victim
        .batch_execute(
            "SELECT pgtrickle.refresh_stream_table('public.lowered'); \
             SELECT pgtrickle.refresh_stream_table('public.per_name')",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(count(admin, "SELECT count(*) FROM bob.calls").await, 0);
    assert!(!is_superuser(admin, "bob").await);
    for (st, cols, query) in [
        (
            "lowered",
            "n",
            "SELECT pg_catalog.lower(name::text) AS n FROM people",
        ),
        (
            "per_name",
            "n, c",
            "SELECT pg_catalog.lower(name::text) AS n, count(*) AS c FROM people GROUP BY 1",
        ),
    ] {
        assert_eq!(
            rows_differing(admin, st, cols, query).await,
            0,
            "{st} differs from its query"
        );
    }
    // What the catalog keeps is the query as PostgreSQL resolved it: qualified.
    let resolved: String = admin
        .query_one(
            "SELECT resolved_query FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'lowered'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(resolved.contains("public.people"), "{resolved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_and_the_change_buffers_are_the_proxys_alone() {
    let (cluster, proxy) = setup!(&[]);
    let admin = connect(&proxy.conninfo("postgres", "postgres")).await;
    await_catalog(&admin, &proxy).await;
    roles(&admin).await;
    let secret_oid: u32 = admin
        .query_one("SELECT 'alice.secret'::regclass::oid", &[])
        .await
        .unwrap()
        .get(0);
    // Bob, directly on the server (no proxy to stop him).
    let bob = connect(&cluster.conninfo("bob", "postgres")).await;
    let denied = |r: Result<(), tokio_postgres::Error>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{what}: {e:?}");
    };
    denied(
        bob.batch_execute(&format!(
            "CREATE TABLE pgtrickle_changes.changes_{secret_oid} (secret text, \
             __pgt_weight int, __pgt_xid xid8, __pgt_truncate bool)"
        ))
        .await,
        "planting a change buffer",
    );
    denied(
        bob.batch_execute(
            "CREATE FUNCTION pgtrickle_changes.capture_1_ins() RETURNS trigger \
             LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
        )
        .await,
        "planting a capture function",
    );
    denied(
        bob.batch_execute(
            "INSERT INTO pgtrickle.pgt_dependencies VALUES (1, 1, 'Table', 'alice', 'secret')",
        )
        .await,
        "forging a dependency",
    );
    denied(
        bob.batch_execute("UPDATE pgtrickle.pgt_stream_tables SET full_refresh = '{}'")
            .await,
        "rewriting refresh SQL",
    );
    denied(
        bob.batch_execute("SELECT * FROM pgtrickle.__pgt_engine('SELECT 1', false, 1, 'x')")
            .await,
        "calling the engine's function",
    );
    denied(
        bob.batch_execute("SELECT * FROM pgtrickle.pgt_engine_key")
            .await,
        "reading the engine's key",
    );
    // A superuser's stream table over the secret: its buffer is the proxy's, closed to bob.
    admin
        .batch_execute(
            "SELECT pgtrickle.create_stream_table('public.secrets', \
             'SELECT secret FROM alice.secret', '1h', 'DIFFERENTIAL'); \
             INSERT INTO alice.secret VALUES ('another secret')",
        )
        .await
        .unwrap();
    assert_eq!(
        count(
            &admin,
            &format!(
                "SELECT count(*) FROM pg_class WHERE oid = 'pgtrickle_changes.changes_{secret_oid}'::regclass \
                 AND relowner = 'postgres'::regrole"
            ),
        )
        .await,
        1
    );
    denied(
        bob.batch_execute(&format!(
            "SELECT * FROM pgtrickle_changes.changes_{secret_oid}"
        ))
        .await,
        "reading the buffer",
    );
    admin
        .batch_execute("SELECT pgtrickle.refresh_stream_table('public.secrets')")
        .await
        .unwrap();
    assert_eq!(
        count(&admin, "SELECT count(*) FROM public.secrets").await,
        2
    );
}

/// The statements the proxy signs: a signature is bound to the backend, the nonce and the
/// text, and each nonce works once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_statements_cannot_be_replayed_moved_or_altered() {
    let (cluster, proxy) = setup!(&[]);
    let admin = connect(&proxy.conninfo("postgres", "postgres")).await;
    await_catalog(&admin, &proxy).await;
    // Only a superuser can read the key: the test signs with it as the proxy would.
    let ipad: Vec<u8> = admin
        .query_one("SELECT ipad FROM pgtrickle.pgt_engine_key", &[])
        .await
        .unwrap()
        .get(0);
    let key: Vec<u8> = ipad.iter().map(|b| b ^ 0x36).collect();
    admin.batch_execute("CREATE ROLE bob LOGIN").await.unwrap();
    let bob = connect(&cluster.conninfo("bob", "postgres")).await;
    let bob_pid: i32 = bob
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let sign = |pid: i32, nonce: u64, sql: &str| {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        let mut ctx = ring::hmac::Context::with_key(&k);
        ctx.update(format!("{pid}:{nonce}:true:").as_bytes());
        ctx.update(sql.as_bytes());
        let tag = ctx.sign();
        tag.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let call = |nonce: u64, sql: &str, mac: &str| {
        format!(
            "SELECT * FROM pgtrickle.__pgt_engine('{}', true, {nonce}, '{mac}')",
            sql.replace('\'', "''")
        )
    };
    let q = "SELECT ARRAY[current_user::text]";
    let mac = sign(bob_pid, 100, q);
    let row = bob.query_one(&call(100, q, &mac), &[]).await.unwrap();
    let who: Vec<String> = row.get(0);
    assert_eq!(
        who,
        vec!["postgres".to_string()],
        "signed statements run as the engine role"
    );
    for (what, sql, nonce, mac) in [
        ("replayed", q, 100, mac.clone()),
        ("an older nonce", q, 99, sign(bob_pid, 99, q)),
        ("altered", "SELECT ARRAY['x']", 101, mac.clone()),
        (
            "signed for another backend",
            q,
            102,
            sign(bob_pid + 1, 102, q),
        ),
    ] {
        let e = bob
            .query_one(&call(nonce, sql, &mac), &[])
            .await
            .expect_err(what);
        assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{what}: {e:?}");
    }
    assert!(bob
        .query_one(&call(103, q, &sign(bob_pid, 103, q)), &[])
        .await
        .is_ok());
}
