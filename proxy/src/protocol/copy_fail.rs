//! CopyFail (`f`): the client aborts a `COPY ... FROM STDIN`, with the reason the server
//! reports in its error.

use bytes::Bytes;

use super::codec::{cstr_message, Reader};

/// A decoded CopyFail body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyFail<'a> {
    /// Why the copy failed.
    pub reason: &'a str,
}

impl<'a> CopyFail<'a> {
    /// Decodes a CopyFail body; None when the reason has no terminating NUL or is not UTF-8.
    pub fn decode(body: &'a [u8]) -> Option<CopyFail<'a>> {
        Some(CopyFail {
            reason: Reader::new(body).cstr()?,
        })
    }

    /// Encodes a whole CopyFail message.
    pub fn encode(reason: &str) -> Bytes {
        cstr_message(b'f', reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = CopyFail::encode("no");
        assert_eq!(&m[..], b"f\0\0\0\x07no\0");
        assert_eq!(CopyFail::decode(&m[5..]), Some(CopyFail { reason: "no" }));
    }

    #[test]
    fn refuses_malformed_bodies() {
        assert_eq!(CopyFail::decode(b"no"), None);
        assert_eq!(CopyFail::decode(b""), None);
    }
}
