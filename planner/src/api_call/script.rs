//! Query strings of several statements that call the pgtrickle API among other SQL, as
//! migration tools and `psql -c` send them in one simple Query: split at the top-level
//! semicolons (with sqlparser's tokenizer, so that quotes, dollar quotes and comments are
//! respected), each statement kept as written, each API call recognised on its own.
//!
//! PostgreSQL runs such a string as one implicit transaction; the engine does the same, so
//! transaction control statements inside the string are refused rather than half emulated.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer, Whitespace};

use super::{parse_api_call, ParsedApiCall};
use crate::error::{PlanError, Result};
use crate::limits::MAX_STATEMENT_BYTES;
use crate::prefilter::scan_api_calls;

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptStatement {
    /// SQL for the server, exactly as written (without its semicolon).
    Sql(String),
    /// A call of an API function that changes things (or why it cannot be answered), to be
    /// run by the engine at its place in the script.
    Call(Result<ParsedApiCall>),
}

/// Splits `sql` into its statements when it has more than one and at least one of them calls
/// an API function that changes things (create, alter, drop, refresh, resume); None otherwise
/// (a single statement, or no such call: the caller treats the text as before). Read functions
/// (`pgt_status`, ...) are SQL functions in the database and stay [`ScriptStatement::Sql`].
///
/// Errors (0A000) for a script that also controls transactions (BEGIN, COMMIT, SAVEPOINT...),
/// holds `COPY ... FROM STDIN` data, or a `BEGIN ATOMIC` function body the splitter cannot
/// delimit.
///
/// A string over [`MAX_STATEMENT_BYTES`] that calls such a function is an error (54000).
pub fn parse_api_script(sql: &str) -> Result<Option<Vec<ScriptStatement>>> {
    if !scan_api_calls(sql.as_bytes()).calls_changing {
        return Ok(None);
    }
    check_size(sql)?;
    let Some(pieces) = split(sql) else {
        // Text the tokenizer rejects (an unterminated quote...): the server will say why.
        return Ok(None);
    };
    if pieces.len() < 2 {
        return Ok(None);
    }
    let mut statements = Vec::with_capacity(pieces.len());
    let mut calls = Vec::new();
    for piece in &pieces {
        match parse_api_call(piece.text) {
            Ok(Some(call)) if call.function().changes_things() => {
                calls.push(call.function().sql_name());
                statements.push(ScriptStatement::Call(Ok(call)));
            }
            Ok(_) => statements.push(ScriptStatement::Sql(piece.text.to_string())),
            Err(e) => {
                calls.push("");
                statements.push(ScriptStatement::Call(Err(e)));
            }
        }
    }
    let Some(first_call) = calls.first() else {
        return Ok(None);
    };
    let named = if first_call.is_empty() {
        "a pgtrickle call".to_string()
    } else {
        format!("pgtrickle.{first_call}()")
    };
    let refuse = |what: &str| {
        Err(PlanError::FeatureNotSupported(format!(
            "{named} cannot be combined with {what} in one query string"
        )))
    };
    if pieces.iter().any(|p| p.unsplittable) {
        return refuse(
            "COPY FROM STDIN data or a BEGIN ATOMIC body; send it as a statement of its own",
        );
    }
    if pieces.iter().any(|p| p.controls_transaction) {
        return refuse(
            "transaction control statements (BEGIN, COMMIT, ROLLBACK, SAVEPOINT...): the \
             proxy runs the string as one transaction; send them as separate statements",
        );
    }
    Ok(Some(statements))
}

fn check_size(sql: &str) -> Result<()> {
    if sql.len() > MAX_STATEMENT_BYTES {
        return Err(PlanError::ProgramLimitExceeded(format!(
            "query string calling the pgtrickle API is too large: {} bytes, at most \
             {MAX_STATEMENT_BYTES} (send large statements in query strings of their own)",
            sql.len()
        )));
    }
    Ok(())
}

/// A statement's text and what the splitter noticed about it.
struct Piece<'a> {
    text: &'a str,
    controls_transaction: bool,
    unsplittable: bool,
}

/// The statements of `sql` (empty ones left out), or None when it does not tokenize.
fn split(sql: &str) -> Option<Vec<Piece<'_>>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let offsets = Offsets::new(sql);
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    let mut words: Vec<Keyword> = Vec::new();
    let mut previous = Keyword::NoKeyword;
    let mut has_content = false;
    let mut unsplittable = false;
    let mut end_piece = |start: usize, end: usize, words: &[Keyword], has, unsplittable| {
        if has {
            pieces.push(Piece {
                text: sql[start..end].trim(),
                controls_transaction: controls_transaction(words),
                unsplittable,
            });
        }
    };
    for TokenWithSpan { token, span } in &tokens {
        match token {
            Token::SemiColon if depth == 0 => {
                let at = offsets.of(span.start)?;
                end_piece(start, at, &words, has_content, unsplittable);
                start = at + 1;
                words.clear();
                previous = Keyword::NoKeyword;
                has_content = false;
                unsplittable = false;
                continue;
            }
            Token::Whitespace(
                Whitespace::Space
                | Whitespace::Tab
                | Whitespace::Newline
                | Whitespace::SingleLineComment { .. }
                | Whitespace::MultiLineComment(_),
            ) => continue,
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::CopyData { .. } => unsplittable = true,
            Token::Word(w) => {
                if previous == Keyword::BEGIN && w.keyword == Keyword::ATOMIC {
                    unsplittable = true;
                }
                if words.len() < 2 {
                    words.push(w.keyword);
                }
                previous = w.keyword;
            }
            _ => {}
        }
        has_content = true;
    }
    end_piece(start, sql.len(), &words, has_content, unsplittable);
    Some(pieces)
}

/// True for statements that begin, end or subdivide a transaction.
fn controls_transaction(words: &[Keyword]) -> bool {
    matches!(
        words,
        [
            Keyword::BEGIN
                | Keyword::START
                | Keyword::COMMIT
                | Keyword::END
                | Keyword::ROLLBACK
                | Keyword::ABORT
                | Keyword::SAVEPOINT
                | Keyword::RELEASE,
            ..
        ] | [Keyword::PREPARE, Keyword::TRANSACTION, ..]
    )
}

/// Byte offsets of the tokenizer's (line, column) locations (both 1-based, columns in
/// characters).
struct Offsets<'a> {
    sql: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Offsets<'a> {
    fn new(sql: &'a str) -> Offsets<'a> {
        let line_starts = std::iter::once(0)
            .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Offsets { sql, line_starts }
    }

    fn of(&self, at: Location) -> Option<usize> {
        let line = usize::try_from(at.line.checked_sub(1)?).ok()?;
        let column = usize::try_from(at.column.checked_sub(1)?).ok()?;
        let start = *self.line_starts.get(line)?;
        self.sql[start..]
            .char_indices()
            .nth(column)
            .map(|(i, _)| start + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_call::ApiFunction;

    fn script(sql: &str) -> Vec<ScriptStatement> {
        parse_api_script(sql)
            .expect("script")
            .expect("a script with a call")
    }

    fn sql_text(s: &ScriptStatement) -> &str {
        match s {
            ScriptStatement::Sql(t) => t,
            ScriptStatement::Call(_) => panic!("a call, not SQL"),
        }
    }

    fn function(s: &ScriptStatement) -> ApiFunction {
        match s {
            ScriptStatement::Call(Ok(c)) => c.function(),
            other => panic!("not a call: {other:?}"),
        }
    }

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let sql = "CREATE TABLE t (a text DEFAULT ';', b text DEFAULT $x$;$x$); -- a comment;\n\
                   /* c; /* nested; */ */ SELECT pgtrickle.create_stream_table('s', \
                   $$ SELECT a FROM t WHERE a <> ';' $$);\n\
                   INSERT INTO t VALUES (E'\\';', 'x');;  ";
        let parts = script(sql);
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert_eq!(
            sql_text(&parts[0]),
            "CREATE TABLE t (a text DEFAULT ';', b text DEFAULT $x$;$x$)"
        );
        assert_eq!(function(&parts[1]), ApiFunction::CreateStreamTable);
        assert_eq!(sql_text(&parts[2]), "INSERT INTO t VALUES (E'\\';', 'x')");
    }

    #[test]
    fn multi_byte_text_keeps_its_offsets() {
        let parts = script("SELECT 'é;ü' AS \"ß\"; SELECT pgtrickle.refresh_stream_table('s')");
        assert_eq!(sql_text(&parts[0]), "SELECT 'é;ü' AS \"ß\"");
        assert_eq!(function(&parts[1]), ApiFunction::RefreshStreamTable);
    }

    #[test]
    fn only_scripts_with_changing_calls() {
        for sql in [
            "SELECT pgtrickle.refresh_stream_table('s')",
            "SELECT pgtrickle.refresh_stream_table('s');",
            "SELECT 1; SELECT 2",
            "SELECT * FROM pgtrickle.pgt_status(); SELECT 1",
            "SELECT 'unterminated; SELECT pgtrickle.refresh_stream_table('s')",
        ] {
            assert_eq!(parse_api_script(sql).expect(sql), None, "{sql}");
        }
    }

    #[test]
    fn read_functions_and_unparsable_sql_pass_as_sql() {
        let parts = script(
            "SELECT * FROM pgtrickle.pgt_status(); CREATE TABLE x (a int) WITH (fillfactor=70) \
             PARTITION BY LIST (a); SELECT pgtrickle.drop_stream_table('s')",
        );
        assert_eq!(sql_text(&parts[0]), "SELECT * FROM pgtrickle.pgt_status()");
        assert!(sql_text(&parts[1]).starts_with("CREATE TABLE x"));
        assert_eq!(function(&parts[2]), ApiFunction::DropStreamTable);
    }

    #[test]
    fn a_bad_call_is_reported_at_its_place() {
        let parts = script("SELECT 1; SELECT pgtrickle.refresh_stream_table(name => 1, x => 2)");
        assert!(
            matches!(&parts[1], ScriptStatement::Call(Err(_))),
            "{parts:?}"
        );
    }

    #[test]
    fn transaction_control_is_refused() {
        for sql in [
            "BEGIN; SELECT pgtrickle.refresh_stream_table('s'); COMMIT",
            "SELECT pgtrickle.refresh_stream_table('s'); end",
            "start transaction; SELECT pgtrickle.refresh_stream_table('s')",
            "SAVEPOINT a; SELECT pgtrickle.refresh_stream_table('s')",
            "SELECT pgtrickle.refresh_stream_table('s'); PREPARE TRANSACTION 'x'",
        ] {
            let e = parse_api_script(sql).expect_err(sql);
            assert_eq!(e.sqlstate(), "0A000");
            assert!(e.message().contains("transaction control"), "{e}");
            assert!(e.message().contains("refresh_stream_table"), "{e}");
        }
        // A prepared statement is not a transaction.
        let parts = script("PREPARE p AS SELECT 1; SELECT pgtrickle.refresh_stream_table('s')");
        assert_eq!(sql_text(&parts[0]), "PREPARE p AS SELECT 1");
    }

    #[test]
    fn atomic_bodies_are_not_split() {
        let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; \
                   SELECT pgtrickle.refresh_stream_table('s')";
        let e = parse_api_script(sql).expect_err(sql);
        assert!(e.message().contains("BEGIN ATOMIC"), "{e}");
    }

    /// Statements whose literals, quoted names and comments hold semicolons and quotes.
    fn statement() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("SELECT 1".to_string()),
            "[a-z;' ]{0,8}".prop_map(|t| format!("SELECT '{}'", t.replace('\'', "''"))),
            "[a-z; ]{0,8}".prop_map(|t| format!("SELECT $q${t}$q$")),
            "[a-z; ]{0,8}".prop_map(|t| format!("SELECT 1 AS \"{t}\"")),
            "[a-z; ]{0,8}".prop_map(|t| format!("SELECT E'\\'{t}'")),
            "[a-z; ]{0,8}".prop_map(|t| format!("SELECT 2 /* {t} /* {t} */ */")),
            "[a-z; ]{0,8}".prop_map(|t| format!("SELECT 3 -- {t}\n")),
            Just("CREATE RULE r AS ON INSERT TO t DO ALSO (NOTIFY a; NOTIFY b)".to_string()),
            Just("INSERT INTO t VALUES (1, 'é;ß')".to_string()),
        ];
        proptest::collection::vec(piece, 1..3).prop_map(|v| v.join(" UNION ALL "))
    }

    proptest::proptest! {
        #[test]
        fn a_script_splits_into_the_statements_it_was_made_of(
            before in proptest::collection::vec(statement(), 0..4),
            after in proptest::collection::vec(statement(), 0..4),
            gap in "[ \n\t;]{0,3}",
        ) {
            let call = "SELECT pgtrickle.refresh_stream_table('s')";
            let all: Vec<String> = before
                .iter()
                .cloned()
                .chain(std::iter::once(call.to_string()))
                .chain(after.iter().cloned())
                .collect();
            let sql = all.join(&format!(";{gap}"));
            let parts = parse_api_script(&sql).expect("splits");
            if all.len() == 1 {
                proptest::prop_assert!(parts.is_none());
                return Ok(());
            }
            let parts = parts.expect("a script");
            proptest::prop_assert_eq!(parts.len(), all.len(), "{:?}", parts);
            for (part, original) in parts.iter().zip(&all) {
                match part {
                    ScriptStatement::Sql(text) => {
                        proptest::prop_assert_eq!(text.as_str(), original.trim())
                    }
                    ScriptStatement::Call(call) => {
                        proptest::prop_assert_eq!(original.as_str(), call_text(call))
                    }
                }
            }
        }
    }

    fn call_text(call: &Result<ParsedApiCall>) -> &'static str {
        match call {
            Ok(c) if c.function() == ApiFunction::RefreshStreamTable => {
                "SELECT pgtrickle.refresh_stream_table('s')"
            }
            other => panic!("unexpected call {other:?}"),
        }
    }
}
