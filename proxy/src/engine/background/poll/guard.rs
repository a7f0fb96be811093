//! What must hold before a foreign table is read, so that no code its owner controls runs on
//! the poller's connections.
//!
//! The reader connection is a session of the proxy's own role (often a superuser) that does
//! `SET ROLE <owner>` so that the owner's FDW user mapping applies. Code the owner controls that
//! ran there could `RESET ROLE` and act as the proxy's role. Reading a foreign table runs no
//! such code, with two exceptions this module refuses:
//!
//! - The name is no longer that foreign table: a view (or table) of the same name, made after
//!   the foreign table was dropped, would run the owner's functions. [`begin_read`] takes the
//!   foreign table's lock *by name* first (PostgreSQL refuses `LOCK TABLE` on foreign tables, so
//!   the lock is taken by parsing, not running, `SELECT FROM <name>`, which keeps it until the
//!   transaction ends and runs nothing), then checks by OID that the name is the expected
//!   foreign table: once locked it can be neither dropped nor renamed until the scan is over.
//! - A column whose type is, or contains (array elements, composite attributes, domains over
//!   domains, range subtypes, multiranges), a domain with CHECK constraints: PostgreSQL
//!   evaluates them (the owner's functions) while the FDW converts fetched values to the
//!   column's type, and again when the poll copies new rows into the mirror as the proxy's role.
//!   [`check_columns`] refuses them (0A000) when a source is prepared and at every poll.
//!
//! The read runs in a `READ ONLY` transaction, as a further barrier.

use pgtrickle_cdc::SourceTable;
use tokio_postgres::Client;

use super::failure::Failure;

/// The first column of foreign table `$1` whose type is or contains a domain with CHECK
/// constraints: its name, its type and the domain. Also one row (NULLs) telling whether `$1`
/// still is a foreign table (`is_foreign`).
const CHECK_COLUMNS_SQL: &str = "\
WITH RECURSIVE t(attnum, col, typ) AS ( \
  SELECT a.attnum, a.attname, a.atttypid FROM pg_catalog.pg_attribute a \
  WHERE a.attrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid \
    AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped \
  UNION \
  SELECT t.attnum, t.col, n.typ FROM t \
  JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) t.typ \
  CROSS JOIN LATERAL ( \
    SELECT ty.typbasetype WHERE ty.typtype OPERATOR(pg_catalog.=) 'd' \
    UNION ALL SELECT ty.typelem WHERE ty.typelem OPERATOR(pg_catalog.<>) 0 \
    UNION ALL SELECT c.atttypid FROM pg_catalog.pg_attribute c \
      WHERE ty.typrelid OPERATOR(pg_catalog.<>) 0 \
        AND c.attrelid OPERATOR(pg_catalog.=) ty.typrelid \
        AND c.attnum OPERATOR(pg_catalog.>) 0 AND NOT c.attisdropped \
    UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r \
      WHERE r.rngtypid OPERATOR(pg_catalog.=) ty.oid \
    UNION ALL SELECT r.rngtypid FROM pg_catalog.pg_range r \
      WHERE r.rngmultitypid OPERATOR(pg_catalog.=) ty.oid \
  ) n(typ) \
) \
SELECT (SELECT c.relkind OPERATOR(pg_catalog.=) 'f' FROM pg_catalog.pg_class c \
        WHERE c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid) AS is_foreign, \
       bad.col::pg_catalog.text, bad.coltype, bad.domain \
FROM (SELECT 1) one LEFT JOIN LATERAL ( \
  SELECT t.col, \
    (SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
     WHERE a.attrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid \
       AND a.attnum OPERATOR(pg_catalog.=) t.attnum) AS coltype, \
    pg_catalog.format_type(t.typ, NULL) AS domain \
  FROM t WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k \
                       WHERE k.contypid OPERATOR(pg_catalog.=) t.typ \
                         AND k.contype OPERATOR(pg_catalog.=) 'c') \
  ORDER BY t.attnum LIMIT 1) bad ON true";

/// Checks by OID that `source` is a foreign table none of whose columns is or contains a
/// domain with CHECK constraints (on either connection; catalog reads only).
pub async fn check_columns(client: &Client, source: &SourceTable) -> Result<(), Failure> {
    let row = client.query_one(CHECK_COLUMNS_SQL, &[&source.oid]).await?;
    let is_foreign: Option<bool> = row.get(0);
    if is_foreign != Some(true) {
        return Err(not_foreign(source));
    }
    let column: Option<String> = row.get(1);
    if let Some(column) = column {
        let ty: Option<String> = row.get(2);
        let domain: Option<String> = row.get(3);
        return Err(Failure::refused(
            "0A000",
            format!(
                "column \"{column}\" of foreign table {} has type {} with domain {} that has \
                 CHECK constraints; PostgreSQL would evaluate them (functions of the domain's \
                 owner) while reading the foreign table, so it cannot be polled: use a column \
                 type without such a domain",
                source.qualified_name(),
                ty.unwrap_or_default(),
                domain.unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

fn not_foreign(source: &SourceTable) -> Failure {
    Failure::refused(
        "55000",
        format!(
            "{} is no longer the foreign table (OID {}) the stream tables over it were built on; \
             drop those stream tables and create them again",
            source.qualified_name(),
            source.oid
        ),
    )
}

/// On the reader (already `SET ROLE` to the owner): opens the read-only transaction the scan
/// runs in, takes the foreign table's lock by name, and checks that the name still is
/// `source` and that its columns may be read ([`check_columns`]). The caller runs the scan
/// next, then ends the transaction.
pub async fn begin_read(reader: &Client, source: &SourceTable) -> Result<(), Failure> {
    let name = source.qualified_name();
    reader
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY; \
             PREPARE __pgt_lock AS SELECT FROM {name}; DEALLOCATE __pgt_lock"
        ))
        .await?;
    let found: Option<u32> = reader
        .query_opt(
            "SELECT c.oid FROM pg_catalog.pg_class c \
             WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1::pg_catalog.text) \
               AND c.relkind OPERATOR(pg_catalog.=) 'f'",
            &[&name],
        )
        .await?
        .map(|r| r.get(0));
    if found != Some(source.oid) {
        return Err(not_foreign(source));
    }
    check_columns(reader, source).await
}
