//! Message framing on the 5-byte header (one tag byte, a big-endian length that counts itself).
//!
//! [`Framer`] walks a byte stream chunk by chunk and reports where messages start, without
//! copying or buffering message bodies: the forwarding path writes the chunk on unchanged. A
//! body that the caller wants to look at (a ReadyForQuery status byte, say) can be captured as it
//! passes, up to a small bound. Lengths are checked before anything depends on them.

use thiserror::Error;

/// A length field that no valid message can carry.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid message length {len} for message type {tag:?}")]
pub struct FrameError {
    /// The message's tag byte, as a char for readable errors.
    pub tag: char,
    /// The length field as sent.
    pub len: u32,
}

/// Checks a message's length field (it counts itself, not the tag) against `max_body` and
/// returns the body length.
pub fn body_len(tag: u8, len: u32, max_body: u32) -> Result<u32, FrameError> {
    if len < 4 || len - 4 > max_body {
        return Err(FrameError {
            tag: char::from(tag),
            len,
        });
    }
    Ok(len - 4)
}

/// The tag and whole length (tag and length field included) of the message that starts at
/// `bytes[0]`, once its 5-byte header is there (None before); an error for an impossible length.
pub fn message_header(bytes: &[u8], max_body: u32) -> Result<Option<(u8, usize)>, FrameError> {
    let Some(h) = bytes.get(..5) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
    Ok(Some((h[0], body_len(h[0], len, max_body)? as usize + 5)))
}

/// A message seen by the framer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The tag byte.
    pub tag: u8,
    /// The body length (the length field minus its own 4 bytes).
    pub body_len: u32,
    /// The captured start of the body, when the caller asked for this tag (see
    /// [`Framer::new`]); reported once the captured part is complete.
    pub captured: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Collecting the 5 header bytes; `have` of them are in `header`.
    Header { have: usize },
    /// Inside a body: `remaining` bytes still to pass.
    Body { remaining: u32 },
    /// Inside a body whose first `want` bytes are being captured; `have` so far.
    Capture {
        tag: u8,
        body_len: u32,
        want: usize,
        have: usize,
    },
}

/// Finds message boundaries in one direction of a connection.
#[derive(Debug, Clone)]
pub struct Framer {
    state: State,
    header: [u8; 5],
    max_len: u32,
    capture_tags: &'static [u8],
    capture: [u8; 16],
}

impl Framer {
    /// A framer that rejects lengths above `max_len` and captures up to 16 body bytes of the
    /// messages whose tag is in `capture_tags`.
    pub fn new(max_len: u32, capture_tags: &'static [u8]) -> Framer {
        Framer {
            state: State::Header { have: 0 },
            header: [0; 5],
            max_len,
            capture_tags,
            capture: [0; 16],
        }
    }

    /// True when the stream is at a message boundary (nothing of a message is pending).
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Header { have: 0 })
    }

    /// Feeds the next chunk of the stream and calls `on_frame` for every message whose header
    /// (and captured body prefix, if asked for) completes inside it.
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        mut on_frame: impl FnMut(Frame<'_>),
    ) -> Result<(), FrameError> {
        while !chunk.is_empty() {
            match self.state {
                State::Body { remaining } => {
                    let n = remaining.min(u32::try_from(chunk.len()).unwrap_or(u32::MAX));
                    chunk = &chunk[n as usize..];
                    self.state = if n == remaining {
                        State::Header { have: 0 }
                    } else {
                        State::Body {
                            remaining: remaining - n,
                        }
                    };
                }
                State::Header { have } => {
                    // Fast path: a whole header in the chunk.
                    let (tag, len, used) = if have == 0 && chunk.len() >= 5 {
                        let len = u32::from_be_bytes([chunk[1], chunk[2], chunk[3], chunk[4]]);
                        (chunk[0], len, 5)
                    } else {
                        let n = (5 - have).min(chunk.len());
                        self.header[have..have + n].copy_from_slice(&chunk[..n]);
                        if have + n < 5 {
                            self.state = State::Header { have: have + n };
                            return Ok(());
                        }
                        let h = self.header;
                        (h[0], u32::from_be_bytes([h[1], h[2], h[3], h[4]]), n)
                    };
                    chunk = &chunk[used..];
                    let body_len = body_len(tag, len, self.max_len)?;
                    if self.capture_tags.contains(&tag) && body_len > 0 {
                        self.state = State::Capture {
                            tag,
                            body_len,
                            want: (body_len as usize).min(self.capture.len()),
                            have: 0,
                        };
                    } else {
                        on_frame(Frame {
                            tag,
                            body_len,
                            captured: &[],
                        });
                        self.state = if body_len == 0 {
                            State::Header { have: 0 }
                        } else {
                            State::Body {
                                remaining: body_len,
                            }
                        };
                    }
                }
                State::Capture {
                    tag,
                    body_len,
                    want,
                    have,
                } => {
                    let n = (want - have).min(chunk.len());
                    self.capture[have..have + n].copy_from_slice(&chunk[..n]);
                    chunk = &chunk[n..];
                    let have = have + n;
                    if have < want {
                        self.state = State::Capture {
                            tag,
                            body_len,
                            want,
                            have,
                        };
                        return Ok(());
                    }
                    on_frame(Frame {
                        tag,
                        body_len,
                        captured: &self.capture[..want],
                    });
                    let remaining = body_len - want as u32;
                    self.state = if remaining == 0 {
                        State::Header { have: 0 }
                    } else {
                        State::Body { remaining }
                    };
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn frames(framer: &mut Framer, chunks: &[&[u8]]) -> Vec<(u8, u32, Vec<u8>)> {
        let mut out = Vec::new();
        for c in chunks {
            framer
                .feed(c, |f| out.push((f.tag, f.body_len, f.captured.to_vec())))
                .unwrap();
        }
        out
    }

    #[test]
    fn finds_messages_in_one_chunk() {
        let mut stream = msg(b'T', b"abc");
        stream.extend(msg(b'Z', b"I"));
        stream.extend(msg(b'C', b""));
        let mut f = Framer::new(1 << 30, b"Z");
        let got = frames(&mut f, &[&stream]);
        assert_eq!(
            got,
            vec![
                (b'T', 3, vec![]),
                (b'Z', 1, b"I".to_vec()),
                (b'C', 0, vec![])
            ]
        );
        assert!(f.at_boundary());
    }

    #[test]
    fn finds_messages_split_at_every_byte() {
        let mut stream = msg(b'D', b"0123456789");
        stream.extend(msg(b'Z', b"T"));
        let mut f = Framer::new(1 << 30, b"Z");
        let chunks: Vec<&[u8]> = stream.chunks(1).collect();
        let got = frames(&mut f, &chunks);
        assert_eq!(got, vec![(b'D', 10, vec![]), (b'Z', 1, b"T".to_vec())]);
        assert!(f.at_boundary());
    }

    #[test]
    fn rejects_short_and_oversized_lengths() {
        let mut f = Framer::new(100, b"");
        assert_eq!(
            f.feed(&[b'Q', 0, 0, 0, 3], |_| {}),
            Err(FrameError { tag: 'Q', len: 3 })
        );
        let mut f = Framer::new(100, b"");
        assert!(f.feed(&[b'Q', 0, 0, 0, 105], |_| {}).is_err());
        let mut f = Framer::new(100, b"");
        assert!(f.feed(&[b'Q', 0, 0, 0, 104], |_| {}).is_ok());
        assert!(!f.at_boundary());
    }
}
