//! NegotiateProtocolVersion (`v`): the answer to a client that asks for a newer minor version
//! or for `_pq_.*` protocol options.
//!
//! The version field holds the whole protocol version (major in the high 16 bits), as
//! PostgreSQL sends it (`0x0003_0000` for 3.0) and as libpq 18 reads it: libpq 18, which asks
//! for 3.2 when told to, refuses a bare minor number as a downgrade below 3.0.

use bytes::{BufMut, Bytes, BytesMut};

/// Protocol version 3.0 as the wire carries it.
pub const PROTOCOL_3_0: u32 = 3 << 16;

/// Encodes NegotiateProtocolVersion offering 3.0 and naming the unrecognised options.
pub fn encode(unrecognised: &[&[u8]]) -> Bytes {
    let mut buf = BytesMut::with_capacity(16);
    buf.put_u8(b'v');
    buf.put_u32(0);
    buf.put_u32(PROTOCOL_3_0); // the newest version supported
    buf.put_u32(unrecognised.len() as u32);
    for opt in unrecognised {
        buf.put_slice(opt);
        buf.put_u8(0);
    }
    let len = (buf.len() - 1) as u32;
    buf[1..5].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_options() {
        let b = super::encode(&[b"_pq_.a"]);
        assert_eq!(&b[..1], b"v");
        assert_eq!(
            u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize,
            b.len() - 1
        );
        assert_eq!(&b[5..13], &[0, 3, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&b[13..], b"_pq_.a\0");
    }
}
