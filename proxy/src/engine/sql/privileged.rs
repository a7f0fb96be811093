//! Statements the engine runs with its own role's rights (the role of the `--upstream` URL,
//! which alone may write the catalog, the change buffers and the mirrors) while it works on a
//! client's session, inside the client's transaction.
//!
//! On a connection of the proxy's own the current role already is the engine's: statements run
//! as they are ([`Authority::Own`]). On a client's session they go through
//! `pgtrickle.__pgt_engine(sql, want_rows, nonce, mac)`, a `SECURITY DEFINER` function owned by
//! the engine role that runs `sql` only when `mac` is the HMAC-SHA256, under a key only the
//! engine role can read (`pgtrickle.pgt_engine_key`), of this backend's pid, the nonce and the
//! text ([`Authority::Signed`]). Nonces grow per backend (`pgtrickle.pgt_engine_nonces`), so a
//! signed statement cannot be run twice, nor on another session, nor altered: a client that
//! calls the function itself gets 42501. The proxy signs only SQL it wrote, after its own
//! checks of the caller's rights.
//!
//! Queries return text columns; through the function a row comes back as a `text[]` (see
//! [`parse_array`]), so both paths give the same rows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hmac::{KeyInit, Mac};

use crate::engine::error::{EngineError, EngineResult};
use crate::engine::sql::runner::{quote_literal, ResultSet, SqlRunner, SqlRunnerExt};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The signing key of one database's catalog, and the nonces issued under it.
pub struct EngineKey {
    key: Vec<u8>,
    nonce: AtomicU64,
}

impl EngineKey {
    /// A key as read from `pgtrickle.pgt_engine_key`.
    pub fn new(key: Vec<u8>) -> EngineKey {
        // Nonces only grow: start from the clock, so that a restarted proxy (or another one)
        // continues above what a long-lived backend has already seen.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        EngineKey {
            key,
            nonce: AtomicU64::new(start),
        }
    }

    /// True when both hold the same key.
    pub fn same_key(&self, other: &EngineKey) -> bool {
        self.key == other.key
    }

    fn sign(&self, pid: i32, nonce: u64, want_rows: bool, sql: &str) -> EngineResult<String> {
        let mut mac = HmacSha256::new_from_slice(&self.key)
            .map_err(|_| EngineError::api("XX000", "invalid engine key"))?;
        mac.update(format!("{pid}:{nonce}:{want_rows}:").as_bytes());
        mac.update(sql.as_bytes());
        Ok(hex(&mac.finalize().into_bytes()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Generates a new random key (64 bytes: SHA-256's block size, so HMAC uses it as is).
pub fn new_key() -> Vec<u8> {
    use rand::RngCore;
    let mut key = vec![0u8; 64];
    rand::thread_rng().fill_bytes(&mut key);
    key
}

/// `key` XOR `pad`, as HMAC's inner (0x36) and outer (0x5c) keys, hex-encoded for SQL.
pub fn padded_key_hex(key: &[u8], pad: u8) -> String {
    hex(&key.iter().map(|b| b ^ pad).collect::<Vec<u8>>())
}

/// How the engine's own statements run on the connection at hand.
#[derive(Clone)]
pub enum Authority {
    /// A connection of the proxy's own: its current role is the engine role.
    Own,
    /// A client's session on backend `pid`: statements are signed with `key`.
    Signed {
        /// The database's key.
        key: Arc<EngineKey>,
        /// The session's backend process id.
        pid: i32,
    },
}

impl Authority {
    /// Runs `sql` (one or more statements, no result wanted) as the engine role.
    pub async fn exec<R: SqlRunner>(&self, sql: &mut R, text: &str) -> EngineResult<()> {
        match self {
            Authority::Own => {
                sql.run(text).await?;
            }
            Authority::Signed { .. } => {
                sql.run(&self.call(text, false)?).await?;
            }
        }
        Ok(())
    }

    /// Runs query `text` (one statement whose columns are all text) as the engine role and
    /// returns its result (the column names are known when it has rows).
    pub async fn query<R: SqlRunner>(&self, sql: &mut R, text: &str) -> EngineResult<ResultSet> {
        match self {
            Authority::Own => Ok(sql.last_result(text).await?),
            Authority::Signed { .. } => {
                // One text[] per row: the column names, then the values.
                let wrapped = format!(
                    "SELECT ARRAY(SELECT j.key FROM pg_catalog.json_each_text(\
                     pg_catalog.row_to_json(__pgt_q)) j) OPERATOR(pg_catalog.||) \
                     ARRAY(SELECT j.value FROM pg_catalog.json_each_text(\
                     pg_catalog.row_to_json(__pgt_q)) j) FROM ({text}) __pgt_q"
                );
                let malformed =
                    || EngineError::api("XX000", "malformed row from pgtrickle.__pgt_engine");
                let mut set = ResultSet::default();
                for r in sql.rows(&self.call(&wrapped, true)?).await? {
                    let array = r.into_iter().next().flatten().unwrap_or_default();
                    let mut items = parse_array(&array).ok_or_else(malformed)?;
                    if items.len() % 2 != 0 {
                        return Err(malformed());
                    }
                    let values = items.split_off(items.len() / 2);
                    if set.columns.is_empty() {
                        set.columns = items.into_iter().map(Option::unwrap_or_default).collect();
                    }
                    set.rows.push(values);
                }
                set.rows_affected = Some(set.rows.len() as u64);
                Ok(set)
            }
        }
    }

    /// Runs query `text` (one statement whose columns are all text) as the engine role and
    /// returns its rows.
    pub async fn rows<R: SqlRunner>(
        &self,
        sql: &mut R,
        text: &str,
    ) -> EngineResult<Vec<Vec<Option<String>>>> {
        Ok(self.query(sql, text).await?.rows)
    }

    /// The first column of the first row of query `text`, run as the engine role.
    pub async fn value<R: SqlRunner>(
        &self,
        sql: &mut R,
        text: &str,
    ) -> EngineResult<Option<String>> {
        Ok(self
            .rows(sql, text)
            .await?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    fn call(&self, text: &str, want_rows: bool) -> EngineResult<String> {
        let Authority::Signed { key, pid } = self else {
            return Ok(text.to_string());
        };
        let nonce = key.nonce.fetch_add(1, Ordering::Relaxed);
        let mac = key.sign(*pid, nonce, want_rows, text)?;
        Ok(format!(
            "SELECT * FROM pgtrickle.__pgt_engine({}, {want_rows}, {nonce}, '{mac}')",
            quote_literal(text)
        ))
    }
}

/// Parses PostgreSQL's text output of a one-dimensional `text[]` (quoted elements with
/// backslash escapes, unquoted `NULL` for NULL); None when it is not one.
pub fn parse_array(s: &str) -> Option<Vec<Option<String>>> {
    let inner = s.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut item = String::new();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
            out.push(Some(item));
        } else {
            let mut item = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
            out.push((item != "NULL").then_some(item));
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays() {
        assert_eq!(parse_array("{}"), Some(vec![]));
        assert_eq!(
            parse_array(r#"{a,NULL,"NULL","x,\"y\"\\",""}"#),
            Some(vec![
                Some("a".into()),
                None,
                Some("NULL".into()),
                Some("x,\"y\"\\".into()),
                Some(String::new()),
            ])
        );
        assert_eq!(parse_array("a"), None);
    }

    #[test]
    fn signatures_bind_pid_nonce_and_text() {
        let k = EngineKey::new(vec![7; 64]);
        let a = k.sign(1, 5, false, "SELECT 1").unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, k.sign(2, 5, false, "SELECT 1").unwrap());
        assert_ne!(a, k.sign(1, 6, false, "SELECT 1").unwrap());
        assert_ne!(a, k.sign(1, 5, true, "SELECT 1").unwrap());
        assert_ne!(a, k.sign(1, 5, false, "SELECT 2").unwrap());
    }
}
