//! Bind (`B`): binds parameter values to a prepared statement, making a portal (extended
//! protocol).

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{begin, end, put_cstr, Reader};

/// A decoded Bind body. The result-column format codes that follow the values are not read:
/// the statements the proxy answers itself return text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    /// The portal's name (empty: the unnamed portal).
    pub portal: &'a str,
    /// The prepared statement's name.
    pub statement: &'a str,
    /// Parameter format codes (0 text, 1 binary): none (all text), one (for all), or one per
    /// parameter.
    pub formats: Vec<i16>,
    /// Parameter values; None is NULL.
    pub values: Vec<Option<&'a [u8]>>,
}

impl<'a> Bind<'a> {
    /// The portal and statement names alone, the first two fields; None when either is
    /// malformed.
    pub fn target(body: &'a [u8]) -> Option<(&'a str, &'a str)> {
        let mut r = Reader::new(body);
        Some((r.cstr()?, r.cstr()?))
    }

    /// Decodes the names, the parameter format codes and the values; None when any is
    /// truncated or malformed.
    pub fn decode(body: &'a [u8]) -> Option<Bind<'a>> {
        let mut r = Reader::new(body);
        let portal = r.cstr()?;
        let statement = r.cstr()?;
        let nformats = r.i16()?;
        let mut formats = Vec::new();
        for _ in 0..nformats {
            formats.push(r.i16()?);
        }
        let nvalues = usize::try_from(r.i16()?).ok()?;
        let mut values = Vec::new();
        for _ in 0..nvalues {
            let len = r.i32()?;
            values.push(match usize::try_from(len) {
                Ok(len) => Some(r.bytes(len)?),
                Err(_) => None,
            });
        }
        Some(Bind {
            portal,
            statement,
            formats,
            values,
        })
    }

    /// True when parameter `i` is sent in binary format.
    pub fn is_binary(&self, i: usize) -> bool {
        match self.formats.len() {
            0 => false,
            1 => self.formats[0] == 1,
            _ => self.formats.get(i).copied() == Some(1),
        }
    }

    /// Encodes a whole Bind message.
    pub fn encode(
        portal: &str,
        statement: &str,
        formats: &[i16],
        values: &[Option<&[u8]>],
        result_formats: &[i16],
    ) -> Bytes {
        let mut buf = BytesMut::with_capacity(64);
        let start = begin(&mut buf, b'B');
        put_cstr(&mut buf, portal.as_bytes());
        put_cstr(&mut buf, statement.as_bytes());
        buf.put_i16(formats.len() as i16);
        for &f in formats {
            buf.put_i16(f);
        }
        buf.put_i16(values.len() as i16);
        for v in values {
            match v {
                Some(v) => {
                    buf.put_i32(v.len() as i32);
                    buf.put_slice(v);
                }
                None => buf.put_i32(-1),
            }
        }
        buf.put_i16(result_formats.len() as i16);
        for &f in result_formats {
            buf.put_i16(f);
        }
        end(&mut buf, start);
        buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = Bind::encode("p", "s", &[0, 1], &[Some(b"x"), None], &[0]);
        assert_eq!(m[0], b'B');
        assert_eq!(
            u32::from_be_bytes([m[1], m[2], m[3], m[4]]) as usize,
            m.len() - 1
        );
        let b = Bind::decode(&m[5..]).unwrap();
        assert_eq!((b.portal, b.statement), ("p", "s"));
        assert_eq!(b.formats, vec![0, 1]);
        assert_eq!(b.values, vec![Some(&b"x"[..]), None]);
        assert!(!b.is_binary(0));
        assert!(b.is_binary(1));
        assert_eq!(Bind::target(&m[5..]), Some(("p", "s")));
    }

    #[test]
    fn format_codes_apply_as_in_postgres() {
        let all_binary = Bind::encode("", "", &[1], &[Some(b"a"), Some(b"b")], &[]);
        let b = Bind::decode(&all_binary[5..]).unwrap();
        assert!(b.is_binary(0) && b.is_binary(1));
        let all_text = Bind::encode("", "", &[], &[Some(b"a")], &[]);
        assert!(!Bind::decode(&all_text[5..]).unwrap().is_binary(0));
    }

    #[test]
    fn refuses_malformed_bodies() {
        let m = Bind::encode("p", "s", &[0], &[Some(b"value")], &[]);
        let body = &m[5..];
        // Truncated anywhere up to the end of the last value.
        for cut in 0..body.len() - 2 {
            assert_eq!(Bind::decode(&body[..cut]), None, "cut at {cut}");
        }
        assert_eq!(Bind::target(b"p\0s"), None);
        // A negative parameter count.
        assert_eq!(Bind::decode(b"\0\0\0\0\xff\xff"), None);
        // A value longer than the body.
        assert_eq!(Bind::decode(b"\0\0\0\0\0\x01\0\0\0\x09abc"), None);
    }
}
