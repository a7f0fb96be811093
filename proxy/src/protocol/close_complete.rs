//! CloseComplete (`3`): a Close succeeded.

use bytes::Bytes;

/// CloseComplete, a message without a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseComplete;

impl CloseComplete {
    /// Decodes a CloseComplete body: it must be empty.
    pub fn decode(body: &[u8]) -> Option<CloseComplete> {
        body.is_empty().then_some(CloseComplete)
    }

    /// Encodes a whole CloseComplete message.
    pub fn encode() -> Bytes {
        Bytes::from_static(b"3\0\0\0\x04")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = CloseComplete::encode();
        assert_eq!(&m[..], &[b'3', 0, 0, 0, 4]);
        assert_eq!(CloseComplete::decode(&m[5..]), Some(CloseComplete));
        assert_eq!(CloseComplete::decode(b"x"), None);
    }
}
