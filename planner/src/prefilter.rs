//! The cheap test run on every Query and Parse message: could this statement call the pgtrickle
//! API at all? A case-insensitive substring search, no allocation.

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

#[cfg(test)]
mod tests {
    use super::may_contain_api_call;

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
}
