//! `--client-write-timeout-seconds`: a client that stops reading (or whose host vanished with
//! data in flight) while the server has more to send it would hold its server connection, and
//! whatever locks its transaction holds, for as long as TCP keeps trying. [`WriteDeadline`]
//! wraps the client's side of a session and fails a write that has made no progress for the
//! timeout, which ends the session and closes its server connection.
//!
//! The timer is armed only while a write is pending (the client is slower than the server) and
//! reset on progress: a write that completes at once costs a branch, not a timer.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A stream whose writes fail with `TimedOut` after `timeout` without progress.
pub struct WriteDeadline<S> {
    inner: S,
    timeout: Option<Duration>,
    /// Armed while a write is pending.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<S> WriteDeadline<S> {
    /// Wraps `inner`; `None` never times out.
    pub fn new(inner: S, timeout: Option<Duration>) -> WriteDeadline<S> {
        WriteDeadline {
            inner,
            timeout,
            timer: None,
            armed: false,
        }
    }

    fn pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(timeout) = self.timeout else {
            return Poll::Pending;
        };
        if !self.armed {
            let deadline = Instant::now() + timeout;
            match &mut self.timer {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        match &mut self.timer {
            Some(t) => {
                ready!(t.as_mut().poll(cx));
                Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the client read nothing for {} s (--client-write-timeout-seconds)",
                        timeout.as_secs()
                    ),
                ))
            }
            None => Poll::Pending,
        }
    }

    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(r) => {
                self.armed = false;
                Poll::Ready(r)
            }
            Poll::Pending => self.pending(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(cx, poll)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_reader_that_stops_fails_the_write() {
        let ms = Duration::from_millis;
        let (a, mut b) = tokio::io::duplex(16);
        let mut w = WriteDeadline::new(a, Some(ms(300)));
        // Progress resets the timer: 6 slow reads over 600 ms are fine.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            for _ in 0..6 {
                tokio::time::sleep(ms(100)).await;
                b.read_exact(&mut buf).await.unwrap();
            }
            b
        });
        w.write_all(&[0u8; 16 * 7]).await.unwrap();
        let _b = reader.await.unwrap();
        // Nobody reads any more: the write fails after the timeout.
        let start = Instant::now();
        let err = w.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= ms(300), "{:?}", start.elapsed());
        // Without a timeout it never fails.
        let (a, _b) = tokio::io::duplex(16);
        let mut w = WriteDeadline::new(a, None);
        assert!(tokio::time::timeout(ms(500), w.write_all(&[0u8; 64]))
            .await
            .is_err());
    }
}
