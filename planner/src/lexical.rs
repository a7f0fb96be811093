//! A cheap lexical scan of SQL text, without allocation: string literals (standard, `E''`,
//! dollar-quoted), quoted identifiers and comments (nested `/* */`) are skipped as PostgreSQL
//! reads them, so that what the callers look for is only found in the statement itself. Used
//! before anything is given to sqlparser: to see whether a statement calls a pgtrickle function
//! at all, and to bound how deep the tree a parse would build can be.

/// One lexical token, by byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// An identifier or keyword; `quoted` for `"..."` (the range is inside the quotes).
    Ident {
        /// Start of the name.
        start: usize,
        /// End of the name.
        end: usize,
        /// Written in double quotes.
        quoted: bool,
    },
    /// A string literal, a number or a `$n` parameter.
    Literal,
    /// One punctuation or operator character.
    Punct(u8),
}

/// Iterates over the tokens of `sql` (whitespace and comments left out). Unterminated quotes
/// and comments end the text.
pub struct Tokens<'a> {
    sql: &'a [u8],
    at: usize,
}

impl<'a> Tokens<'a> {
    /// A scan of `sql` from its start.
    pub fn new(sql: &'a [u8]) -> Tokens<'a> {
        Tokens { sql, at: 0 }
    }

    fn byte(&self, i: usize) -> Option<u8> {
        self.sql.get(i).copied()
    }

    /// Skips to after the closing `quote` of a literal or quoted identifier opened before
    /// `self.at`; a doubled quote stands for itself; with `backslash`, `\` escapes. False
    /// when the text ends first.
    fn skip_quoted(&mut self, quote: u8, backslash: bool) -> bool {
        while let Some(b) = self.byte(self.at) {
            self.at += 1;
            if backslash && b == b'\\' {
                self.at += 1;
            } else if b == quote {
                if self.byte(self.at) == Some(quote) {
                    self.at += 1;
                } else {
                    return true;
                }
            }
        }
        self.at = self.sql.len();
        false
    }

    /// At `$`: a dollar-quoted string (`$$...$$`, `$tag$...$tag$`) is skipped whole; true
    /// when it was one.
    fn skip_dollar_quoted(&mut self) -> bool {
        let open_start = self.at;
        let mut i = self.at + 1;
        while let Some(b) = self.byte(i) {
            if b == b'$' {
                break;
            }
            let ok = if i == open_start + 1 {
                is_ident_start(b)
            } else {
                is_ident_continue(b) && b != b'$'
            };
            if !ok {
                return false;
            }
            i += 1;
        }
        if self.byte(i) != Some(b'$') {
            return false;
        }
        let tag = &self.sql[open_start..=i];
        let body = i + 1;
        self.at = find(&self.sql[body..], tag)
            .map(|p| body + p + tag.len())
            .unwrap_or(self.sql.len());
        true
    }

    /// Skips whitespace and comments; false at the end of the text.
    fn skip_blank(&mut self) -> bool {
        loop {
            match (self.byte(self.at), self.byte(self.at + 1)) {
                (None, _) => return false,
                (Some(b), _) if b.is_ascii_whitespace() => self.at += 1,
                (Some(b'-'), Some(b'-')) => {
                    self.at = find(&self.sql[self.at..], b"\n")
                        .map(|p| self.at + p + 1)
                        .unwrap_or(self.sql.len());
                }
                (Some(b'/'), Some(b'*')) => {
                    self.at += 2;
                    let mut depth = 1usize;
                    while depth > 0 {
                        match (self.byte(self.at), self.byte(self.at + 1)) {
                            (None, _) => return false,
                            (Some(b'/'), Some(b'*')) => {
                                depth += 1;
                                self.at += 2;
                            }
                            (Some(b'*'), Some(b'/')) => {
                                depth -= 1;
                                self.at += 2;
                            }
                            _ => self.at += 1,
                        }
                    }
                }
                _ => return true,
            }
        }
    }
}

impl Iterator for Tokens<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        if !self.skip_blank() {
            return None;
        }
        let start = self.at;
        let b = self.byte(start)?;
        self.at += 1;
        match b {
            b'\'' => {
                let _ = self.skip_quoted(b'\'', false);
                Some(Token::Literal)
            }
            b'"' => {
                let closed = self.skip_quoted(b'"', false);
                let end = if closed { self.at - 1 } else { self.at };
                Some(Token::Ident {
                    start: start + 1,
                    end,
                    quoted: true,
                })
            }
            b'$' => {
                self.at = start;
                if self.skip_dollar_quoted() {
                    return Some(Token::Literal);
                }
                self.at = start + 1;
                while self.byte(self.at).is_some_and(|c| c.is_ascii_digit()) {
                    self.at += 1;
                }
                Some(if self.at > start + 1 {
                    Token::Literal
                } else {
                    Token::Punct(b'$')
                })
            }
            b'0'..=b'9' => {
                while self
                    .byte(self.at)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_')
                {
                    self.at += 1;
                }
                Some(Token::Literal)
            }
            _ if is_ident_start(b) => {
                while self.byte(self.at).is_some_and(is_ident_continue) {
                    self.at += 1;
                }
                if self.byte(self.at) == Some(b'\'') {
                    // A prefixed string: E'...' (backslash escapes), B'', X'', N'', U&''.
                    let escapes = self.at - start == 1 && (b | 0x20) == b'e';
                    self.at += 1;
                    let _ = self.skip_quoted(b'\'', escapes);
                    return Some(Token::Literal);
                }
                Some(Token::Ident {
                    start,
                    end: self.at,
                    quoted: false,
                })
            }
            _ => Some(Token::Punct(b)),
        }
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_continue(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)
        {
            None => return None,
            Some(p) => {
                i += p;
                if &hay[i..i + needle.len()] == needle {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}

/// The name of an identifier token, as written (without its quotes).
pub fn ident_text<'a>(sql: &'a [u8], token: &Token) -> Option<&'a [u8]> {
    match *token {
        Token::Ident { start, end, .. } => sql.get(start..end),
        _ => None,
    }
}

/// An upper bound on how deep a tree sqlparser builds from `sql` can be, in tokens: at each
/// point, the tokens since the last `(` or `,` at every enclosing parenthesis level, summed.
/// Long operator chains (`1+1+...`, `a AND b AND ...`) and deep nesting count; long lists
/// (`IN (1, 2, ...)`, many columns) do not.
pub fn nesting_bound(sql: &[u8]) -> usize {
    nesting_and_tokens(sql).0
}

/// [`nesting_bound`] and the number of tokens, in one scan.
pub fn nesting_and_tokens(sql: &[u8]) -> (usize, usize) {
    let mut tokens = 0usize;
    // The running count at each parenthesis level is kept as one total and a stack of what
    // the enclosing levels had, bounded by the parenthesis depth (itself bounded by the text).
    let mut levels: Vec<usize> = Vec::new();
    let mut current = 0usize;
    let mut outer = 0usize;
    let mut deepest = 0usize;
    for t in Tokens::new(sql) {
        tokens += 1;
        match t {
            Token::Punct(b'(') | Token::Punct(b'[') => {
                current += 1;
                levels.push(current);
                outer += current;
                current = 0;
            }
            Token::Punct(b')') | Token::Punct(b']') => {
                if let Some(prev) = levels.pop() {
                    outer -= prev;
                    current = prev;
                } else {
                    current += 1;
                }
            }
            Token::Punct(b',') | Token::Punct(b';') => current = 0,
            _ => current += 1,
        }
        deepest = deepest.max(outer + current);
    }
    (deepest, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<String> {
        Tokens::new(sql.as_bytes())
            .map(|t| match t {
                Token::Ident { quoted, .. } => format!(
                    "{}{}",
                    if quoted { "q:" } else { "" },
                    String::from_utf8_lossy(ident_text(sql.as_bytes(), &t).unwrap_or_default())
                ),
                Token::Literal => "lit".into(),
                Token::Punct(b) => (b as char).to_string(),
            })
            .collect()
    }

    #[test]
    fn skips_literals_and_comments() {
        assert_eq!(
            kinds("select 'a''b', E'\\'x', $q$ $ $$ $q$, $1, 12.5e3 -- c\n /* a /* b */ */ \"Q\"\"x\".f("),
            ["select", "lit", ",", "lit", ",", "lit", ",", "lit", ",", "lit", "q:Q\"\"x", ".", "f", "("]
        );
        assert_eq!(kinds("a$b$ x"), ["a$b$", "x"]);
        assert_eq!(kinds("'unterminated"), ["lit"]);
        assert_eq!(kinds("/* unterminated"), Vec::<String>::new());
        assert_eq!(kinds("$tag$ never closed"), ["lit"]);
        assert_eq!(kinds("\"open"), ["q:open"]);
    }

    #[test]
    fn nesting_counts_chains_and_parentheses_not_lists() {
        let chain = format!("select 1{}", "+1".repeat(1000));
        assert!(nesting_bound(chain.as_bytes()) >= 2000);
        let parens = format!("select {}1{}", "(".repeat(500), ")".repeat(500));
        assert!(nesting_bound(parens.as_bytes()) >= 500);
        let list = format!("select 1 where x in (1{})", ",1".repeat(10_000));
        assert!(nesting_bound(list.as_bytes()) < 20);
        assert!(nesting_bound(b"select )))))") <= 8);
    }
}
