//! Shared harness for tests that run generated SQL on a real PostgreSQL: source tables with
//! change capture into delta tables (statement-level AFTER triggers with transition tables, the
//! way the engine captures changes), planning against the live catalog, randomised write
//! batches, and the bag-equality oracle (EXCEPT ALL both ways).

#![allow(dead_code)]

pub mod aggregates;
pub mod oracle;
pub mod scenarios;

use std::collections::HashMap;

use pgtrickle_planner::{
    plan_stream_table, referenced_relations, ColumnDef, PlanInput, RefreshMode, RelationKind,
    RelationRef, SourceRelation, StName, StreamPlan,
};
use pgtrickle_test_support::Cluster;
use postgres::{Client, NoTls};
use rand::rngs::StdRng;
use rand::Rng;

/// Connects to the cluster as the superuser.
pub fn connect(cluster: &Cluster) -> Client {
    Client::connect(&cluster.conninfo("postgres", "postgres"), NoTls).expect("connect")
}

/// Columns of every test source: `id int, k int, v int, b boolean, s text, n numeric(8,2)`.
pub const SOURCE_COLUMNS: &str = "id int, k int, v int, b boolean, s text, n numeric(8,2)";

/// Creates schema `schema` with source tables `names`, each with indexes on id and k and a
/// delta table `<name>__delta` filled by triggers.
pub fn create_sources(c: &mut Client, schema: &str, names: &[&str]) {
    let mut sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};");
    for t in names {
        sql.push_str(&format!(
            "CREATE TABLE {schema}.{t} ({SOURCE_COLUMNS});
             CREATE INDEX ON {schema}.{t} (id); CREATE INDEX ON {schema}.{t} (k);
             CREATE TABLE {schema}.{t}__delta ({SOURCE_COLUMNS}, __pgt_weight int NOT NULL);
             CREATE FUNCTION {schema}.{t}__capture() RETURNS trigger LANGUAGE plpgsql AS $f$
             BEGIN
               IF TG_OP IN ('DELETE', 'UPDATE') THEN
                 INSERT INTO {schema}.{t}__delta SELECT o.*, -1 FROM old_rows o;
               END IF;
               IF TG_OP IN ('INSERT', 'UPDATE') THEN
                 INSERT INTO {schema}.{t}__delta SELECT n.*, 1 FROM new_rows n;
               END IF;
               RETURN NULL;
             END $f$;
             CREATE TRIGGER cap_i AFTER INSERT ON {schema}.{t} REFERENCING NEW TABLE AS new_rows
               FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{t}__capture();
             CREATE TRIGGER cap_u AFTER UPDATE ON {schema}.{t}
               REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
               FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{t}__capture();
             CREATE TRIGGER cap_d AFTER DELETE ON {schema}.{t} REFERENCING OLD TABLE AS old_rows
               FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{t}__capture();"
        ));
    }
    c.batch_execute(&sql).expect("create sources");
}

/// Output columns of `query` as PostgreSQL describes them (through a temporary view).
pub fn describe(c: &mut Client, schema: &str, query: &str) -> Result<Vec<ColumnDef>, String> {
    c.batch_execute(&format!(
        "SET search_path = {schema}; CREATE OR REPLACE TEMP VIEW __describe AS {query}"
    ))
    .map_err(|e| format!("describe: {e}"))?;
    let rows = c
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'pg_temp.__describe'::regclass AND attnum > 0 ORDER BY attnum",
            &[],
        )
        .map_err(|e| e.to_string())?;
    c.batch_execute("DROP VIEW pg_temp.__describe")
        .map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .map(|r| ColumnDef::new(r.get(0), r.get(1)))
        .collect())
}

/// The defining query as the engine plans it: PostgreSQL's own resolution of `query`, created
/// as a temporary view under `search_path` (the creator's) and printed back by
/// `pg_get_viewdef(..., true)` under `search_path = pg_catalog`, so that every relation,
/// function, operator and type outside pg_catalog comes out schema-qualified and every
/// implicit cast explicit. Runs in a transaction of its own that it rolls back.
pub fn deparse(c: &mut Client, search_path: &str, query: &str) -> Result<String, String> {
    let mut tx = c.transaction().map_err(|e| e.to_string())?;
    tx.batch_execute(&format!(
        "SET LOCAL search_path = {search_path}; CREATE TEMP VIEW __pgt_describe AS {query}"
    ))
    .map_err(|e| format!("deparse: {e}: {query}"))?;
    tx.batch_execute("SET LOCAL search_path = pg_catalog")
        .map_err(|e| e.to_string())?;
    let text: String = tx
        .query_one(
            "SELECT pg_catalog.pg_get_viewdef('pg_temp.__pgt_describe'::pg_catalog.regclass, true)",
            &[],
        )
        .map_err(|e| e.to_string())?
        .get(0);
    tx.rollback().map_err(|e| e.to_string())?;
    Ok(text)
}

/// `input` as the engine plans it: its query replaced by [`deparse`]'s text (under
/// `search_path`), each relation referenced by its resolved, schema-qualified name, which is how
/// the deparsed text names it.
pub fn deparsed_input(
    c: &mut Client,
    search_path: &str,
    mut input: PlanInput,
) -> Result<PlanInput, String> {
    input.query = deparse(c, search_path, &input.query)?;
    for r in &mut input.relations {
        r.reference = RelationRef {
            schema: r.resolved.schema.clone(),
            name: r.resolved.name.clone(),
        };
    }
    Ok(input)
}

/// Plans `query` as stream table `<schema>.st` against the live catalog, from its deparsed text
/// ([`deparse`] with `search_path = schema`), as the engine does.
pub fn plan(
    c: &mut Client,
    schema: &str,
    query: &str,
    mode: RefreshMode,
) -> Result<StreamPlan, pgtrickle_planner::PlanError> {
    let text = deparse(c, schema, query).expect("deparse");
    plan_text(c, schema, &text, mode)
}

/// Plans `query` as written (not deparsed), with `search_path = schema`.
pub fn plan_original(
    c: &mut Client,
    schema: &str,
    query: &str,
    mode: RefreshMode,
) -> Result<StreamPlan, pgtrickle_planner::PlanError> {
    plan_text(c, schema, query, mode)
}

/// Plans the text `query` as given: unqualified relations are in `schema`.
pub fn plan_text(
    c: &mut Client,
    schema: &str,
    query: &str,
    mode: RefreshMode,
) -> Result<StreamPlan, pgtrickle_planner::PlanError> {
    let columns = describe(c, schema, query).expect("describe");
    let mut relations = Vec::new();
    for r in referenced_relations(query)? {
        let rel_schema = r.schema.clone().unwrap_or_else(|| schema.to_string());
        let rows = c
            .query(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass \
                 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                &[&rel_schema, &r.name],
            )
            .expect("columns");
        let cols = rows
            .iter()
            .map(|r| ColumnDef::new(r.get(0), r.get(1)))
            .collect();
        let oid: u32 = c
            .query_one(
                "SELECT (quote_ident($1) || '.' || quote_ident($2))::regclass::oid",
                &[&rel_schema, &r.name],
            )
            .expect("oid")
            .get(0);
        relations.push(SourceRelation {
            reference: r.clone(),
            resolved: StName {
                schema: Some(rel_schema.clone()),
                name: r.name.clone(),
            },
            kind: RelationKind::Table,
            columns: cols,
            primary_key: None,
            current: format!("{rel_schema}.{}", r.name),
            delta_key: Some(oid),
        });
    }
    plan_stream_table(&PlanInput {
        stream_table: StName {
            schema: Some(schema.into()),
            name: "st".into(),
        },
        storage: format!("{schema}.st"),
        query: query.into(),
        refresh_mode: mode,
        columns,
        relations,
    })
}

/// The DIFFERENTIAL statements of `plan` as SQL to run: each delta hole (keyed by its source's
/// OID, see [`plan_text`]) filled with the source's delta table `<schema>.<name>__delta`.
pub fn differential_sql(c: &mut Client, plan: &StreamPlan) -> Option<Vec<String>> {
    let statements = plan.differential_refresh.as_ref()?;
    let mut names = HashMap::new();
    for key in statements.iter().flat_map(|s| s.delta_reads().into_keys()) {
        let name: String = c
            .query_one(
                "SELECT format('%I.%I', n.nspname, c.relname || '__delta') FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                &[&key],
            )
            .expect("delta name")
            .get(0);
        names.insert(key, name);
    }
    Some(
        statements
            .iter()
            .map(|s| s.render(|k| names[&k].clone()))
            .collect(),
    )
}

/// Rows of the storage's query columns not matched by the query, and vice versa (bag
/// difference sizes), with a few sample rows for the failure message.
pub fn mismatch(c: &mut Client, schema: &str, plan_cols: &[String], query: &str) -> Option<String> {
    let cols = plan_cols.join(", ");
    c.batch_execute(&format!("SET search_path = {schema}"))
        .expect("path");
    let extra = format!("SELECT {cols} FROM {schema}.st EXCEPT ALL ({query})");
    let missing = format!("({query}) EXCEPT ALL SELECT {cols} FROM {schema}.st");
    let count = |c: &mut Client, q: &str| -> (i64, String) {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM ({q}) x"), &[])
            .unwrap_or_else(|e| panic!("{e}: {q}"))
            .get(0);
        let sample: String = c
            .query_one(
                &format!("SELECT coalesce(string_agg(x::text, ' '), '') FROM (SELECT * FROM ({q}) y LIMIT 5) x"),
                &[],
            )
            .map(|r| r.get(0))
            .unwrap_or_default();
        (n, sample)
    };
    let (e, es) = count(c, &extra);
    let (m, ms) = count(c, &missing);
    if e == 0 && m == 0 {
        None
    } else {
        Some(format!(
            "{e} extra rows in the stream table (e.g. {es}), {m} missing (e.g. {ms})"
        ))
    }
}

/// A random value of each test column, with NULLs and small domains so that duplicates,
/// NULL keys and NULL join keys are frequent.
pub fn random_row(rng: &mut StdRng) -> String {
    let opt = |rng: &mut StdRng, v: String| {
        if rng.gen_bool(0.15) {
            "NULL".to_string()
        } else {
            v
        }
    };
    let id = rng.gen_range(0..12).to_string();
    let k = rng.gen_range(0..4).to_string();
    let k = opt(rng, k);
    let v = rng.gen_range(-3..12).to_string();
    let v = opt(rng, v);
    let b = if rng.gen_bool(0.5) { "true" } else { "false" }.to_string();
    let b = opt(rng, b);
    let s = ["'a'", "'b'", "'c'"][rng.gen_range(0..3)].to_string();
    let s = opt(rng, s);
    let n = format!("{}.{:02}", rng.gen_range(0..50), rng.gen_range(0..100));
    let n = opt(rng, n);
    format!("({id}, {k}, {v}, {b}, {s}, {n})")
}

/// A random batch of writes to `table`: inserts (with exact duplicates), updates, deletes.
pub fn random_batch(rng: &mut StdRng, schema: &str, table: &str) -> String {
    let mut sql = String::new();
    for _ in 0..rng.gen_range(1..5) {
        match rng.gen_range(0..10) {
            0..=4 => {
                let row = random_row(rng);
                let mut rows = vec![row.clone()];
                if rng.gen_bool(0.3) {
                    rows.push(row);
                }
                for _ in 0..rng.gen_range(0..3) {
                    rows.push(random_row(rng));
                }
                sql.push_str(&format!(
                    "INSERT INTO {schema}.{table} VALUES {};",
                    rows.join(", ")
                ));
            }
            5..=7 => {
                let set = match rng.gen_range(0..4) {
                    0 => format!("v = {}", rng.gen_range(-3..12)),
                    1 => "k = NULL".to_string(),
                    2 => format!("k = {}, b = NOT b", rng.gen_range(0..4)),
                    _ => "v = v + 1, s = 'c'".to_string(),
                };
                sql.push_str(&format!(
                    "UPDATE {schema}.{table} SET {set} WHERE id = {};",
                    rng.gen_range(0..12)
                ));
            }
            _ => {
                let cond = match rng.gen_range(0..3) {
                    0 => format!("id = {}", rng.gen_range(0..12)),
                    1 => format!("k IS NULL AND id < {}", rng.gen_range(0..12)),
                    _ => format!("v = {}", rng.gen_range(-3..12)),
                };
                sql.push_str(&format!("DELETE FROM {schema}.{table} WHERE {cond};"));
            }
        }
    }
    sql
}

/// Runs refresh statements in one REPEATABLE READ transaction, consuming the delta tables.
pub fn refresh(
    c: &mut Client,
    schema: &str,
    tables: &[&str],
    statements: &[String],
) -> Result<(), String> {
    let consumed: Vec<String> = tables
        .iter()
        .map(|t| format!("{schema}.{t}__delta"))
        .collect();
    refresh_consuming(c, statements, &consumed)
}

/// The search_path the engine runs refreshes with: unqualified functions, operators and types
/// resolve in pg_catalog only.
pub const REFRESH_SEARCH_PATH: &str = "pg_catalog, pg_temp";

/// Runs refresh statements in one REPEATABLE READ transaction with the engine's
/// [`REFRESH_SEARCH_PATH`] and empties the change tables `consumed` (schema-qualified) in it; an
/// error names its SQLSTATE and statement.
pub fn refresh_consuming(
    c: &mut Client,
    statements: &[String],
    consumed: &[String],
) -> Result<(), String> {
    refresh_consuming_in(c, REFRESH_SEARCH_PATH, statements, consumed)
}

/// [`refresh_consuming`] with `SET LOCAL search_path = search_path`.
pub fn refresh_consuming_in(
    c: &mut Client,
    search_path: &str,
    statements: &[String],
    consumed: &[String],
) -> Result<(), String> {
    let mut tx = c
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()
        .map_err(|e| e.to_string())?;
    tx.batch_execute(&format!("SET LOCAL search_path = {search_path}"))
        .map_err(|e| e.to_string())?;
    for s in statements {
        tx.batch_execute(s).map_err(|e| {
            let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
            format!("{code} {e:?}\nSQL: {s}")
        })?;
    }
    for t in consumed {
        tx.batch_execute(&format!("DELETE FROM {t}"))
            .map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())
}

/// Like [`mismatch`], but on each row's text form, so that a value's scale (and the spelling of
/// NaN and infinities) counts.
pub fn text_mismatch(c: &mut Client, schema: &str, cols: &[String], query: &str) -> Option<String> {
    let cols = cols.join(", ");
    let st = format!("SELECT r::text AS r FROM (SELECT {cols} FROM {schema}.st) r");
    let q = format!("SELECT r::text AS r FROM ({query}) r");
    let diff = |c: &mut Client, a: &str, b: &str| -> (i64, String) {
        c.query_one(
            &format!(
                "SELECT count(*), coalesce(string_agg(r, ' '), '') FROM ({a} EXCEPT ALL {b}) d"
            ),
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let (e, es) = diff(c, &st, &q);
    let (m, ms) = diff(c, &q, &st);
    if e == 0 && m == 0 {
        None
    } else {
        Some(format!(
            "as text: {e} extra rows in the stream table ({es}), {m} missing ({ms})"
        ))
    }
}
