//! The SQL functions that stand for pg_trickle's API in the database itself: the calls the
//! proxy answers (a client that bypasses the proxy is told to connect through it), with the
//! signatures the planner declares; and pg_trickle's functions the proxy refuses, which fail
//! with 0A000 naming the alternative, through the proxy or not (docs/COMPATIBILITY.md).

use pgtrickle_planner::api_call::{ApiFunction, ParamDefault as Default, ParamType};

/// pg_trickle functions the proxy refuses: name, SQL arguments, result type, and why / what to
/// use instead.
const REFUSED: &[(&str, &str, &str, &str)] = &[
    (
        "bulk_create",
        "definitions jsonb",
        "jsonb",
        "call pgtrickle.create_stream_table once per definition, in one transaction",
    ),
    (
        "repair_stream_table",
        "name text",
        "text",
        "pgtrickle.trigger_inventory() shows missing capture triggers; \
         pgtrickle.create_or_replace_stream_table(...) installs them again",
    ),
    (
        "set_stream_table_storage_policy",
        "name text, append_only boolean DEFAULT NULL, tier text DEFAULT NULL",
        "void",
        "use pgtrickle.alter_stream_table(name, append_only => ...)",
    ),
    (
        "set_stream_table_sla",
        "name text, sla interval",
        "void",
        "there are no refresh tiers: use pgtrickle.alter_stream_table(name, schedule => ...)",
    ),
    (
        "stream_table_to_publication",
        "name text",
        "void",
        "stream tables are plain tables: CREATE PUBLICATION ... FOR TABLE the stream table",
    ),
    (
        "drop_stream_table_publication",
        "name text",
        "void",
        "DROP PUBLICATION the publication you created",
    ),
    (
        "reset_fuse",
        "name text, action text DEFAULT 'apply'",
        "void",
        "there are no fuses (fuse => 'on' is refused); resume_stream_table resumes a \
         suspended stream table",
    ),
    (
        "gate_source",
        "source text",
        "void",
        "pause the stream tables that read it (pgtrickle.pause_stream_table) and resume them \
         after the load",
    ),
    (
        "ungate_source",
        "source text",
        "void",
        "resume the stream tables you paused (pgtrickle.resume_stream_table)",
    ),
    (
        "rebuild_cdc_triggers",
        "",
        "text",
        "capture triggers are the proxy's: pgtrickle.create_or_replace_stream_table(...) \
         installs them again",
    ),
    (
        "drain",
        "",
        "void",
        "the scheduler is the proxy's: stop the proxy with SIGTERM, which lets refreshes end",
    ),
];

/// Names of every function this module creates (dropped first by the set-up, so that a
/// changed signature never leaves an ambiguous overload behind).
pub fn function_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = ApiFunction::ALL
        .iter()
        .filter(|f| f.changes_things())
        .map(|f| f.sql_name())
        .collect();
    names.extend(REFUSED.iter().map(|r| r.0));
    names
}

/// One SQL type per parameter type.
fn sql_type(t: ParamType) -> &'static str {
    match t {
        ParamType::Text => "text",
        ParamType::Bool => "boolean",
        ParamType::Int => "integer",
        ParamType::Float => "double precision",
    }
}

fn sql_default(d: Default) -> String {
    match d {
        Default::Required => String::new(),
        Default::Null => " DEFAULT NULL".into(),
        Default::Text(t) => format!(" DEFAULT '{}'", t.replace('\'', "''")),
        Default::Bool(b) => format!(" DEFAULT {b}"),
        Default::Int(i) => format!(" DEFAULT {i}"),
        Default::Float(f) => format!(" DEFAULT {f}"),
    }
}

/// The statements creating every stub (after [`function_names`] were dropped).
pub fn stubs_sql() -> String {
    let mut sql = String::from(
        "CREATE OR REPLACE FUNCTION pgtrickle.__pgt_refused(fn text, alternative text) \
         RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$\n\
         BEGIN\n    RAISE EXCEPTION USING ERRCODE = '0A000',\n        \
         MESSAGE = format('pgtrickle.%s is not supported by pgtrickle-proxy', fn),\n        \
         HINT = alternative;\nEND\n$f$;\n",
    );
    for f in ApiFunction::ALL.iter().filter(|f| f.changes_things()) {
        let params: Vec<String> = f
            .params()
            .iter()
            .map(|p| {
                format!(
                    "\"{}\" {}{}",
                    p.name,
                    sql_type(p.ty),
                    sql_default(p.default)
                )
            })
            .collect();
        sql.push_str(&format!(
            "CREATE FUNCTION pgtrickle.{name}({params}) RETURNS void LANGUAGE sql AS \
             $f$ SELECT pgtrickle.__pgt_through_proxy('{name}') $f$;\n",
            name = f.sql_name(),
            params = params.join(", "),
        ));
    }
    for (name, args, result, alternative) in REFUSED {
        let alternative = alternative.replace('\'', "''");
        let body = if *result == "void" {
            format!("SELECT pgtrickle.__pgt_refused('{name}', '{alternative}')")
        } else {
            format!(
                "SELECT pgtrickle.__pgt_refused('{name}', '{alternative}'); SELECT NULL::{result}"
            )
        };
        sql.push_str(&format!(
            "CREATE FUNCTION pgtrickle.{name}({args}) RETURNS {result} LANGUAGE sql AS \
             $f$ {body} $f$;\n"
        ));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_changing_function_has_a_stub() {
        let sql = stubs_sql();
        assert!(sql.contains(
            "CREATE FUNCTION pgtrickle.drop_stream_table(\"name\" text, \"cascade\" boolean \
             DEFAULT false)"
        ));
        assert!(sql.contains("\"max_delta_fraction\" double precision DEFAULT NULL"));
        assert!(sql.contains("pgtrickle.bulk_create(definitions jsonb) RETURNS jsonb"));
        assert!(function_names().contains(&"pause_stream_table"));
    }
}
