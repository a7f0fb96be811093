//! pgtrickle-planner: the pure planning library of pgtrickle-proxy. No network, no database
//! handle: SQL text in; validated requests, plans and SQL out. The stream-table engine executes
//! what it produces.
//!
//! # The interface
//!
//! 1. API calls. [`may_contain_api_call`] is the cheap prefilter for every Query/Parse message.
//!    [`parse_api_call`] recognises `SELECT pgtrickle.f(...)` / `SELECT * FROM pgtrickle.f(...)`
//!    and returns a [`ParsedApiCall`]; [`ParsedApiCall::params`] lists `$n` parameters still to
//!    bind, and [`ParsedApiCall::bind`] (or [`ParsedApiCall::request`] without parameters)
//!    yields a typed [`ApiRequest`] with pg_trickle's defaults applied. [`parse_api_script`]
//!    splits a query string of several statements that calls the API among other SQL.
//! 2. Planning. The engine first calls [`referenced_relations`] on a defining query, resolves
//!    those names in PostgreSQL, describes the query's output columns, and then calls
//!    [`plan_stream_table`] with a [`PlanInput`]. It gets a [`StreamPlan`]: the effective refresh
//!    mode (and a notice when AUTO fell back to FULL), storage DDL, FULL and DIFFERENTIAL
//!    refresh statements, explain text and the sources.
//!
//! # The contract on `current` and the deltas
//!
//! For each source the engine gives:
//! - `current` (SQL text, inserted verbatim): a relation with the source's rows as of the
//!   refresh transaction's snapshot, with exactly the source's columns (a foreign table's local
//!   synced copy, for foreign tables);
//! - `delta_key`: the key of its delta. The DIFFERENTIAL statements are [`RefreshStatement`]s,
//!   SQL with a typed hole ([`Piece::Delta`]) wherever they read a source's delta;
//!   [`RefreshStatement::delta_reads`] says which deltas a statement reads and how many times.
//!   The engine fills each hole ([`RefreshStatement::render`]) with a relation holding exactly
//!   the changes this refresh consumes, with the source's columns (by name) plus
//!   `__pgt_weight int`: +1 for a row that appeared, -1 for a row that disappeared (an UPDATE
//!   is both). The same row may appear several times.
//!
//! The engine runs the DIFFERENTIAL statements in one REPEATABLE READ transaction in which
//! `current` = old state + delta for every source (a source without changes has an empty
//! delta). The planner derives the old state as `current` minus the delta. Every relation in
//! the generated SQL is a `current` relation, a delta or the storage table. The FULL refresh
//! statements read no delta.
//!
//! Practical notes for the engine: every hole must be filled with a relation, an empty one for
//! a source without changes; deltas with statistics (pgtrickle-proxy ANALYZEs the small ones
//! it copies into temporary tables) let PostgreSQL drive the refresh from the few changed rows
//! through the sources' indexes, as the EXPLAIN ANALYZE test shows.
//!
//! Removing consumed changes is the engine's business, not the statements': pgtrickle-proxy
//! does not do it in the refresh's transaction, where concurrent refreshes of stream tables
//! sharing a source would fail with serialization errors. After the refresh has committed, it
//! runs per source a READ COMMITTED transaction of its own (`refresh::capture::trim_committed`:
//! the scheduler right after its commit; for a refresh a client called, before the session's
//! next statement, unless the refresh ran inside the client's transaction block) that deletes
//! the buffered changes every stream table reading the source has consumed (visible in each
//! one's last snapshot). A trim that fails is only logged: a later one removes those rows.
//!
//! # Storage
//!
//! The storage table has the query's columns first, then hidden columns named `__pgt_*`
//! ([`StreamPlan::hidden_columns`]). The query's columns always hold exactly the query's rows
//! as a bag (duplicates included); see [`sqlgen`] for the layouts.

//! # What is maintained differentially
//!
//! Bag semantics throughout (duplicates, keyless sources, NULLs):
//! - selection and projection with deterministic expressions, `*` and `alias.*`;
//! - inner joins of any number of relations (comma, `JOIN ... ON`, `USING`), self-joins;
//!   delta by the telescoping rule over new/old states, old state = `current` minus the delta;
//! - LEFT joins anywhere in a join chain, RIGHT and FULL joins unless after another outer join
//!   in the chain (at most 3 outer joins per SELECT), as an inner join plus null-padded
//!   anti-joins;
//! - `EXISTS`, `NOT EXISTS`, `IN (subquery)`, `NOT IN (subquery)` as AND-ed WHERE conjuncts
//!   (semi- and anti-joins; old existence is a positive sum of old weights), the IN subquery
//!   also grouped (with HAVING) or a UNION/INTERSECT/EXCEPT, with a row on the left
//!   (`(a, b) IN (SELECT x, y ...)`); `x op ANY (subquery)`, `x op ALL (subquery)` and their
//!   negations likewise (ALL: an anti-join on `(x op y) IS NOT TRUE`);
//! - scalar subqueries that aggregate (no GROUP BY) in WHERE and HAVING, lifted into FROM
//!   (`query::model::scalar`): uncorrelated ones anywhere in WHERE or HAVING as a one-row
//!   grouped subquery; correlated ones by equalities as an operand of a comparison that is a
//!   WHERE conjunct, their value NULL over no rows (not count), as a subquery grouped by the
//!   correlation keys joined on them;
//! - at the top: GROUP BY (expressions, NULL keys) or global aggregates with COUNT(*),
//!   COUNT(x), SUM, AVG, MIN, MAX, BOOL_AND/OR/EVERY and FILTER, maintained from per-group state
//!   (a group whose MIN/MAX value is deleted is re-scanned); HAVING, aggregates with DISTINCT
//!   and expressions over aggregates re-compute each changed group; DISTINCT; UNION;
//! - INTERSECT and EXCEPT, with or without ALL, anywhere;
//! - UNION ALL anywhere; subqueries in FROM and non-recursive CTEs (each reference inlined),
//!   including GROUP BY (or global aggregates; DISTINCT aggregates, HAVING and expressions
//!   over aggregates too), DISTINCT, UNION, INTERSECT and EXCEPT inside
//!   them (their changed groups are recomputed from their input, which reads that input in
//!   full);
//! - GROUP BY keys outside the select list, with HAVING and expressions over the grouped row
//!   (the grouped result is kept as a bag, changed groups recomputed);
//! - LEFT, RIGHT and FULL joins `USING (...)` (NATURAL joins reach the planner as USING,
//!   PostgreSQL's deparser prints them so), as joins ON the columns' equality with the merged
//!   columns spelled out;
//! - `json` output columns, compared, grouped and hashed by their text form;
//! - at the top, by the keyed recompute ([`sqlgen::keyed`]: the keys the changes touch are
//!   deleted and recomputed from the sources): window functions (per partition: the
//!   PARTITION BY expressions all windows share), DISTINCT ON (per DISTINCT ON key), GROUPING
//!   SETS / ROLLUP / CUBE (per group of each grouping set), ORDER BY ... LIMIT/OFFSET (the whole
//!   top-k, only when the query below it changed);
//! - set-returning functions (`generate_series`, `unnest ... WITH ORDINALITY`,
//!   `jsonb_array_elements`, ...), VALUES and LATERAL subqueries reading no relation in FROM
//!   (no delta of their own: per row of the items before them), and LATERAL subqueries that
//!   are plain joins (no grouping, DISTINCT or LIMIT), in inner joins.
//!
//! Views are not the planner's business: the engine expands the views it may into the query
//! before planning ([`expand_views`]), and a query sqlparser cannot read is planned FULL by
//! [`plan_unreadable`] from the engine's description (0A000 under DIFFERENTIAL).
//!
//! Everything else falls back to FULL under AUTO (with a notice naming the construct) and is
//! an error 0A000 naming it under DIFFERENTIAL: other scalar subqueries (in the select list,
//! without an aggregate, correlated otherwise), EXISTS/IN subqueries outside AND-ed WHERE
//! conjuncts, grouped or limited LATERAL subqueries, aggregates other than the ones above
//! inside subqueries, NATURAL joins as written (the engine plans PostgreSQL's deparsed text,
//! where they are USING joins), volatile and time-dependent functions (`now()`,
//! `CURRENT_DATE`), LIMIT/OFFSET without ORDER BY in a subquery (`OFFSET 0` and `LIMIT ALL`
//! are dropped), columns of types without equality (xml, point, ...), WITH RECURSIVE, and
//! sources without change capture (`delta_key` None). Always rejected, in every mode:
//! LIMIT/OFFSET without ORDER BY at the top of the query, FOR UPDATE/SHARE (also FOR KEY SHARE, FOR NO KEY UPDATE),
//! TABLESAMPLE, a query reading its own stream table.
//!
//! Floating-point SUM/AVG maintained incrementally can differ in the last bits from a fresh
//! computation (addition order); exact types (integers, numeric) are exact.

/// The version of the SQL this planner writes: bump it with every change of the statements it
/// generates (a fix of a delta rule, a new spelling, a new stored form). Each stream table
/// records the version of its stored plan; a proxy with a newer planner plans older stream
/// tables again.
///
/// 3: the old state of a grouped subquery over outer joins is the union of its inner-join
/// variants (a LEFT JOIN over weighted relations lost left rows without a match).
/// 4: DIFFERENTIAL statements are stored with typed holes for the deltas
/// ([`RefreshStatement::to_stored`]) instead of naming relations the engine chose at planning.
/// 5: MIN/MAX groups that lost their extremum are recomputed in one set-based pass over the
/// sources (a semi-join on the group keys) instead of one re-scan per group.
/// 6: window functions, DISTINCT ON, grouping sets and top-k are maintained by the keyed
/// recompute (storage layout `Keyed`); set-returning functions, VALUES and LATERAL subqueries
/// in FROM are maintained; WITH RECURSIVE is accepted (FULL).
/// 7: scalar subqueries in WHERE and HAVING are lifted into FROM (new plans), IN over grouped
/// and set-operation subqueries, row IN and op ANY/ALL (subquery); a keyless grouped subquery
/// with only count(*) regroups by a constant column (its SQL had an empty select list).
/// 8: a MIN/MAX group is not read again when its inserted extremum is beyond every deleted
/// value and reaches the stored one.
/// 9: outer joins `USING` (and NATURAL, which PostgreSQL prints as USING), GROUP BY keys
/// outside the select list with HAVING or output expressions, `json` output columns (compared
/// by text) are maintained; `OFFSET 0` / `LIMIT ALL` are dropped; views are expanded.
pub const PLANNER_VERSION: i32 = 9;

pub mod api_call;
pub mod error;
pub mod explain;
pub mod input;
pub mod lexical;
pub mod limits;
pub mod plan;
pub mod prefilter;
pub mod query;
pub mod schedule;
pub mod sqlgen;
pub mod statement;
pub mod unreadable;

pub use api_call::{
    parse_api_call, parse_api_script, ApiLimits, ApiRequest, CdcMode, ParsedApiCall, RefreshMode,
    ScriptStatement, StName, StStatus,
};
pub use error::PlanError;
pub use input::{
    ColumnDef, PlanInput, RelationKind, RelationRef, SourceRelation, UnknownRelationKind,
};
pub use plan::{plan_stream_table, EffectiveMode, StorageLayout, StreamPlan};
pub use prefilter::{may_contain_api_call, scan_api_calls, ApiCallScan};
pub use query::{equality_key_columns, expand_views, referenced_relations, ViewDefinition};
pub use schedule::Schedule;
pub use statement::{Piece, RefreshStatement};
pub use unreadable::plan_unreadable;
