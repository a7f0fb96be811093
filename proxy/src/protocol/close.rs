//! Close (`C`): closes a prepared statement or a portal (extended protocol).

use bytes::Bytes;

pub use super::describe::Target;

/// A decoded Close body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close<'a> {
    /// A statement or a portal.
    pub target: Target,
    /// Its name.
    pub name: &'a str,
}

impl<'a> Close<'a> {
    /// Decodes a Close body; None when the kind is neither `S` nor `P` or the name is
    /// malformed.
    pub fn decode(body: &'a [u8]) -> Option<Close<'a>> {
        let (target, name) = Target::decode_named(body)?;
        Some(Close { target, name })
    }

    /// Encodes a whole Close message.
    pub fn encode(target: Target, name: &str) -> Bytes {
        Target::encode_named(b'C', target, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for target in [Target::Statement, Target::Portal] {
            let m = Close::encode(target, "");
            assert_eq!(m[0], b'C');
            assert_eq!(Close::decode(&m[5..]), Some(Close { target, name: "" }));
        }
    }

    #[test]
    fn refuses_malformed_bodies() {
        assert_eq!(Close::decode(b""), None);
        assert_eq!(Close::decode(b"P"), None);
        assert_eq!(Close::decode(b"Pp1"), None);
        assert_eq!(Close::decode(b"Qp1\0"), None);
    }
}
