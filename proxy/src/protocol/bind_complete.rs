//! BindComplete (`2`): a Bind succeeded.

use bytes::Bytes;

/// BindComplete, a message without a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindComplete;

impl BindComplete {
    /// Decodes a BindComplete body: it must be empty.
    pub fn decode(body: &[u8]) -> Option<BindComplete> {
        body.is_empty().then_some(BindComplete)
    }

    /// Encodes a whole BindComplete message.
    pub fn encode() -> Bytes {
        Bytes::from_static(b"2\0\0\0\x04")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = BindComplete::encode();
        assert_eq!(&m[..], &[b'2', 0, 0, 0, 4]);
        assert_eq!(BindComplete::decode(&m[5..]), Some(BindComplete));
        assert_eq!(BindComplete::decode(b"x"), None);
    }
}
