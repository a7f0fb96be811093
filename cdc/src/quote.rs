//! Quoting of identifiers and literals for the SQL this crate generates.
//!
//! Every name and value that reaches generated SQL goes through one of these functions, so that
//! no input (a column called `a"b`, a snapshot text with a quote in it) can change the shape of a
//! statement. Type names are the exception: they are the output of PostgreSQL's `format_type`
//! and are inserted as they are (see [`crate::SourceTable`]).

/// Quotes an identifier as PostgreSQL's `quote_ident` would, but always with double quotes:
/// `a"b` becomes `"a""b"`. Always quoting keeps case and keywords safe.
pub fn quote_ident(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 2);
    out.push('"');
    for c in ident.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Quotes an identifier only when PostgreSQL would need it: anything but lower-case letters,
/// digits and underscores (not leading digit), or a keyword-like risk (always quoted when
/// unsure). The quoted form is the workspace's one quoting of identifiers,
/// [`quote_ident`].
pub fn quote_ident_as_needed(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
        && !RESERVED.contains(&s);
    if plain {
        s.to_string()
    } else {
        quote_ident(s)
    }
}

/// Reserved words that must be quoted as identifiers (PostgreSQL's reserved list).
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "system_user",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
];

/// Quotes a string literal as PostgreSQL's `quote_literal` does: single quotes doubled, and when
/// the text holds a backslash, an `E'...'` literal with backslashes doubled, so the result means
/// the same whatever `standard_conforming_strings` is.
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    if value.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A `text[]` literal of `items` (each element double-quoted with `"` and `\` escaped, the
/// whole quoted as a literal).
pub fn quote_text_array(items: &[String]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    quote_literal(&format!("{{{}}}", parts.join(",")))
}

/// Wraps `body` in dollar quotes with a tag that does not occur in it (`$pgt$`, `$pgt1$`, ...).
pub fn dollar_quote(body: &str) -> String {
    let mut n = 0u32;
    loop {
        let tag = if n == 0 {
            "$pgt$".to_string()
        } else {
            format!("$pgt{n}$")
        };
        if !body.contains(&tag) {
            return format!("{tag}{body}{tag}");
        }
        n += 1;
    }
}

/// `schema.name`, both parts quoted.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idents() {
        assert_eq!(quote_ident("a"), "\"a\"");
        assert_eq!(quote_ident("A b"), "\"A b\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(qualified("s", "t\""), "\"s\".\"t\"\"\"");
    }

    #[test]
    fn literals() {
        assert_eq!(quote_literal("x"), "'x'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b'"), "E'a\\\\b'''");
    }

    #[test]
    fn dollar_quotes_avoid_the_body() {
        assert_eq!(dollar_quote("x"), "$pgt$x$pgt$");
        assert_eq!(dollar_quote("a $pgt$ b"), "$pgt1$a $pgt$ b$pgt1$");
        assert_eq!(dollar_quote("$pgt$ $pgt1$"), "$pgt2$$pgt$ $pgt1$$pgt2$");
    }
}
