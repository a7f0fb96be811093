//! Typed API values: refresh modes, CDC modes, statuses and stream table names, parsed from
//! their text forms case-insensitively, with messages listing the accepted values.

use std::fmt;

use crate::error::{PlanError, Result};

/// How a stream table is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefreshMode {
    /// DIFFERENTIAL when the query supports it, else FULL.
    Auto,
    /// Recompute everything each refresh.
    Full,
    /// Apply the changes only.
    Differential,
    /// Maintained inside the writing transaction.
    Immediate,
}

impl RefreshMode {
    /// Parses `AUTO`, `FULL`, `DIFFERENTIAL` or `IMMEDIATE` in any case.
    pub fn parse(s: &str) -> Result<RefreshMode> {
        match s.trim().to_ascii_uppercase().as_str() {
            "AUTO" => Ok(RefreshMode::Auto),
            "FULL" => Ok(RefreshMode::Full),
            "DIFFERENTIAL" => Ok(RefreshMode::Differential),
            "IMMEDIATE" => Ok(RefreshMode::Immediate),
            _ => Err(bad(
                "refresh_mode",
                s,
                "'AUTO', 'FULL', 'DIFFERENTIAL', 'IMMEDIATE'",
            )),
        }
    }
}

impl fmt::Display for RefreshMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefreshMode::Auto => "AUTO",
            RefreshMode::Full => "FULL",
            RefreshMode::Differential => "DIFFERENTIAL",
            RefreshMode::Immediate => "IMMEDIATE",
        })
    }
}

/// How changes of a source are captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CdcMode {
    /// Triggers first, WAL when available.
    Auto,
    /// Capture by triggers.
    Trigger,
    /// Capture from the WAL.
    Wal,
}

impl CdcMode {
    /// Parses `auto`, `trigger` or `wal` in any case.
    pub fn parse(s: &str) -> Result<CdcMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(CdcMode::Auto),
            "trigger" => Ok(CdcMode::Trigger),
            "wal" => Ok(CdcMode::Wal),
            _ => Err(bad("cdc_mode", s, "'auto', 'trigger', 'wal'")),
        }
    }
}

impl fmt::Display for CdcMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CdcMode::Auto => "auto",
            CdcMode::Trigger => "trigger",
            CdcMode::Wal => "wal",
        })
    }
}

/// Whether a stream table is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StStatus {
    /// Refreshed on its schedule.
    Active,
    /// Not refreshed until resumed.
    Suspended,
}

impl StStatus {
    /// Parses `ACTIVE` or `SUSPENDED` in any case.
    pub fn parse(s: &str) -> Result<StStatus> {
        match s.trim().to_ascii_uppercase().as_str() {
            "ACTIVE" => Ok(StStatus::Active),
            "SUSPENDED" => Ok(StStatus::Suspended),
            _ => Err(bad("status", s, "'ACTIVE', 'SUSPENDED'")),
        }
    }
}

impl fmt::Display for StStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StStatus::Active => "ACTIVE",
            StStatus::Suspended => "SUSPENDED",
        })
    }
}

fn bad(param: &str, value: &str, accepted: &str) -> PlanError {
    PlanError::InvalidParameterValue(format!(
        "invalid value for parameter \"{param}\": \"{value}\"; accepted values: {accepted}"
    ))
}

/// A stream table's name as given in an API call: `name`, `schema.name`, with PostgreSQL's
/// identifier rules (unquoted parts fold to lower case, `"Quoted"` parts are kept).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StName {
    /// The schema, when qualified.
    pub schema: Option<String>,
    /// The table name.
    pub name: String,
}

impl StName {
    /// Parses a possibly qualified, possibly quoted name (42602 when malformed).
    pub fn parse(text: &str) -> Result<StName> {
        let parts = split_identifiers(text).ok_or_else(|| {
            PlanError::InvalidParameterValue(format!(
                "invalid value for parameter \"name\": \"{text}\" is not a valid table name \
                 (name or schema.name)"
            ))
        })?;
        match parts.as_slice() {
            [n] => Ok(StName {
                schema: None,
                name: n.clone(),
            }),
            [s, n] => Ok(StName {
                schema: Some(s.clone()),
                name: n.clone(),
            }),
            _ => Err(PlanError::InvalidParameterValue(format!(
                "invalid value for parameter \"name\": \"{text}\" has too many dotted parts \
                 (name or schema.name)"
            ))),
        }
    }
}

impl fmt::Display for StName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.schema {
            write!(f, "{}.", quote_ident(s))?;
        }
        f.write_str(&quote_ident(&self.name))
    }
}

/// Identifiers in the planner's SQL are quoted as PostgreSQL's `quote_ident` does (only when
/// needed), by the workspace's one quoting module.
pub use pgtrickle_cdc::quote::quote_ident_as_needed as quote_ident;

fn split_identifiers(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
            if part.is_empty() {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_alphanumeric() || c == '_' || c == '$' {
                    part.extend(c.to_lowercase());
                    chars.next();
                } else {
                    break;
                }
            }
            if part.is_empty() || part.starts_with(|c: char| c.is_ascii_digit() || c == '$') {
                return None;
            }
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => continue,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_case_insensitive() {
        assert_eq!(
            RefreshMode::parse("differential"),
            Ok(RefreshMode::Differential)
        );
        assert_eq!(RefreshMode::parse("Full"), Ok(RefreshMode::Full));
        assert_eq!(CdcMode::parse("WAL"), Ok(CdcMode::Wal));
        assert_eq!(StStatus::parse("suspended"), Ok(StStatus::Suspended));
    }

    #[test]
    fn bad_modes_name_parameter_and_values() {
        let e = RefreshMode::parse("fast").unwrap_err();
        assert_eq!(e.sqlstate(), "22023");
        assert!(e.message().contains("\"refresh_mode\""), "{e}");
        assert!(e.message().contains("'DIFFERENTIAL'"), "{e}");
        let e = CdcMode::parse("logical").unwrap_err();
        assert!(
            e.message().contains("\"cdc_mode\"") && e.message().contains("'wal'"),
            "{e}"
        );
        let e = StStatus::parse("PAUSED").unwrap_err();
        assert!(e.message().contains("\"status\"") && e.message().contains("'SUSPENDED'"));
    }

    #[test]
    fn names_fold_and_quote() {
        assert_eq!(
            StName::parse("Public.Orders").unwrap(),
            StName {
                schema: Some("public".into()),
                name: "orders".into()
            }
        );
        assert_eq!(
            StName::parse("\"My \"\"T\"\"\"").unwrap(),
            StName {
                schema: None,
                name: "My \"T\"".into()
            }
        );
        assert_eq!(StName::parse("s.\"X\"").unwrap().to_string(), "s.\"X\"");
        for bad in ["", "a.b.c", "a..b", "1abc", "a b", "\"\"", "\"open"] {
            let e = StName::parse(bad).unwrap_err();
            assert_eq!(e.sqlstate(), "22023", "{bad}");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("orders"), "orders");
        assert_eq!(quote_ident("Orders"), "\"Orders\"");
        assert_eq!(quote_ident("select"), "\"select\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
