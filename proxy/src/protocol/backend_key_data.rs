//! BackendKeyData (`K`): the key a client uses to cancel its running query.

use bytes::{BufMut, Bytes, BytesMut};

/// A process id and secret key pair, as in BackendKeyData and CancelRequest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendKey {
    /// Process id (PostgreSQL's pid, or the proxy's own id for a client).
    pub pid: u32,
    /// Secret key.
    pub secret: u32,
}

impl BackendKey {
    /// Parses a BackendKeyData body (8 bytes in protocol 3.0).
    pub fn parse(body: &[u8]) -> Option<BackendKey> {
        let b: &[u8; 8] = body.try_into().ok()?;
        Some(BackendKey {
            pid: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            secret: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        })
    }

    /// Encodes a whole BackendKeyData message.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(13);
        buf.put_u8(b'K');
        buf.put_u32(12);
        buf.put_u32(self.pid);
        buf.put_u32(self.secret);
        buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let k = BackendKey {
            pid: 42,
            secret: 0xdead_beef,
        };
        let enc = k.encode();
        assert_eq!(BackendKey::parse(&enc[5..]), Some(k));
        assert_eq!(BackendKey::parse(&enc[5..12]), None);
    }
}
