//! DIFFERENTIAL refresh statements with typed holes for the sources' deltas.
//!
//! The planner does not know which relation will hold a source's changes when a refresh runs:
//! a DIFFERENTIAL statement is SQL text with a hole, [`Piece::Delta`], wherever it reads a
//! source's delta, and the engine fills the holes when it refreshes
//! ([`RefreshStatement::render`]). A hole names the source by the key the engine gave it
//! ([`crate::SourceRelation::delta_key`]); [`RefreshStatement::delta_reads`] says how many times
//! a statement reads each delta, so the engine knows which deltas to make readable and how
//! (a delta read once can be a view, one read several times is better copied) without looking
//! into the SQL.
//!
//! Stored form ([`RefreshStatement::to_stored`], [`RefreshStatement::from_stored`]): the SQL
//! text with `{` and `}` doubled and each hole written `{delta <key>}`, as in Rust format
//! strings. For example the statement reading source 16384's delta in
//! `SELECT '{}' FROM <hole 16384>` is stored as `SELECT '{{}}' FROM {delta 16384}`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::error::{PlanError, Result};

/// One piece of a refresh statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// SQL text, run as is.
    Sql(String),
    /// The delta relation of the source whose [`crate::SourceRelation::delta_key`] this is.
    Delta(u32),
}

/// A DIFFERENTIAL refresh statement: SQL with holes for the sources' deltas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshStatement {
    pieces: Vec<Piece>,
}

/// The text the SQL generators write for a hole: NUL cannot occur in PostgreSQL text, and the
/// planner refuses inputs holding one ([`crate::plan_stream_table`]), so every NUL of generated
/// SQL starts or ends a hole.
pub(crate) fn hole(key: u32) -> String {
    format!("\0{key}\0")
}

impl RefreshStatement {
    /// A statement without holes.
    pub fn sql(text: impl Into<String>) -> RefreshStatement {
        RefreshStatement {
            pieces: vec![Piece::Sql(text.into())],
        }
    }

    /// The statement from SQL written by the generators, holes marked by [`hole`].
    pub(crate) fn from_generated(sql: &str) -> Result<RefreshStatement> {
        let parts: Vec<&str> = sql.split('\0').collect();
        // Holes alternate with SQL, which comes first and last.
        if (parts.len() - 1) % 2 == 1 {
            return Err(PlanError::Internal(
                "unterminated delta hole in generated SQL".into(),
            ));
        }
        let mut pieces = Vec::new();
        for (i, part) in parts.into_iter().enumerate() {
            if i % 2 == 0 {
                if !part.is_empty() {
                    pieces.push(Piece::Sql(part.to_string()));
                }
            } else {
                let key = part.parse().map_err(|_| {
                    PlanError::Internal(format!("malformed delta hole {part:?} in generated SQL"))
                })?;
                pieces.push(Piece::Delta(key));
            }
        }
        Ok(RefreshStatement { pieces })
    }

    /// Its pieces, in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// For each source whose delta the statement reads: how many times it reads it (by delta
    /// key).
    pub fn delta_reads(&self) -> BTreeMap<u32, usize> {
        let mut reads = BTreeMap::new();
        for p in &self.pieces {
            if let Piece::Delta(key) = p {
                *reads.entry(*key).or_insert(0) += 1;
            }
        }
        reads
    }

    /// The SQL to run: each hole replaced by `delta(key)`, a relation (SQL text, inserted
    /// verbatim) holding that source's delta as the crate docs describe it.
    pub fn render(&self, delta: impl Fn(u32) -> String) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Sql(s) => out.push_str(s),
                Piece::Delta(key) => out.push_str(&delta(*key)),
            }
        }
        out
    }

    /// The stored form (see the module docs).
    pub fn to_stored(&self) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Sql(s) => out.push_str(&s.replace('{', "{{").replace('}', "}}")),
                Piece::Delta(key) => {
                    let _ = write!(out, "{{delta {key}}}");
                }
            }
        }
        out
    }

    /// A statement from its stored form (see the module docs); XX000 when it is not one.
    pub fn from_stored(text: &str) -> Result<RefreshStatement> {
        let malformed = || {
            PlanError::Internal(format!(
                "malformed stored refresh statement: {}",
                text.chars().take(200).collect::<String>()
            ))
        };
        let mut pieces = Vec::new();
        let mut sql = String::new();
        let mut rest = text;
        while let Some(at) = rest.find(['{', '}']) {
            sql.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("{{") {
                sql.push('{');
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                sql.push('}');
                rest = after;
            } else if let Some(after) = tail.strip_prefix("{delta ") {
                let end = after.find('}').ok_or_else(malformed)?;
                let key = after[..end].parse().map_err(|_| malformed())?;
                if !sql.is_empty() {
                    pieces.push(Piece::Sql(std::mem::take(&mut sql)));
                }
                pieces.push(Piece::Delta(key));
                rest = &after[end + 1..];
            } else {
                return Err(malformed());
            }
        }
        sql.push_str(rest);
        if !sql.is_empty() {
            pieces.push(Piece::Sql(sql));
        }
        Ok(RefreshStatement { pieces })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_holes_become_pieces() {
        let s = RefreshStatement::from_generated(&format!(
            "SELECT * FROM {} JOIN {} USING (k) WHERE x = '{}'",
            hole(7),
            hole(12),
            "{a}"
        ))
        .unwrap();
        assert_eq!(
            s.pieces(),
            &[
                Piece::Sql("SELECT * FROM ".into()),
                Piece::Delta(7),
                Piece::Sql(" JOIN ".into()),
                Piece::Delta(12),
                Piece::Sql(" USING (k) WHERE x = '{a}'".into()),
            ]
        );
        assert_eq!(s.delta_reads(), BTreeMap::from([(7, 1), (12, 1)]));
        assert_eq!(
            s.render(|k| format!("d{k}")),
            "SELECT * FROM d7 JOIN d12 USING (k) WHERE x = '{a}'"
        );
        let twice = RefreshStatement::from_generated(&format!("{}{}", hole(3), hole(3))).unwrap();
        assert_eq!(twice.delta_reads(), BTreeMap::from([(3, 2)]));
        assert!(RefreshStatement::from_generated("a\0b\0").is_err());
        assert!(RefreshStatement::from_generated("a\u{0}1").is_err());
    }

    #[test]
    fn stored_form_round_trips() {
        let s = RefreshStatement::from_generated(&format!(
            "SELECT '{{}}', '}}{{', '{{delta 1}}' FROM {} x, {}",
            hole(16384),
            hole(4294967295)
        ))
        .unwrap();
        let stored = s.to_stored();
        assert_eq!(
            stored,
            "SELECT '{{}}', '}}{{', '{{delta 1}}' FROM {delta 16384} x, {delta 4294967295}"
        );
        assert_eq!(RefreshStatement::from_stored(&stored).unwrap(), s);
        assert_eq!(
            s.delta_reads(),
            BTreeMap::from([(16384, 1), (4294967295, 1)])
        );
        // A literal that spells a hole is text, not a hole.
        let lit = RefreshStatement::sql("SELECT '{delta 5}'");
        assert_eq!(
            RefreshStatement::from_stored(&lit.to_stored()).unwrap(),
            lit
        );
        assert!(lit.delta_reads().is_empty());
        for bad in [
            "{",
            "}",
            "a { b",
            "{delta }",
            "{delta x}",
            "{delta 1",
            "{other 1}",
        ] {
            assert!(RefreshStatement::from_stored(bad).is_err(), "{bad}");
        }
        assert_eq!(
            RefreshStatement::from_stored("SET LOCAL jit = off").unwrap(),
            RefreshStatement::sql("SET LOCAL jit = off")
        );
    }
}
