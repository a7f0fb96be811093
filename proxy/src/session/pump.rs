//! The byte pump a session becomes after login: two independent directions, so that
//! asynchronous server messages (Notice, Notification, ParameterStatus) reach an idle client at
//! once and neither side can block the other (COPY, pipelining, Flush-driven drivers).
//!
//! Bytes are forwarded unchanged in the chunks they arrive in. A [`Framer`] on each direction
//! checks every length and, towards the client, captures the ReadyForQuery status byte. With an
//! interceptor, frontend messages it asks for are held back whole and decided on.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::error::SessionError;
use super::intercept::{Interceptor, Verdict};
use super::state::SessionState;
use crate::protocol::error_response::ErrorResponse;
use crate::protocol::framer::{FrameError, Framer};
use crate::protocol::MAX_MESSAGE_LEN;

/// Size of each direction's read buffer.
const CHUNK: usize = 64 * 1024;

/// Pumps bytes both ways until either side closes.
pub async fn pump<C, U>(
    client: C,
    client_leftover: BytesMut,
    upstream: U,
    upstream_leftover: BytesMut,
    state: Arc<SessionState>,
    interceptor: Option<Arc<dyn Interceptor>>,
) -> Result<(), SessionError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (upstream_r, upstream_w) = tokio::io::split(upstream);
    match interceptor {
        None => {
            tokio::select! {
                r = client_to_server(client_r, client_leftover, upstream_w) => r,
                r = server_to_client(upstream_r, upstream_leftover, client_w, &state, None) => r,
            }
        }
        Some(interceptor) => {
            let (answers_tx, answers_rx) = mpsc::channel(64);
            tokio::select! {
                r = client_to_server_intercepted(
                    client_r, client_leftover, upstream_w, &state, &*interceptor, answers_tx,
                ) => r,
                r = server_to_client(
                    upstream_r, upstream_leftover, client_w, &state, Some(answers_rx),
                ) => r,
            }
        }
    }
}

async fn client_to_server<R, W>(
    mut client: R,
    mut buf: BytesMut,
    mut upstream: W,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut framer = Framer::new(MAX_MESSAGE_LEN, b"");
    buf.reserve(CHUNK);
    loop {
        if buf.is_empty() && client.read_buf(&mut buf).await? == 0 {
            let _ = upstream.shutdown().await;
            return Ok(());
        }
        framer.feed(&buf, |_| {})?;
        upstream.write_all(&buf).await?;
        upstream.flush().await?;
        buf.clear();
    }
}

async fn client_to_server_intercepted<R, W>(
    mut client: R,
    mut buf: BytesMut,
    mut upstream: W,
    state: &SessionState,
    interceptor: &dyn Interceptor,
    answers: mpsc::Sender<Bytes>,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Bytes of the current (not held) message still to pass through.
    let mut passing: usize = 0;
    buf.reserve(CHUNK);
    loop {
        if passing > 0 && !buf.is_empty() {
            let n = passing.min(buf.len());
            upstream.write_all(&buf[..n]).await?;
            buf.advance(n);
            passing -= n;
            continue;
        }
        if buf.len() >= 5 {
            let tag = buf[0];
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
            if len < 4 || len - 4 > MAX_MESSAGE_LEN {
                return Err(FrameError {
                    tag: char::from(tag),
                    len,
                }
                .into());
            }
            let total = len as usize + 1;
            if !interceptor.wants(tag) {
                passing = total;
                continue;
            }
            if buf.len() >= total {
                let message = buf.split_to(total).freeze();
                match interceptor.inspect(state, message) {
                    Verdict::Forward(bytes) => upstream.write_all(&bytes).await?,
                    Verdict::Answer(bytes) => {
                        upstream.flush().await?;
                        if answers.send(bytes).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                continue;
            }
            // Grow as bytes arrive, never by the declared length alone.
            buf.reserve((total - buf.len()).min(CHUNK));
        }
        upstream.flush().await?;
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(CHUNK);
        }
        if client.read_buf(&mut buf).await? == 0 {
            let _ = upstream.shutdown().await;
            return Ok(());
        }
    }
}

async fn server_to_client<R, W>(
    mut upstream: R,
    mut buf: BytesMut,
    mut client: W,
    state: &SessionState,
    mut answers: Option<mpsc::Receiver<Bytes>>,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut framer = Framer::new(MAX_MESSAGE_LEN, b"Z");
    let mut last_tag = 0u8;
    let mut pending_answers: Vec<Bytes> = Vec::new();
    buf.reserve(CHUNK);
    loop {
        if buf.is_empty() {
            let read = match answers.as_mut() {
                None => upstream.read_buf(&mut buf).await,
                Some(rx) => tokio::select! {
                    r = upstream.read_buf(&mut buf) => r,
                    Some(answer) = rx.recv() => {
                        pending_answers.push(answer);
                        Ok(usize::MAX)
                    }
                },
            };
            match read {
                Ok(usize::MAX) => {}
                Ok(0) | Err(_) => {
                    upstream_gone(&mut client, &framer, last_tag).await;
                    return Ok(());
                }
                Ok(_) => {}
            }
        }
        if !buf.is_empty() {
            framer.feed(&buf, |f| {
                if f.tag == b'Z' {
                    if let Some(&status) = f.captured.first() {
                        state.set_tx_status(status);
                    }
                }
                last_tag = f.tag;
            })?;
            client.write_all(&buf).await?;
            buf.clear();
        }
        // Answers of the interceptor go out only between two server messages.
        if framer.at_boundary() {
            for answer in pending_answers.drain(..) {
                client.write_all(&answer).await?;
            }
        }
        client.flush().await?;
    }
}

/// The upstream connection ended. Unless the server said why (it sends a FATAL error before
/// closing on shutdown or termination), tell the client, if that can be done between messages.
async fn upstream_gone<W: AsyncWrite + Unpin>(client: &mut W, framer: &Framer, last_tag: u8) {
    if framer.at_boundary() && last_tag != b'E' {
        let err = ErrorResponse::fatal(
            "08006",
            "proxy: the upstream server closed the connection unexpectedly",
        )
        .with_hint("the server may have been restarted; reconnect to start a new session");
        let _ = client.write_all(&err.encode()).await;
        let _ = client.flush().await;
    }
    let _ = client.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ready_for_query::TransactionStatus;
    use tokio::io::duplex;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[tokio::test]
    async fn tracks_transaction_status_and_forwards_bytes_unchanged() {
        let (client_side, mut client) = duplex(1 << 16);
        let (upstream_side, mut server) = duplex(1 << 16);
        let state = Arc::new(SessionState::new("u".into(), "d".into()));
        let pump_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            pump(
                client_side,
                BytesMut::new(),
                upstream_side,
                BytesMut::new(),
                pump_state,
                None,
            )
            .await
        });
        let query = msg(b'Q', b"begin\0");
        client.write_all(&query).await.unwrap();
        let mut got = vec![0; query.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, query);

        // The answer arrives cut in the middle of ReadyForQuery.
        let mut answer = msg(b'C', b"BEGIN\0");
        answer.extend(msg(b'Z', b"T"));
        let cut = answer.len() - 1;
        server.write_all(&answer[..cut]).await.unwrap();
        server.flush().await.unwrap();
        tokio::task::yield_now().await;
        server.write_all(&answer[cut..]).await.unwrap();
        let mut got = vec![0; answer.len()];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, answer);
        assert_eq!(state.tx_status(), TransactionStatus::InTransaction);

        server.write_all(&msg(b'Z', b"E")).await.unwrap();
        let mut got = vec![0; 6];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(state.tx_status(), TransactionStatus::Failed);

        // The client hangs up: the pump ends and the server sees end of stream.
        drop(client);
        task.await.unwrap().unwrap();
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    struct AnswerSelectOne;

    impl Interceptor for AnswerSelectOne {
        fn wants(&self, tag: u8) -> bool {
            tag == b'Q'
        }

        fn inspect(&self, _session: &SessionState, message: Bytes) -> Verdict {
            if &message[5..] == b"intercept me\0" {
                let mut answer = msg(b'I', b"");
                answer.extend(TransactionStatus::Idle.encode());
                Verdict::Answer(Bytes::from(answer))
            } else {
                Verdict::Forward(message)
            }
        }
    }

    #[tokio::test]
    async fn an_interceptor_answers_held_messages_and_forwards_the_rest() {
        let (client_side, mut client) = duplex(1 << 16);
        let (upstream_side, mut server) = duplex(1 << 16);
        let state = Arc::new(SessionState::new("u".into(), "d".into()));
        tokio::spawn(pump(
            client_side,
            BytesMut::new(),
            upstream_side,
            BytesMut::new(),
            state,
            Some(Arc::new(AnswerSelectOne)),
        ));
        // Three messages in one write: forwarded, answered by the interceptor, forwarded.
        let mut batch = msg(b'Q', b"select 1\0");
        batch.extend(msg(b'Q', b"intercept me\0"));
        batch.extend(msg(b'S', b""));
        client.write_all(&batch).await.unwrap();
        let mut answer = vec![0; 5 + 6];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer[0], b'I');
        assert_eq!(&answer[5..], &TransactionStatus::Idle.encode());
        let mut forwarded = vec![0; 14 + 5];
        server.read_exact(&mut forwarded).await.unwrap();
        let mut expected = msg(b'Q', b"select 1\0");
        expected.extend(msg(b'S', b""));
        assert_eq!(forwarded, expected);
    }
}
