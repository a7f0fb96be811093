//! Reading whole tagged messages during startup and authentication, with a buffer so that a
//! burst of small messages (ParameterStatus...) costs one read. Whatever is left in the buffer
//! when the session turns into a byte pump is handed over, not lost.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::error::SessionError;
use crate::protocol::framer::message_header;

/// Buffers one direction of a connection and cuts whole messages out of it.
#[derive(Debug, Default)]
pub struct MessageReader {
    buf: BytesMut,
}

impl MessageReader {
    /// A reader with an empty buffer.
    pub fn new() -> MessageReader {
        MessageReader {
            buf: BytesMut::with_capacity(8192),
        }
    }

    /// Reads the next whole message (tag, length and body) whose body is at most `max_body`
    /// bytes; the length is checked before the body is read.
    pub async fn next<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        max_body: u32,
    ) -> Result<Bytes, SessionError> {
        loop {
            if let Some((_, total)) = message_header(&self.buf, max_body)? {
                if self.buf.len() >= total {
                    return Ok(self.buf.split_to(total).freeze());
                }
                self.buf.reserve(total - self.buf.len());
            }
            if stream.read_buf(&mut self.buf).await? == 0 {
                return Err(SessionError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// The bytes read but not yet consumed.
    pub fn into_leftover(self) -> BytesMut {
        self.buf
    }
}
