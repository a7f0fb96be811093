//! ParseComplete (`1`): a Parse succeeded.

use bytes::Bytes;

/// ParseComplete, a message without a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseComplete;

impl ParseComplete {
    /// Decodes a ParseComplete body: it must be empty.
    pub fn decode(body: &[u8]) -> Option<ParseComplete> {
        body.is_empty().then_some(ParseComplete)
    }

    /// Encodes a whole ParseComplete message.
    pub fn encode() -> Bytes {
        Bytes::from_static(b"1\0\0\0\x04")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = ParseComplete::encode();
        assert_eq!(&m[..], &[b'1', 0, 0, 0, 4]);
        assert_eq!(ParseComplete::decode(&m[5..]), Some(ParseComplete));
        assert_eq!(ParseComplete::decode(b"x"), None);
    }
}
