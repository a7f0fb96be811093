//! Reading catalog rows: a query's rows decoded by column name into typed values, with an error
//! that names the table and column when a value is missing or malformed (never a silent
//! default, never a position).

use std::str::FromStr;

use thiserror::Error;

use crate::engine::error::EngineResult;
use crate::engine::sql::privileged::Authority;
use crate::engine::sql::runner::{ResultSet, SqlRunner, SqlRunnerExt};

/// A catalog row that does not decode.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The query has no such column.
    #[error("catalog query of {table} has no column {column}")]
    NoColumn {
        /// The catalog table.
        table: &'static str,
        /// The column.
        column: &'static str,
    },
    /// A NOT NULL value is NULL.
    #[error("{table}.{column} is NULL")]
    Null {
        /// The catalog table.
        table: &'static str,
        /// The column.
        column: &'static str,
    },
    /// A value that is not of its column's form.
    #[error("{table}.{column} holds {value:?}, which is not {expected}")]
    Malformed {
        /// The catalog table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// The value found.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// The rows of one catalog query, with their column names.
pub struct Rows {
    table: &'static str,
    set: ResultSet,
}

impl Rows {
    /// Runs `text` (its last statement's rows) on `sql` as the current role.
    pub async fn read<R: SqlRunner>(
        sql: &mut R,
        table: &'static str,
        text: &str,
    ) -> EngineResult<Rows> {
        Ok(Rows {
            table,
            set: sql.last_result(text).await?,
        })
    }

    /// Runs query `text` (one statement whose columns are all text) as the engine role.
    pub async fn read_as<R: SqlRunner>(
        sql: &mut R,
        auth: &Authority,
        table: &'static str,
        text: &str,
    ) -> EngineResult<Rows> {
        Ok(Rows {
            table,
            set: auth.query(sql, text).await?,
        })
    }

    /// Each row.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        self.set.rows.iter().map(move |values| Record {
            table: self.table,
            columns: &self.set.columns,
            values,
        })
    }

    /// The first row, if any.
    pub fn first(&self) -> Option<Record<'_>> {
        self.records().next()
    }
}

/// One row of a catalog query.
pub struct Record<'a> {
    table: &'static str,
    columns: &'a [String],
    values: &'a [Option<String>],
}

impl<'a> Record<'a> {
    /// The text of `column` (None for NULL).
    pub fn text(&self, column: &'static str) -> Result<Option<&'a str>, CatalogError> {
        let i = self
            .columns
            .iter()
            .position(|c| c == column)
            .ok_or(CatalogError::NoColumn {
                table: self.table,
                column,
            })?;
        Ok(self.values.get(i).and_then(|v| v.as_deref()))
    }

    /// The text of NOT NULL `column`.
    pub fn required(&self, column: &'static str) -> Result<&'a str, CatalogError> {
        self.text(column)?.ok_or(CatalogError::Null {
            table: self.table,
            column,
        })
    }

    /// NOT NULL `column` parsed as a `T`.
    pub fn parse<T: FromStr>(&self, column: &'static str) -> Result<T, CatalogError> {
        let text = self.required(column)?;
        self.parsed(column, text)
    }

    /// Nullable `column` parsed as a `T`.
    pub fn parse_opt<T: FromStr>(&self, column: &'static str) -> Result<Option<T>, CatalogError> {
        self.text(column)?
            .map(|text| self.parsed(column, text))
            .transpose()
    }

    /// NOT NULL boolean `column` (`t`/`f` as PostgreSQL writes it, `true`/`false` through
    /// JSON for rows read as the engine role).
    pub fn flag(&self, column: &'static str) -> Result<bool, CatalogError> {
        match self.required(column)? {
            "t" | "true" => Ok(true),
            "f" | "false" => Ok(false),
            other => Err(self.malformed(column, other, "a boolean")),
        }
    }

    /// NOT NULL `column` decoded by `decode` (which names what it expected on failure).
    pub fn decode<T>(
        &self,
        column: &'static str,
        expected: &'static str,
        decode: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, CatalogError> {
        let text = self.required(column)?;
        decode(text).ok_or_else(|| self.malformed(column, text, expected))
    }

    /// Nullable `column` decoded by `decode`.
    pub fn decode_opt<T>(
        &self,
        column: &'static str,
        expected: &'static str,
        decode: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, CatalogError> {
        match self.text(column)? {
            None => Ok(None),
            Some(text) => decode(text)
                .map(Some)
                .ok_or_else(|| self.malformed(column, text, expected)),
        }
    }

    fn parsed<T: FromStr>(&self, column: &'static str, text: &str) -> Result<T, CatalogError> {
        text.parse()
            .map_err(|_| self.malformed(column, text, std::any::type_name::<T>()))
    }

    fn malformed(&self, column: &'static str, value: &str, expected: &'static str) -> CatalogError {
        CatalogError::Malformed {
            table: self.table,
            column,
            value: value.to_string(),
            expected,
        }
    }
}
