//! Installing and removing capture on a source table.
//!
//! Capture is four statement-level AFTER triggers, one per event, because PostgreSQL forbids
//! transition tables on triggers with several events:
//!
//! - `__pgt_capture_<oid>_ins`: `AFTER INSERT REFERENCING NEW TABLE`, writes each new row with +1;
//! - `__pgt_capture_<oid>_upd`: `AFTER UPDATE REFERENCING OLD TABLE NEW TABLE`, writes each old row with
//!   -1 and each new row with +1;
//! - `__pgt_capture_<oid>_del`: `AFTER DELETE REFERENCING OLD TABLE`, writes each old row with -1;
//! - `__pgt_capture_<oid>_trunc`: `AFTER TRUNCATE`, writes one marker row.
//!
//! Each trigger calls its own plpgsql function `pgtrickle_changes.capture_<oid>_<event>()`, which
//! is `SECURITY DEFINER` with `search_path = pg_catalog, pg_temp`. That means:
//!
//! - a writer needs no right on `pgtrickle_changes` (the schema and buffers are closed to PUBLIC,
//!   and so is EXECUTE on the functions: triggers do not check it when they fire);
//! - the INSERT into the buffer runs as the function's owner, the role that ran the install
//!   (normally the engine's role). That role must keep INSERT on the buffers and stay in
//!   existence, or every write to the source fails; it must own the source or be superuser
//!   (`ALTER TABLE ... ENABLE ALWAYS TRIGGER` needs ownership);
//! - the function bodies contain no dynamic SQL and name everything schema-qualified, so a writer
//!   cannot redirect them with its own search_path or temporary objects;
//! - the buffers hold copies of source rows: they must stay readable only by the engine;
//! - nobody else may create objects in `pgtrickle_changes`: whoever could pre-create a buffer
//!   would receive the rows of a table they cannot read, and whoever owned a capture function
//!   would run code as every writer. The install refuses (42501) a buffer or capture function
//!   owned by any role but the installing one (a superuser included: membership is not enough,
//!   since a planted object's owner keeps control of it). Run every install as one fixed role
//!   (the engine's), which then owns all buffers and functions.
//!
//! The triggers are `ENABLE ALWAYS`, so they also fire under `session_replication_role =
//! replica` (logical replication apply workers, some restore tools). A user can still disable
//! them with `ALTER TABLE ... DISABLE TRIGGER`; installing again re-enables them.
//!
//! Partitioned sources: statement triggers fire only for the table a statement addresses, so the
//! install puts the same four triggers (calling the same functions, writing the same buffer) on
//! every partition at every level as well; each write is captured exactly once, whether addressed
//! to the root or to a partition (a TRUNCATE of one partition leaves a marker too). A partition
//! created or attached later has no triggers until the install runs again.
//!
//! Known gaps (the engine should refuse such sources; [`crate::describe_source_sql`] reports
//! them): a partition as a source of its own misses the writes routed to it through its parent
//! (they fire only the parent's statement triggers); a table with (non-partition) inheritance
//! children misses writes addressed to the children.
//!
//! # Locking
//!
//! The install takes the per-source advisory lock ([`crate::source_lock_sql`], also taken by
//! uninstall and cleanup, so that a cleanup cannot delete rows a consumer being created will
//! need), and `CREATE OR REPLACE TRIGGER` takes SHARE ROW EXCLUSIVE on the source: it waits for
//! writers in progress on the source and keeps new writers out until the installing transaction
//! ends. Consequently, in a READ COMMITTED transaction, every statement after the install sees the
//! source exactly as it will be when capture starts: populate the stream table and record
//! [`crate::current_snapshot_sql`] in later statements of that transaction. Do not populate from
//! a snapshot taken before the install (e.g. in a REPEATABLE READ transaction whose first
//! statement preceded it): writes committed between that snapshot and the install would be
//! neither in the population nor in the buffer.

use crate::buffer::{create_buffer_sql, truncate_index_sql, truncate_marker_sql};
use crate::catalog::columns_signature_expr;
use crate::cleanup::source_lock_sql;
use crate::naming::{
    buffer_table, function, function_name, trigger_name, CaptureEvent, CHANGES_SCHEMA, NEW_TABLE,
    OLD_TABLE, SCHEMA_LOCK_KEY, WEIGHT_COLUMN,
};
use crate::quote::{dollar_quote, quote_ident, quote_literal};
use crate::SourceTable;

/// The install as separate statements, to run in order in ONE transaction (for executors that
/// send one statement at a time). Idempotent: running it again replaces functions and triggers
/// and keeps the buffer and its pending changes.
///
/// `source` should come from [`SourceTable::new`] (which validates it); an invalid description
/// built by hand makes the statements fail in PostgreSQL (e.g. duplicate column).
pub fn install_capture_statements(source: &SourceTable) -> Vec<String> {
    let schema = quote_ident(CHANGES_SCHEMA);
    let mut out = vec![source_lock_sql(source.oid)];

    // The schema: created once; the advisory lock keeps two first installs from racing.
    out.push(format!(
        "DO {}",
        dollar_quote(&format!(
            "BEGIN IF pg_catalog.to_regnamespace({lit}) IS NULL THEN \
             PERFORM pg_catalog.pg_advisory_xact_lock({SCHEMA_LOCK_KEY}); \
             CREATE SCHEMA IF NOT EXISTS {schema}; \
             REVOKE ALL ON SCHEMA {schema} FROM PUBLIC; END IF; END",
            lit = quote_literal(CHANGES_SCHEMA),
        ))
    ));

    // Refuse a buffer or capture function somebody else already created (anyone who can create
    // objects in the schema could otherwise pre-create the buffer and receive, through the
    // SECURITY DEFINER functions, the rows of a table they cannot read).
    let buffer = buffer_table(source.oid);
    let functions = CaptureEvent::ALL
        .iter()
        .map(|e| quote_literal(&function_name(source.oid, *e)))
        .collect::<Vec<_>>()
        .join(", ");
    out.push(format!(
        "DO {}",
        dollar_quote(&format!(
            "DECLARE other text; BEGIN \
             SELECT c.relowner::pg_catalog.regrole::text INTO other FROM pg_catalog.pg_class c \
             WHERE c.oid = pg_catalog.to_regclass({buffer_lit}) \
             AND c.relowner <> (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user); \
             IF other IS NULL THEN \
             SELECT p.proowner::pg_catalog.regrole::text INTO other FROM pg_catalog.pg_proc p \
             WHERE p.pronamespace = {schema_lit}::pg_catalog.regnamespace \
             AND p.proname IN ({functions}) \
             AND p.proowner <> (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) LIMIT 1; \
             END IF; \
             IF other IS NOT NULL THEN RAISE EXCEPTION USING ERRCODE = '42501', \
             MESSAGE = pg_catalog.format({message}, other), HINT = {hint}; END IF; END",
            buffer_lit = quote_literal(&buffer),
            schema_lit = quote_literal(&schema),
            message = quote_literal(&format!(
                "pgtrickle: change capture objects for {} belong to role %s",
                source.qualified_name().replace('%', "%%")
            )),
            hint = quote_literal(
                "only stream tables of that role (or of its members) can read this table"
            ),
        ))
    ));
    out.push(create_buffer_sql(source));
    out.push(truncate_index_sql(source.oid));
    out.push(format!("REVOKE ALL ON TABLE {buffer} FROM PUBLIC"));

    // Refuse a buffer that does not match the source (stale description, or source altered).
    let message = format!(
        "pgtrickle: change buffer {buffer} does not match the columns of {}",
        source.qualified_name()
    );
    out.push(format!(
        "DO {}",
        dollar_quote(&format!(
            "BEGIN IF {} IS DISTINCT FROM {} THEN RAISE EXCEPTION USING ERRCODE = '55000', \
             MESSAGE = {}; END IF; END",
            columns_signature_expr(&format!("{}::pg_catalog.oid", source.oid)),
            columns_signature_expr(&format!(
                "pg_catalog.to_regclass({})",
                quote_literal(&buffer)
            )),
            quote_literal(&message),
        ))
    ));

    let table = source.qualified_name();
    let mut partition_templates = Vec::new();
    for event in CaptureEvent::ALL {
        let f = function(source.oid, event);
        out.push(format!(
            "CREATE OR REPLACE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER \
             SET search_path = pg_catalog, pg_temp AS {}",
            dollar_quote(&function_body(source, event))
        ));
        out.push(format!("REVOKE ALL ON FUNCTION {f}() FROM PUBLIC"));
        out.push(create_trigger_sql(source.oid, event, &table));
        partition_templates.push(create_trigger_sql(source.oid, event, "%s"));
    }
    out.push(enable_always_sql(source.oid, &table));
    partition_templates.push(enable_always_sql(source.oid, "%s"));

    // Partitions (at every level) get the same triggers, calling the same functions: statement
    // triggers of a partitioned table fire only for statements addressed to it, and a write
    // addressed to a partition fires only that partition's. Each write is captured once.
    let body = format!(
        "DECLARE r pg_catalog.regclass; BEGIN FOR r IN SELECT t.relid FROM \
         pg_catalog.pg_partition_tree({oid}::pg_catalog.oid::pg_catalog.regclass) t \
         WHERE t.relid <> {oid}::pg_catalog.oid::pg_catalog.regclass LOOP {} END LOOP; END",
        partition_templates
            .iter()
            .map(|t| format!("EXECUTE pg_catalog.format({}, r);", quote_literal(t)))
            .collect::<Vec<_>>()
            .join(" "),
        oid = source.oid,
    );
    out.push(format!("DO {}", dollar_quote(&body)));
    out
}

/// `CREATE OR REPLACE TRIGGER` of the capture trigger for `event` on `table` (quoted).
fn create_trigger_sql(oid: u32, event: CaptureEvent, table: &str) -> String {
    let referencing = match event {
        CaptureEvent::Insert => format!(" REFERENCING NEW TABLE AS {}", quote_ident(NEW_TABLE)),
        CaptureEvent::Update => format!(
            " REFERENCING OLD TABLE AS {} NEW TABLE AS {}",
            quote_ident(OLD_TABLE),
            quote_ident(NEW_TABLE)
        ),
        CaptureEvent::Delete => format!(" REFERENCING OLD TABLE AS {}", quote_ident(OLD_TABLE)),
        CaptureEvent::Truncate => String::new(),
    };
    format!(
        "CREATE OR REPLACE TRIGGER {} AFTER {} ON {table}{referencing} FOR EACH STATEMENT \
         EXECUTE FUNCTION {}()",
        quote_ident(&trigger_name(oid, event)),
        event.keyword(),
        function(oid, event),
    )
}

/// `ALTER TABLE <table> ENABLE ALWAYS TRIGGER ...` for the four capture triggers of `oid`.
fn enable_always_sql(oid: u32, table: &str) -> String {
    format!(
        "ALTER TABLE {table} {}",
        CaptureEvent::ALL
            .iter()
            .map(|e| format!(
                "ENABLE ALWAYS TRIGGER {}",
                quote_ident(&trigger_name(oid, *e))
            ))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The install as one multi-statement string (simple query protocol, e.g. `batch_execute`).
/// Must run inside one transaction: in a transaction block, or as a single simple query (which
/// PostgreSQL runs as one implicit transaction).
pub fn install_capture_sql(source: &SourceTable) -> String {
    join(install_capture_statements(source))
}

/// Removing capture from source `oid` (for when its last stream table is dropped), as separate
/// statements to run in one transaction: the advisory lock, the four functions with CASCADE
/// (which drops their triggers, so this works even when the source was already dropped or
/// renamed), and the buffer with its pending changes. Idempotent.
pub fn uninstall_capture_statements(oid: u32) -> Vec<String> {
    let mut out = vec![source_lock_sql(oid)];
    for event in CaptureEvent::ALL {
        out.push(format!(
            "DROP FUNCTION IF EXISTS {}() CASCADE",
            function(oid, event)
        ));
    }
    out.push(format!("DROP TABLE IF EXISTS {}", buffer_table(oid)));
    out
}

/// [`uninstall_capture_statements`] as one multi-statement string.
pub fn uninstall_capture_sql(oid: u32) -> String {
    join(uninstall_capture_statements(oid))
}

fn join(statements: Vec<String>) -> String {
    let mut s = statements.join(";\n");
    s.push(';');
    s
}

/// The plpgsql body of the capture function for `event`.
fn function_body(source: &SourceTable, event: CaptureEvent) -> String {
    let buffer = buffer_table(source.oid);
    let cols = source.column_list("");
    let insert = format!(
        "INSERT INTO {buffer} ({cols}, {})",
        quote_ident(WEIGHT_COLUMN)
    );
    let old = quote_ident(OLD_TABLE);
    let new = quote_ident(NEW_TABLE);
    let statement = match event {
        CaptureEvent::Insert => format!("{insert} SELECT {cols}, 1 FROM {new}"),
        CaptureEvent::Update => {
            format!("{insert} SELECT {cols}, -1 FROM {old} UNION ALL SELECT {cols}, 1 FROM {new}")
        }
        CaptureEvent::Delete => format!("{insert} SELECT {cols}, -1 FROM {old}"),
        CaptureEvent::Truncate => truncate_marker_sql(source.oid),
    };
    // use_column: a source column called "new", "old" or "tg_op" must not be taken for a plpgsql
    // variable.
    format!("\n#variable_conflict use_column\nBEGIN\n  {statement};\n  RETURN NULL;\nEND\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_shape() {
        let t = SourceTable::new(
            5,
            "s",
            "T",
            vec![
                ("a".into(), "integer".into()),
                ("new".into(), "text".into()),
            ],
        )
        .unwrap();
        let sql = install_capture_sql(&t);
        assert!(sql.starts_with("SELECT pg_catalog.pg_advisory_xact_lock("));
        assert!(sql.contains(
            "CREATE OR REPLACE TRIGGER \"__pgt_capture_5_upd\" AFTER UPDATE ON \"s\".\"T\" \
             REFERENCING OLD TABLE AS \"__pgt_old\" NEW TABLE AS \"__pgt_new\" FOR EACH \
             STATEMENT EXECUTE FUNCTION \"pgtrickle_changes\".\"capture_5_upd\"()"
        ));
        assert!(sql.contains(
            "INSERT INTO \"pgtrickle_changes\".\"changes_5\" (\"a\", \"new\", \"__pgt_weight\") \
             SELECT \"a\", \"new\", -1 FROM \"__pgt_old\" UNION ALL SELECT \"a\", \"new\", 1 FROM \
             \"__pgt_new\""
        ));
        assert!(sql.contains(
            "ALTER TABLE \"s\".\"T\" ENABLE ALWAYS TRIGGER \"__pgt_capture_5_ins\", ENABLE ALWAYS \
             TRIGGER \"__pgt_capture_5_upd\", ENABLE ALWAYS TRIGGER \"__pgt_capture_5_del\", ENABLE \
             ALWAYS TRIGGER \"__pgt_capture_5_trunc\";"
        ));
        assert!(sql.ends_with("END LOOP; END$pgt$;"));
    }

    #[test]
    fn uninstall_shape() {
        let sql = uninstall_capture_sql(9);
        assert!(sql
            .contains("DROP FUNCTION IF EXISTS \"pgtrickle_changes\".\"capture_9_ins\"() CASCADE"));
        assert!(sql.contains("DROP TABLE IF EXISTS \"pgtrickle_changes\".\"changes_9\";"));
    }
}
