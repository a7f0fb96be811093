//! Describe (`D`): asks for the parameter and row descriptions of a prepared statement, or the
//! row description of a portal (extended protocol).

use bytes::{Bytes, BytesMut};

use super::codec::{begin, end, put_cstr, Reader};

/// What a Describe or Close names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `S`: a prepared statement.
    Statement,
    /// `P`: a portal.
    Portal,
}

impl Target {
    /// Parses the kind byte.
    pub fn from_byte(b: u8) -> Option<Target> {
        match b {
            b'S' => Some(Target::Statement),
            b'P' => Some(Target::Portal),
            _ => None,
        }
    }

    /// The kind byte.
    pub fn as_byte(self) -> u8 {
        match self {
            Target::Statement => b'S',
            Target::Portal => b'P',
        }
    }

    /// Decodes the body shared by Describe and Close: kind byte, then name.
    pub(super) fn decode_named(body: &[u8]) -> Option<(Target, &str)> {
        let mut r = Reader::new(body);
        let target = Target::from_byte(r.u8()?)?;
        Some((target, r.cstr()?))
    }

    /// Encodes a whole message with `tag` and the body shared by Describe and Close.
    pub(super) fn encode_named(tag: u8, target: Target, name: &str) -> Bytes {
        let mut buf = BytesMut::with_capacity(name.len() + 7);
        let start = begin(&mut buf, tag);
        buf.extend_from_slice(&[target.as_byte()]);
        put_cstr(&mut buf, name.as_bytes());
        end(&mut buf, start);
        buf.freeze()
    }
}

/// A decoded Describe body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Describe<'a> {
    /// A statement or a portal.
    pub target: Target,
    /// Its name.
    pub name: &'a str,
}

impl<'a> Describe<'a> {
    /// Decodes a Describe body; None when the kind is neither `S` nor `P` or the name is
    /// malformed.
    pub fn decode(body: &'a [u8]) -> Option<Describe<'a>> {
        let (target, name) = Target::decode_named(body)?;
        Some(Describe { target, name })
    }

    /// Encodes a whole Describe message.
    pub fn encode(target: Target, name: &str) -> Bytes {
        Target::encode_named(b'D', target, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for target in [Target::Statement, Target::Portal] {
            let m = Describe::encode(target, "s1");
            assert_eq!(m[0], b'D');
            assert_eq!(m.len(), 9);
            assert_eq!(
                Describe::decode(&m[5..]),
                Some(Describe { target, name: "s1" })
            );
        }
    }

    #[test]
    fn refuses_malformed_bodies() {
        assert_eq!(Describe::decode(b""), None);
        assert_eq!(Describe::decode(b"S"), None);
        assert_eq!(Describe::decode(b"Ss1"), None);
        assert_eq!(Describe::decode(b"Xs1\0"), None);
        assert_eq!(Describe::decode(b"S\xff\0"), None);
    }
}
