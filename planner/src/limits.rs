//! What one statement may cost the planner: every parse goes through [`parse_bounded`], which
//! refuses text too large (54000) or nested too deeply (54001) before sqlparser sees it and
//! limits sqlparser's own recursion. The trees it lets through are shallow enough that building,
//! walking, printing and dropping them stays far from the end of a thread's stack, whatever the
//! statement's shape (long operator chains, nested parentheses, subqueries, CASE, long lists).

use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};

use crate::error::{PlanError, Result};
use crate::lexical::{nesting_and_tokens, nesting_bound};

/// The largest statement (an API call, a query string with API calls, a defining query) the
/// planner parses, in bytes. PostgreSQL accepts up to 1 GB; statements that are not API calls
/// are never parsed by the proxy, whatever their size.
pub const MAX_STATEMENT_BYTES: usize = 1 << 20;

/// The deepest nesting (see [`nesting_bound`]) of a statement the planner parses.
pub const MAX_NESTING: usize = 1000;

/// The most tokens of a statement calling the API: a call is a few dozen (its defining query is
/// one string literal), and sqlparser spends hundreds of bytes on each.
pub const MAX_API_TOKENS: usize = 10_000;

/// sqlparser's recursion limit (nested parentheses, subqueries, CASE...).
pub const PARSER_RECURSION_LIMIT: usize = 200;

/// Checks `sql` against [`MAX_STATEMENT_BYTES`] and [`MAX_NESTING`]; `what` names it in the
/// error ("pgtrickle API statement", "defining query").
pub fn check_bounds(sql: &str, what: &str) -> Result<()> {
    if sql.len() > MAX_STATEMENT_BYTES {
        return Err(PlanError::ProgramLimitExceeded(format!(
            "{what} is too large: {} bytes, at most {MAX_STATEMENT_BYTES}",
            sql.len()
        )));
    }
    if nesting_bound(sql.as_bytes()) > MAX_NESTING {
        return Err(too_deep(what));
    }
    Ok(())
}

fn too_deep(what: &str) -> PlanError {
    PlanError::StatementTooComplex(format!(
        "{what} is too deeply nested (operator chains, parentheses, subqueries or CASE); \
         at most {MAX_NESTING} levels"
    ))
}

/// [`check_bounds`] for a statement calling the API, also limited to [`MAX_API_TOKENS`].
pub fn check_api_bounds(sql: &str, what: &str) -> Result<()> {
    check_bounds(sql, what)?;
    let (_, tokens) = nesting_and_tokens(sql.as_bytes());
    if tokens > MAX_API_TOKENS {
        return Err(PlanError::ProgramLimitExceeded(format!(
            "{what} is too large: {tokens} tokens, at most {MAX_API_TOKENS}"
        )));
    }
    Ok(())
}

/// Parses `sql` (PostgreSQL dialect) after [`check_bounds`], with sqlparser's recursion limited
/// to [`PARSER_RECURSION_LIMIT`]. Bound errors are Err(Err(..)); sqlparser's own errors are
/// Err(Ok(..)) (its recursion limit becomes a bound error).
pub fn parse_bounded(
    sql: &str,
    what: &str,
) -> std::result::Result<Vec<Statement>, std::result::Result<ParserError, PlanError>> {
    check_bounds(sql, what).map_err(Err)?;
    Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(PARSER_RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| match e {
            ParserError::RecursionLimitExceeded => Err(too_deep(what)),
            other => Ok(other),
        })
}
