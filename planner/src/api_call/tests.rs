//! Unit tests of API call recognition and binding: every notation, literal form and error.

use std::time::Duration;

use super::*;

fn req(sql: &str) -> ApiRequest {
    parse_api_call(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|| panic!("{sql}: not recognised"))
        .request(&ApiLimits::default())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn err(sql: &str) -> PlanError {
    match parse_api_call(sql) {
        Err(e) => e,
        Ok(Some(c)) => c
            .request(&ApiLimits::default())
            .expect_err(&format!("{sql}: expected an error")),
        Ok(None) => panic!("{sql}: not recognised"),
    }
}

fn create(sql: &str) -> CreateStreamTable {
    match req(sql) {
        ApiRequest::Create(c) => c,
        other => panic!("{sql}: {other:?}"),
    }
}

fn st(name: &str) -> StName {
    StName {
        schema: None,
        name: name.into(),
    }
}

#[test]
fn create_with_defaults() {
    let c = create("SELECT pgtrickle.create_stream_table('t', 'SELECT 1')");
    assert_eq!(
        c,
        CreateStreamTable {
            kind: CreateKind::Create,
            name: st("t"),
            query: "SELECT 1".into(),
            schedule: Schedule::Calculated,
            refresh_mode: RefreshMode::Auto,
            initialize: true,
            cdc_mode: None,
            options: StOptions {
                append_only: Some(false),
                ..StOptions::default()
            },
        }
    );
}

#[test]
fn named_arrow_and_colon_equals_and_mixed() {
    let c = create(
        "select PGTRICKLE.Create_Stream_Table('s.t', query => $$SELECT a FROM x$$, \
         refresh_mode := 'differential', initialize => false, cdc_mode => 'WAL', \
         schedule => '1h30m')",
    );
    assert_eq!(
        c.name,
        StName {
            schema: Some("s".into()),
            name: "t".into()
        }
    );
    assert_eq!(c.query, "SELECT a FROM x");
    assert_eq!(c.refresh_mode, RefreshMode::Differential);
    assert!(!c.initialize);
    assert_eq!(c.cdc_mode, Some(CdcMode::Wal));
    assert_eq!(c.schedule, Schedule::Every(Duration::from_secs(5400)));
}

#[test]
fn quoted_identifiers_resolve_like_postgres() {
    let c = create("SELECT \"pgtrickle\".\"create_stream_table\"('t', 'SELECT 1')");
    assert_eq!(c.name, st("t"));
    // A quoted upper-case name is a different (unknown) function: the server says so.
    assert_eq!(
        parse_api_call("SELECT \"pgtrickle\".\"CREATE_STREAM_TABLE\"('t', 'q')").unwrap(),
        None
    );
    // Quoted schema in another case is another schema: not ours.
    assert_eq!(
        parse_api_call("SELECT \"PGTRICKLE\".create_stream_table('t','q')").unwrap(),
        None
    );
    // Named argument names fold too; quoted keeps case.
    let c = create("SELECT pgtrickle.create_stream_table(NAME => 't', \"query\" => 'SELECT 1')");
    assert_eq!(c.query, "SELECT 1");
    let e = err("SELECT pgtrickle.create_stream_table(name => 't', \"Query\" => 'SELECT 1')");
    assert_eq!(e.sqlstate(), "42883");
    assert!(e.message().contains("\"Query\""), "{e}");
}

#[test]
fn every_string_literal_form() {
    let q = |lit: &str| create(&format!("SELECT pgtrickle.create_stream_table('t', {lit})")).query;
    assert_eq!(q("'SELECT ''x'''"), "SELECT 'x'");
    assert_eq!(q("E'SELECT \\'x\\'\\n'"), "SELECT 'x'\n");
    assert_eq!(q("e'a\\tb'"), "a\tb");
    assert_eq!(q("$$SELECT 'x' $ y$$"), "SELECT 'x' $ y");
    assert_eq!(q("$q$SELECT $$x$$$q$"), "SELECT $$x$$");
    assert_eq!(q("'SELECT 1'::text"), "SELECT 1");
    assert_eq!(q("CAST('SELECT 2' AS text)"), "SELECT 2");
}

#[test]
fn call_in_from_and_aliases() {
    let c = parse_api_call("SELECT * FROM pgtrickle.pgt_status()")
        .unwrap()
        .unwrap();
    assert_eq!(c.function(), ApiFunction::PgtStatus);
    assert_eq!(c.output(), &CallOutput::Table);
    assert_eq!(
        c.request(&ApiLimits::default()).unwrap(),
        ApiRequest::Status
    );
    let c = parse_api_call("select * from pgtrickle.explain_st('t') e;")
        .unwrap()
        .unwrap();
    assert_eq!(
        c.request(&ApiLimits::default()).unwrap(),
        ApiRequest::Explain { name: st("t") }
    );
    let c = parse_api_call("SELECT pgtrickle.refresh_stream_table('t') AS r")
        .unwrap()
        .unwrap();
    assert_eq!(c.output(), &CallOutput::Scalar { column: "r".into() });
    let c = parse_api_call("SELECT pgtrickle.refresh_stream_table('t')")
        .unwrap()
        .unwrap();
    assert_eq!(
        c.output(),
        &CallOutput::Scalar {
            column: "refresh_stream_table".into()
        }
    );
    assert_eq!(
        req("SELECT * FROM pgtrickle.get_refresh_history('t', max_rows => 5)"),
        ApiRequest::RefreshHistory {
            name: st("t"),
            max_rows: 5
        }
    );
    assert_eq!(
        req("SELECT * FROM pgtrickle.get_refresh_history('t')"),
        ApiRequest::RefreshHistory {
            name: st("t"),
            max_rows: 20
        }
    );
}

#[test]
fn other_functions() {
    assert_eq!(
        req("SELECT pgtrickle.drop_stream_table('t')"),
        ApiRequest::Drop {
            name: st("t"),
            cascade: false
        }
    );
    assert_eq!(
        req("SELECT pgtrickle.drop_stream_table('t', cascade => true)"),
        ApiRequest::Drop {
            name: st("t"),
            cascade: true
        }
    );
    assert_eq!(
        req("SELECT pgtrickle.drop_stream_table('t', 'on')"),
        ApiRequest::Drop {
            name: st("t"),
            cascade: true
        }
    );
    assert_eq!(
        req("SELECT pgtrickle.resume_stream_table('T')"),
        ApiRequest::Resume { name: st("t") }
    );
    assert_eq!(
        req("SELECT pgtrickle.alter_stream_table('t', status => 'suspended')"),
        ApiRequest::Alter(AlterStreamTable {
            name: st("t"),
            query: None,
            schedule: None,
            refresh_mode: None,
            status: Some(StStatus::Suspended),
            cdc_mode: None,
            options: StOptions::default(),
        })
    );
    assert_eq!(
        // pg_trickle's order: cdc_mode is the eighth parameter.
        req("SELECT pgtrickle.alter_stream_table('t', NULL, '@daily', NULL, NULL, NULL, NULL, 'trigger')"),
        ApiRequest::Alter(AlterStreamTable {
            name: st("t"),
            query: None,
            schedule: Some(Schedule::Cron("@daily".into())),
            refresh_mode: None,
            status: None,
            cdc_mode: Some(CdcMode::Trigger),
            options: StOptions::default(),
        })
    );
    match req("SELECT pgtrickle.create_stream_table_if_not_exists('t', 'SELECT 1')") {
        ApiRequest::Create(c) => assert_eq!(c.kind, CreateKind::IfNotExists),
        o => panic!("{o:?}"),
    }
    match req("SELECT pgtrickle.create_or_replace_stream_table('t', 'SELECT 1', '5m')") {
        ApiRequest::Create(c) => {
            assert_eq!(c.kind, CreateKind::OrReplace);
            assert_eq!(c.schedule, Schedule::Every(Duration::from_secs(300)));
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn not_api_calls() {
    for sql in [
        "SELECT 1",
        "SELECT * FROM pgtrickle.pgt_stream_tables",
        "SELECT name FROM pgtrickle.pgt_stream_tables WHERE name = 'x'",
        "DO $$ BEGIN PERFORM pgtrickle.pgt_status(); END $$",
        "IMPORT FOREIGN SCHEMA pgtrickle FROM SERVER s INTO x",
        "SELECT pg_trickle.create_stream_table('a','b')",
        "SELECT 'pgtrickle.create_stream_table(1)'",
        "this is not sql pgtrickle",
        // Other pgtrickle functions (monitoring, read functions in any position) are SQL
        // functions in the database: the server answers them.
        "SELECT pgtrickle.no_such_fn()",
        "SELECT pgtrickle.pgt_status(), 1",
        "SELECT name FROM pgtrickle.pgt_status()",
        "SELECT * FROM pgtrickle.health_check() WHERE severity <> 'OK'",
    ] {
        assert_eq!(parse_api_call(sql), Ok(None), "{sql}");
    }
}

#[test]
fn parameters_bind_later() {
    let c = parse_api_call(
        "SELECT pgtrickle.create_stream_table($1, $2, schedule => $3, initialize => $4)",
    )
    .unwrap()
    .unwrap();
    assert_eq!(c.params(), vec![1, 2, 3, 4]);
    assert_eq!(c.param_type(4), ParamType::Bool);
    assert_eq!(c.param_type(1), ParamType::Text);
    let bound = c
        .bind(
            &[
                Some("t".into()),
                Some("SELECT 1".into()),
                Some("30s".into()),
                Some("f".into()),
            ],
            &ApiLimits::default(),
        )
        .unwrap();
    match bound {
        ApiRequest::Create(c) => {
            assert_eq!(c.schedule, Schedule::Every(Duration::from_secs(30)));
            assert!(!c.initialize);
        }
        o => panic!("{o:?}"),
    }
    // A bound value is validated like a literal.
    let e = c
        .bind(
            &[Some("t".into()), Some("q".into()), Some("1x".into()), None],
            &ApiLimits::default(),
        )
        .unwrap_err();
    assert_eq!(e.sqlstate(), "22023");
    let e = c
        .bind(
            &[
                Some("t".into()),
                Some("q".into()),
                None,
                Some("maybe".into()),
            ],
            &ApiLimits::default(),
        )
        .unwrap_err();
    assert_eq!(e.sqlstate(), "22P02");
    assert!(e.message().contains("initialize"), "{e}");
    // NULL for the required name.
    let e = c
        .bind(&[None, Some("q".into()), None, None], &ApiLimits::default())
        .unwrap_err();
    assert_eq!(e.sqlstate(), "22004");
    assert!(e.message().contains("\"name\""), "{e}");
    // Too few values.
    let e = c
        .bind(&[Some("t".into())], &ApiLimits::default())
        .unwrap_err();
    assert_eq!(e.sqlstate(), "08P01");
    // Same parameter used twice.
    let c = parse_api_call("SELECT * FROM pgtrickle.explain_st(name => $2)")
        .unwrap()
        .unwrap();
    assert_eq!(c.params(), vec![2]);
}

#[test]
fn errors_with_sqlstates() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "SELECT pgtrickle.create_stream_table('t')",
            "42883",
            "\"query\"",
        ),
        (
            "SELECT pgtrickle.create_stream_table(query => 'q')",
            "42883",
            "\"name\"",
        ),
        (
            "SELECT pgtrickle.create_stream_table('t', 'q', bogus => 1)",
            "42883",
            "\"bogus\"",
        ),
        (
            "SELECT pgtrickle.create_stream_table('t', 'q', name => 'u')",
            "42601",
            "\"name\" used more than once",
        ),
        (
            "SELECT pgtrickle.create_stream_table(name => 't', 'q')",
            "42601",
            "positional argument cannot follow named argument",
        ),
        (
            "SELECT pgtrickle.drop_stream_table('t', false, 3)",
            "42883",
            "at most 2 arguments",
        ),
        (
            "SELECT pgtrickle.create_stream_table('t', 'q', '1x')",
            "22023",
            "\"schedule\"",
        ),
        (
            "SELECT pgtrickle.create_stream_table('t', 'q', refresh_mode => 'fast')",
            "22023",
            "'FULL'",
        ),
        (
            "SELECT pgtrickle.create_stream_table('t', 'q', cdc_mode => 'x')",
            "22023",
            "'trigger'",
        ),
        (
            "SELECT pgtrickle.alter_stream_table('t', status => 'x')",
            "22023",
            "'ACTIVE'",
        ),
        (
            "SELECT pgtrickle.create_stream_table('t', 'q', initialize => 'x')",
            "22P02",
            "initialize",
        ),
        (
            "SELECT pgtrickle.create_stream_table('t', 'q', initialize => 1)",
            "42883",
            "boolean",
        ),
        (
            "SELECT pgtrickle.create_stream_table('t', 'q', schedule => true)",
            "42883",
            "text",
        ),
        (
            "SELECT pgtrickle.get_refresh_history('t', 'many')",
            "22P02",
            "max_rows",
        ),
        (
            "SELECT pgtrickle.get_refresh_history('t', 1.5)",
            "42883",
            "1.5",
        ),
        (
            "SELECT pgtrickle.create_stream_table(NULL, 'q')",
            "22004",
            "\"name\"",
        ),
        (
            "SELECT pgtrickle.create_stream_table('t', NULL)",
            "22004",
            "\"query\"",
        ),
        (
            "SELECT pgtrickle.create_stream_table('a.b.c', 'q')",
            "22023",
            "\"name\"",
        ),
        (
            "SELECT pgtrickle.create_stream_table('t', 'q', '0s')",
            "22023",
            "minimum",
        ),
        (
            "SELECT pgtrickle.create_stream_table('t', 'q', '61 * * * *')",
            "22023",
            "cron",
        ),
        (
            "SELECT pgtrickle.create_stream_table('t', lower('q'))",
            "0A000",
            "literals",
        ),
        (
            "SELECT 1 + pgtrickle.refresh_stream_table('t')",
            "0A000",
            "on its own",
        ),
        (
            "SELECT pgtrickle.refresh_stream_table('t'); SELECT 1",
            "0A000",
            "statement of its own",
        ),
    ];
    for (sql, state, fragment) in cases {
        let e = err(sql);
        assert_eq!(e.sqlstate(), *state, "{sql}: {e}");
        assert!(
            e.message().contains(fragment),
            "{sql}: {e} lacks {fragment}"
        );
    }
}

#[test]
fn min_schedule_is_configurable() {
    let c = parse_api_call("SELECT pgtrickle.create_stream_table('t', 'q', '30s')")
        .unwrap()
        .unwrap();
    let limits = ApiLimits {
        min_schedule: Duration::from_secs(60),
    };
    let e = c.request(&limits).unwrap_err();
    assert_eq!(e.sqlstate(), "22023");
    assert!(e.message().contains("below the minimum of 1m"), "{e}");
}

#[test]
fn seed_examples_parse() {
    let sql = "SELECT pgtrickle.create_stream_table(\n  name => 'product_summary',\n  query => $$\n    SELECT rp.category, COUNT(*) AS product_count, AVG(rp.price) AS avg_price, MIN(rp.price) AS min_price\n    FROM remote_products rp GROUP BY rp.category\n  $$,\n  schedule => '30s',\n  cdc_mode => 'trigger'   -- only trigger mode works with FDW\n);";
    let c = create(sql);
    assert_eq!(c.name, st("product_summary"));
    assert_eq!(c.cdc_mode, Some(CdcMode::Trigger));
    assert!(c.query.contains("GROUP BY rp.category"));
    let c = create(
        "SELECT pgtrickle.create_stream_table(name => 'x', query => $$ SELECT 1 $$, \
         schedule => '5s', refresh_mode => 'DIFFERENTIAL');",
    );
    assert_eq!(c.refresh_mode, RefreshMode::Differential);
}

#[test]
fn pg_trickle_parameters_and_functions() {
    // Numeric literals for float8 parameters, integer ones too.
    let c = create(
        "SELECT pgtrickle.create_stream_table('t', 'q', max_delta_fraction => 0.25, \
         diamond_consistency => 'atomic', pooler_compatibility_mode => true)",
    );
    assert_eq!(c.options.max_delta_fraction, Some(0.25));
    assert_eq!(c.options.notices.len(), 2, "{:?}", c.options.notices);
    let c = create("SELECT pgtrickle.create_stream_table('t', 'q', max_delta_fraction => 1)");
    assert_eq!(c.options.max_delta_fraction, Some(1.0));
    let c = create("SELECT pgtrickle.create_stream_table_fast_append_only('t', 'q')");
    assert_eq!(c.options.append_only, Some(true));
    assert_eq!(c.refresh_mode, RefreshMode::Differential);
    let c = create("SELECT pgtrickle.create_stream_table_batch('t', 'q')");
    assert_eq!(c.schedule, Schedule::Every(Duration::from_secs(300)));
    match req("SELECT pgtrickle.alter_stream_table('t', post_refresh_action => 'analyze')") {
        ApiRequest::Alter(a) => assert_eq!(
            a.options.post_refresh_action,
            Some(PostRefreshAction::Analyze)
        ),
        o => panic!("{o:?}"),
    }
    assert_eq!(
        req("SELECT pgtrickle.pause_stream_table('t')"),
        ApiRequest::Pause { name: st("t") }
    );
    for (sql, state) in [
        (
            "SELECT pgtrickle.create_stream_table('t', 'q', partition_by => 'a')",
            "0A000",
        ),
        (
            "SELECT pgtrickle.alter_stream_table('t', fuse => 'on')",
            "0A000",
        ),
        (
            "SELECT pgtrickle.alter_stream_table('t', post_refresh_action => 'reindex')",
            "0A000",
        ),
        (
            "SELECT pgtrickle.create_stream_table('t', 'q', max_delta_fraction => 2)",
            "22023",
        ),
        (
            "SELECT pgtrickle.alter_stream_table('t', tier => 'tepid')",
            "22023",
        ),
        (
            "SELECT pgtrickle.create_stream_table('t', 'q', refresh_mode => 'FULL', \
             append_only => true)",
            "22023",
        ),
    ] {
        assert_eq!(err(sql).sqlstate(), state, "{sql}");
    }
}

#[test]
fn calls_over_the_rows_of_a_query() {
    let call = parse_api_call(
        "SELECT pgtrickle.drop_stream_table(pgt_name) FROM pgtrickle.pgt_stream_tables \
         WHERE pgt_name LIKE 'a%' ORDER BY pgt_id",
    )
    .unwrap()
    .unwrap();
    let ApiRequest::ForEachRow(rows) = call.request(&ApiLimits::default()).unwrap() else {
        panic!("not over rows");
    };
    assert_eq!(
        rows.query,
        "SELECT (pgt_name)::TEXT FROM pgtrickle.pgt_stream_tables WHERE pgt_name LIKE 'a%' \
         ORDER BY pgt_id"
    );
    assert_eq!(rows.function(), ApiFunction::DropStreamTable);
    assert_eq!(
        rows.request(&[Some("a1".into())]).unwrap(),
        ApiRequest::Drop {
            name: st("a1"),
            cascade: false
        }
    );
    // A NULL name in a row is the call's error.
    assert_eq!(rows.request(&[None]).unwrap_err().sqlstate(), "22004");
}
