//! The cheap tests run on every Query and Parse message: could this statement call the
//! pgtrickle API at all ([`may_contain_api_call`], a substring search), and does it really call
//! a pgtrickle function, outside literals and comments ([`scan_api_calls`], a lexical scan)?
//! Neither allocates; only statements that pass both are parsed.

use crate::lexical::{ident_text, Token, Tokens};

/// True when `sql` contains `pgtrickle` in any letter case. False means the statement certainly
/// does not call the API and can be forwarded without parsing.
pub fn may_contain_api_call(sql: &[u8]) -> bool {
    const NEEDLE: &[u8; 9] = b"pgtrickle";
    if sql.len() < NEEDLE.len() {
        return false;
    }
    let last = sql.len() - NEEDLE.len();
    let mut i = 0;
    while i <= last {
        // Find the next 'p' or 'P' quickly, then compare the rest.
        let b = sql[i] | 0x20;
        if b == b'p'
            && sql[i + 1..i + NEEDLE.len()]
                .iter()
                .zip(&NEEDLE[1..])
                .all(|(c, n)| (c | 0x20) == *n)
        {
            return true;
        }
        i += 1;
    }
    false
}

/// The API functions that change things (a name containing one of these); a statement calling
/// none of them is forwarded without a parse (the read functions are SQL functions in the
/// database).
const CHANGING_FUNCTIONS: [&[u8]; 7] = [
    b"create_",
    b"alter_stream_table",
    b"drop_stream_table",
    b"refresh_stream_table",
    b"resume_stream_table",
    b"pause_stream_table",
    b"set_stream_table_refresh_policy",
];

/// What a lexical scan finds of calls `pgtrickle.f(` in a statement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiCallScan {
    /// Some `pgtrickle.f(...)` is called (as written, outside literals and comments).
    pub calls_api: bool,
    /// One of those functions changes things (create, alter, drop, refresh, resume).
    pub calls_changing: bool,
}

/// Looks for calls `pgtrickle . f (` (any letter case, quoted or not, blanks and comments
/// allowed between) in `sql`. Text that merely contains the words, in a literal, a comment, a
/// column alias or a longer name, is no call.
pub fn scan_api_calls(sql: &[u8]) -> ApiCallScan {
    let mut found = ApiCallScan::default();
    if !may_contain_api_call(sql) {
        return found;
    }
    // The last three tokens before the current one.
    let mut window: [Option<Token>; 3] = [None; 3];
    for token in Tokens::new(sql) {
        if token == Token::Punct(b'(') {
            if let [Some(schema), Some(Token::Punct(b'.')), Some(function)] = window {
                let is_schema =
                    ident_text(sql, &schema).is_some_and(|s| s.eq_ignore_ascii_case(b"pgtrickle"));
                if let (true, Some(name)) = (is_schema, ident_text(sql, &function)) {
                    found.calls_api = true;
                    if names_a_changing_function(name) {
                        found.calls_changing = true;
                        return found;
                    }
                }
            }
        }
        window = [window[1], window[2], Some(token)];
    }
    found
}

fn names_a_changing_function(name: &[u8]) -> bool {
    CHANGING_FUNCTIONS
        .iter()
        .any(|f| name.windows(f.len()).any(|w| w.eq_ignore_ascii_case(f)))
}

#[cfg(test)]
mod tests {
    use super::{may_contain_api_call, scan_api_calls, ApiCallScan};

    #[test]
    fn finds_any_case_anywhere() {
        assert!(may_contain_api_call(b"select pgtrickle.pgt_status()"));
        assert!(may_contain_api_call(b"SELECT PGTRICKLE.PGT_STATUS()"));
        assert!(may_contain_api_call(b"select \"PgTrickle\".x()"));
        assert!(may_contain_api_call(b"pgtrickle"));
        assert!(may_contain_api_call(b"xxpgtricklexx"));
    }

    #[test]
    fn rejects_others() {
        assert!(!may_contain_api_call(b""));
        assert!(!may_contain_api_call(b"pgtrickl"));
        assert!(!may_contain_api_call(b"select 1"));
        assert!(!may_contain_api_call(b"pg_trickle.x()"));
        // Bytes that become letters under `| 0x20` must not match.
        assert!(!may_contain_api_call(b"P\x07TRICKLE"));
        assert!(!may_contain_api_call(&[0xff; 64]));
    }

    const CHANGING: ApiCallScan = ApiCallScan {
        calls_api: true,
        calls_changing: true,
    };
    const READING: ApiCallScan = ApiCallScan {
        calls_api: true,
        calls_changing: false,
    };

    #[test]
    fn calls_are_found_as_written() {
        for sql in [
            "select pgtrickle.create_stream_table('a', $$select 1$$)",
            "SELECT * FROM PgTrickle . Refresh_Stream_Table ( 'a' )",
            "select \"pgtrickle\".\"drop_stream_table\"('a')",
            "select pgtrickle /* c */ . -- c\n alter_stream_table('a')",
            "select 1; select pgtrickle.resume_stream_table('a')",
            "select pgtrickle.create_stream_tablx('a')",
        ] {
            assert_eq!(scan_api_calls(sql.as_bytes()), CHANGING, "{sql}");
        }
        assert_eq!(
            scan_api_calls(b"select * from pgtrickle.pgt_status()"),
            READING
        );
    }

    #[test]
    fn words_alone_are_no_call() {
        for sql in [
            "select 1 as pgtrickle_create_x, 1+1",
            "select 'pgtrickle.create_stream_table(' as x",
            "select $$ pgtrickle.create_stream_table( $$",
            "select 1 -- pgtrickle.create_stream_table(\n",
            "select /* pgtrickle.create_stream_table( */ 1",
            "select * from pgtrickle.pgt_stream_tables where name = 'create_x'",
            "select xpgtrickle.create_stream_table('a')",
            "select pgtrickle.create_stream_table",
            "select E'\\' pgtrickle.create_stream_table('",
        ] {
            assert!(!scan_api_calls(sql.as_bytes()).calls_changing, "{sql}");
        }
    }
}
