//! CommandComplete (`C`): a statement finished; its command tag (`SELECT 1`, `INSERT 0 3`...).

use bytes::BytesMut;

use super::codec::{begin, end, put_cstr, Reader};

/// A decoded CommandComplete body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandComplete<'a> {
    /// The command tag, as sent.
    pub tag: &'a [u8],
}

impl<'a> CommandComplete<'a> {
    /// Decodes a CommandComplete body; None when the tag has no terminating NUL.
    pub fn decode(body: &'a [u8]) -> Option<CommandComplete<'a>> {
        Some(CommandComplete {
            tag: Reader::new(body).cstr_bytes()?,
        })
    }

    /// Appends a CommandComplete with `tag` to `buf`.
    pub fn encode(buf: &mut BytesMut, tag: &str) {
        let start = begin(buf, b'C');
        put_cstr(buf, tag.as_bytes());
        end(buf, start);
    }
}

/// The row count a command tag ends with (`INSERT 0 3`, `SELECT 2`, `COPY 5`), if any.
pub fn rows_in_tag(tag: &str) -> Option<u64> {
    let (_, count) = tag.rsplit_once(' ')?;
    count.parse().ok()
}

/// True for the command tags of statements that write (INSERT, UPDATE, DELETE, COPY, MERGE).
pub fn is_write_tag(tag: &[u8]) -> bool {
    [&b"INSERT"[..], b"UPDATE", b"DELETE", b"COPY", b"MERGE"]
        .iter()
        .any(|w| tag.starts_with(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut buf = BytesMut::new();
        CommandComplete::encode(&mut buf, "SELECT 1");
        assert_eq!(&buf[..], b"C\0\0\0\x0dSELECT 1\0");
        assert_eq!(
            CommandComplete::decode(&buf[5..]),
            Some(CommandComplete { tag: b"SELECT 1" })
        );
    }

    #[test]
    fn refuses_malformed_bodies() {
        assert_eq!(CommandComplete::decode(b""), None);
        assert_eq!(CommandComplete::decode(b"SELECT 1"), None);
    }

    #[test]
    fn rows_in_command_tags() {
        assert_eq!(rows_in_tag("INSERT 0 3"), Some(3));
        assert_eq!(rows_in_tag("UPDATE 12"), Some(12));
        assert_eq!(rows_in_tag("DELETE 0"), Some(0));
        assert_eq!(rows_in_tag("SELECT 1"), Some(1));
        assert_eq!(rows_in_tag("MERGE 7"), Some(7));
        assert_eq!(rows_in_tag("COPY 5"), Some(5));
        assert_eq!(rows_in_tag("CREATE TABLE"), None);
        assert_eq!(rows_in_tag("BEGIN"), None);
        assert_eq!(rows_in_tag("123"), None);
        assert_eq!(rows_in_tag(""), None);
    }

    #[test]
    fn write_tags() {
        assert!(is_write_tag(b"INSERT 0 3\0"));
        assert!(is_write_tag(b"MERGE 1"));
        assert!(!is_write_tag(b"SELECT 3"));
        assert!(!is_write_tag(b""));
    }
}
