//! The field types messages are made of, shared by the per-message files: a cursor that reads
//! a body's fields without copying (and without panicking on a short or malformed body), and
//! the two halves of writing a message whose length is known only at its end.

use bytes::{BufMut, Bytes, BytesMut};

/// Reads a message body field after field; every read returns None when the body is too short
/// or the field malformed.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `body`.
    pub fn new(body: &'a [u8]) -> Reader<'a> {
        Reader { rest: body }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// A NUL-terminated string's bytes (without the NUL).
    pub fn cstr_bytes(&mut self) -> Option<&'a [u8]> {
        let end = self.rest.iter().position(|&b| b == 0)?;
        let (s, tail) = self.rest.split_at(end);
        self.rest = tail.get(1..)?;
        Some(s)
    }

    /// A NUL-terminated string that must be UTF-8.
    pub fn cstr(&mut self) -> Option<&'a str> {
        let before = *self;
        let s = self.cstr_bytes().and_then(|b| std::str::from_utf8(b).ok());
        if s.is_none() {
            *self = before;
        }
        s
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        let (&b, tail) = self.rest.split_first()?;
        self.rest = tail;
        Some(b)
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (b, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(b)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    /// A big-endian Int16.
    pub fn i16(&mut self) -> Option<i16> {
        self.array().map(i16::from_be_bytes)
    }

    /// A big-endian Int32.
    pub fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }

    /// A big-endian unsigned Int32 (an OID).
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
}

/// Starts a message with `tag` in `buf` (its length is written by [`end`]); returns where it
/// starts.
pub fn begin(buf: &mut BytesMut, tag: u8) -> usize {
    let start = buf.len();
    buf.put_u8(tag);
    buf.put_u32(0);
    start
}

/// Writes the length of the message begun at `start`, which ends at the end of `buf`.
pub fn end(buf: &mut BytesMut, start: usize) {
    let len = (buf.len() - start - 1) as u32;
    buf[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

/// Appends `s` and its terminating NUL.
pub fn put_cstr(buf: &mut BytesMut, s: &[u8]) {
    buf.put_slice(s);
    buf.put_u8(0);
}

/// A whole message with `tag` whose body is one string (Query, CopyFail).
pub fn cstr_message(tag: u8, s: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(s.len() + 6);
    let start = begin(&mut buf, tag);
    put_cstr(&mut buf, s.as_bytes());
    end(&mut buf, start);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_refuses_short_bodies() {
        let mut r = Reader::new(b"ab\0\x00\x01\xff\xff\xff\xfe\x00\x00\x00\x07x");
        assert_eq!(r.cstr(), Some("ab"));
        assert_eq!(r.i16(), Some(1));
        assert_eq!(r.i32(), Some(-2));
        assert_eq!(r.u32(), Some(7));
        assert_eq!(r.u8(), Some(b'x'));
        assert_eq!(r.u8(), None);
        assert_eq!(r.i16(), None);
        assert_eq!(Reader::new(b"no nul").cstr(), None);
        assert_eq!(Reader::new(b"\xff\0").cstr(), None);
        assert_eq!(Reader::new(b"\x00\x01\x02").i32(), None);
        assert_eq!(Reader::new(b"ab").bytes(3), None);
    }

    #[test]
    fn writes_the_length_at_the_end() {
        let mut buf = BytesMut::from(&b"xx"[..]);
        let start = begin(&mut buf, b'C');
        put_cstr(&mut buf, b"SET");
        end(&mut buf, start);
        assert_eq!(&buf[..], b"xxC\0\0\0\x08SET\0");
    }
}
