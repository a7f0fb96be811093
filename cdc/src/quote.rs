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
