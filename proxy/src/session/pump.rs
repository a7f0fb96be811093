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
use tokio::sync::{mpsc, oneshot, Notify};

use super::error::SessionError;
use super::intercept::{Interceptor, SessionJob, Verdict};
use super::pending::{Answered, Pending};
use super::session_sql::SessionSql;
use super::state::SessionState;
use crate::protocol::command_complete::is_write_tag;
use crate::protocol::error_response::ErrorResponse;
use crate::protocol::framer::{message_header, Framer};
use crate::protocol::MAX_MESSAGE_LEN;

/// A Flush message: makes the server send the answers it holds back in a batch.
const FLUSH: [u8; 5] = [b'H', 0, 0, 0, 4];

/// Size of each direction's read buffer.
const CHUNK: usize = 64 * 1024;

/// A held message larger than this leaves its buffer reallocated at [`CHUNK`] once handled,
/// so that an idle session does not keep the memory of the largest message it ever sent.
const SHRINK_AFTER: usize = 1 << 20;

/// A fresh buffer of [`CHUNK`] bytes holding what `buf` still holds (the bytes read after a
/// large message); the large allocation is freed once the message itself is dropped.
fn give_back(buf: BytesMut) -> BytesMut {
    let mut fresh = BytesMut::with_capacity(CHUNK.max(buf.len()));
    fresh.extend_from_slice(&buf);
    fresh
}

/// Pumps bytes both ways until either side closes.
pub async fn pump<C, U>(
    client: C,
    client_leftover: BytesMut,
    upstream: U,
    upstream_leftover: BytesMut,
    state: Arc<SessionState>,
    interceptor: Option<Box<dyn Interceptor>>,
) -> Result<(), SessionError>
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    U: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (client_r, client_w) = tokio::io::split(client);
    let (upstream_r, upstream_w) = tokio::io::split(upstream);
    pump_halves(
        (client_r, client_w),
        client_leftover,
        (upstream_r, upstream_w),
        upstream_leftover,
        state,
        interceptor,
    )
    .await
}

/// [`pump`] over connections already split into read and write halves (plain TCP splits
/// without the lock that [`tokio::io::split`] takes on every poll).
pub async fn pump_halves<CR, CW, UR, UW>(
    (client_r, client_w): (CR, CW),
    client_leftover: BytesMut,
    (upstream_r, upstream_w): (UR, UW),
    upstream_leftover: BytesMut,
    state: Arc<SessionState>,
    interceptor: Option<Box<dyn Interceptor>>,
) -> Result<(), SessionError>
where
    CR: AsyncRead + Unpin + Send,
    CW: AsyncWrite + Unpin + Send,
    UR: AsyncRead + Unpin + Send,
    UW: AsyncWrite + Unpin + Send,
{
    match interceptor {
        None => {
            tokio::select! {
                r = client_to_server(client_r, client_leftover, upstream_w, &state) => r,
                r = server_to_client(upstream_r, upstream_leftover, client_w, &state, None) => r,
            }
        }
        Some(mut interceptor) => {
            let (control_tx, control_rx) = mpsc::channel(4);
            let outstanding = Pending::default();
            let from_server = Some(ServerControl {
                control: control_rx,
                outstanding: &outstanding,
                on_write_commit: interceptor.write_listener(),
            });
            let to_server = InterceptedClientToServer {
                state: &state,
                interceptor: &mut *interceptor,
                control: control_tx,
                outstanding: &outstanding,
            };
            tokio::select! {
                r = to_server.run(client_r, client_leftover, upstream_w) => r,
                r = server_to_client(upstream_r, upstream_leftover, client_w, &state, from_server) => r,
            }
        }
    }
}

async fn client_to_server<R, W>(
    mut client: R,
    mut buf: BytesMut,
    mut upstream: W,
    state: &SessionState,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut framer = Framer::new(MAX_MESSAGE_LEN, b"");
    buf.reserve(CHUNK);
    loop {
        if buf.is_empty() {
            let n = client.read_buf(&mut buf).await?;
            if n == 0 {
                let _ = upstream.shutdown().await;
                return Ok(());
            }
            state.client_bytes(n);
        }
        framer.feed(&buf, |f| {
            if f.tag == b'X' {
                state.set_terminated();
            }
        })?;
        upstream.write_all(&buf).await?;
        upstream.flush().await?;
        buf.clear();
    }
}

/// The upstream read side, lent to the client-to-server direction while a job runs.
struct Lent<R> {
    reader: R,
    buf: BytesMut,
    back: oneshot::Sender<(R, BytesMut, Vec<Bytes>)>,
}

/// Requests from the client-to-server direction to the server-to-client direction.
enum Control<R> {
    /// Write these bytes to the client (the session is idle).
    Answer(Bytes),
    /// Lend the upstream reader (the session is idle).
    Lend(oneshot::Sender<Lent<R>>),
}

struct ServerControl<'a, R> {
    control: mpsc::Receiver<Control<R>>,
    outstanding: &'a Pending,
    on_write_commit: Option<Arc<Notify>>,
}

struct InterceptedClientToServer<'a, R> {
    state: &'a SessionState,
    interceptor: &'a mut dyn Interceptor,
    control: mpsc::Sender<Control<R>>,
    outstanding: &'a Pending,
}

impl<UR: AsyncRead + Unpin + Send> InterceptedClientToServer<'_, UR> {
    async fn run<CR, W>(
        self,
        mut client: CR,
        mut buf: BytesMut,
        mut upstream: W,
    ) -> Result<(), SessionError>
    where
        CR: AsyncRead + Unpin,
        W: AsyncWrite + Unpin + Send,
    {
        // Bytes of the current (not held) message still to pass through.
        let mut passing: usize = 0;
        buf.reserve(CHUNK);
        loop {
            // Forward, in one write, every message up to the next one the interceptor holds.
            let mut pos = passing.min(buf.len());
            passing -= pos;
            while passing == 0 {
                let Some((tag, total)) = message_header(&buf[pos..], MAX_MESSAGE_LEN)? else {
                    break;
                };
                if self.interceptor.wants(tag) {
                    break;
                }
                self.count(tag);
                if tag == b'X' {
                    self.state.set_terminated();
                }
                let available = buf.len() - pos;
                if available >= total {
                    pos += total;
                } else {
                    passing = total - available;
                    pos = buf.len();
                }
            }
            if pos > 0 {
                upstream.write_all(&buf[..pos]).await?;
                buf.advance(pos);
            }
            let held = match passing {
                0 => match message_header(&buf, MAX_MESSAGE_LEN)? {
                    Some((tag, total)) if self.interceptor.wants(tag) => Some(total),
                    _ => None,
                },
                _ => None,
            };
            if let Some(total) = held {
                if buf.len() >= total {
                    let message = buf.split_to(total).freeze();
                    let verdict = self.interceptor.inspect(self.state, message).await;
                    if total > SHRINK_AFTER {
                        buf = give_back(buf);
                    }
                    match verdict {
                        Verdict::Forward(bytes) => {
                            if let Some(&t) = bytes.first() {
                                self.count(t);
                            }
                            upstream.write_all(&bytes).await?
                        }
                        Verdict::Answer(bytes) => {
                            self.drain(&mut upstream).await?;
                            // A batch the server failed skips to Sync: so does the engine.
                            if !self.state.batch_failed()
                                && self.control.send(Control::Answer(bytes)).await.is_err()
                            {
                                return Ok(());
                            }
                        }
                        Verdict::Run(job) => {
                            self.drain(&mut upstream).await?;
                            if !self.state.batch_failed() && !self.run_job(job, &mut upstream).await
                            {
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
            let n = client.read_buf(&mut buf).await?;
            if n == 0 {
                let _ = upstream.shutdown().await;
                return Ok(());
            }
            self.state.client_bytes(n);
        }
    }

    fn count(&self, tag: u8) {
        self.outstanding.sent(tag);
        match tag {
            b'P' | b'B' | b'E' | b'D' | b'C' => self.state.set_unsynced(true),
            b'S' => self.state.set_unsynced(false),
            _ => {}
        }
    }

    /// Sends what was forwarded and waits until the server answered all of it: inside an
    /// open batch, after a Flush (the server may otherwise hold its answers until Sync).
    async fn drain<W: AsyncWrite + Unpin + Send>(&self, upstream: &mut W) -> std::io::Result<()> {
        if self.state.unsynced() {
            upstream.write_all(&FLUSH).await?;
        }
        upstream.flush().await?;
        self.outstanding.wait_idle().await;
        Ok(())
    }

    /// Waits for the session to be idle, borrows the upstream reader, runs the job, and sends
    /// its answer to the client; then runs the job's housekeeping, if any, the same way (its
    /// answer dropped). False when the other direction has ended.
    async fn run_job<W: AsyncWrite + Unpin + Send>(
        &self,
        job: Box<dyn SessionJob>,
        upstream: &mut W,
    ) -> bool {
        let mut next = Some((job, true));
        while let Some((job, answer)) = next.take() {
            match self.lend_and_run(job, answer, upstream).await {
                None => return false,
                Some(then) => next = then.map(|j| (j, false)),
            }
        }
        true
    }

    /// One job of [`Self::run_job`]: returns its housekeeping, or None when the other
    /// direction has ended.
    async fn lend_and_run<W: AsyncWrite + Unpin + Send>(
        &self,
        job: Box<dyn SessionJob>,
        answer: bool,
        upstream: &mut W,
    ) -> Option<Option<Box<dyn SessionJob>>> {
        self.outstanding.wait_idle().await;
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Lend(tx)).await.is_err() {
            return None;
        }
        let Ok(Lent {
            mut reader,
            mut buf,
            back,
        }) = rx.await
        else {
            return None;
        };
        let mut sql = SessionSql::new(&mut reader, upstream, &mut buf, self.state.tx_status());
        if self.state.unsynced() {
            // In the middle of a batch the last ReadyForQuery is stale (a BEGIN may have run
            // since): an empty query tells the job where the session stands.
            let _ = sql.simple_query("").await;
        }
        let output = job.run(&mut sql).await;
        let status = sql.tx_status();
        let mut for_client = std::mem::take(&mut sql.for_client);
        if answer {
            for_client.push(output.answer);
        }
        self.state.set_tx_status(status as u8);
        back.send((reader, buf, for_client)).ok()?;
        Some(output.then)
    }
}

async fn server_to_client<R, W>(
    upstream: R,
    mut buf: BytesMut,
    mut client: W,
    state: &SessionState,
    mut control: Option<ServerControl<'_, R>>,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut upstream = Some(upstream);
    let mut framer = Framer::new(
        MAX_MESSAGE_LEN,
        if control.is_some() { b"ZC" } else { b"Z" },
    );
    let mut last_tag = 0u8;
    let mut wrote = false;
    let mut pending: Option<Control<R>> = None;
    buf.reserve(CHUNK);
    loop {
        let Some(reader) = upstream.as_mut() else {
            return Ok(());
        };
        if buf.is_empty() {
            let read = match control.as_mut() {
                // Requests first: the client-to-server direction queues an answer before it
                // forwards the messages that follow it, so draining the queue before reading
                // the server keeps answers and server responses in the client's order.
                Some(ctl) if pending.is_none() => tokio::select! {
                    biased;
                    Some(request) = ctl.control.recv() => {
                        pending = Some(request);
                        Ok(usize::MAX)
                    }
                    r = reader.read_buf(&mut buf) => r,
                },
                _ => reader.read_buf(&mut buf).await,
            };
            match read {
                Ok(0) | Err(_) => {
                    if !state.terminated() {
                        upstream_gone(&mut client, &framer, last_tag).await;
                    }
                    return Ok(());
                }
                Ok(usize::MAX) => {}
                Ok(n) => state.server_bytes(n),
            }
        }
        if !buf.is_empty() {
            let outstanding = control.as_ref().map(|c| c.outstanding);
            let on_write_commit = control.as_ref().and_then(|c| c.on_write_commit.as_ref());
            framer.feed(&buf, |f| {
                match f.tag {
                    b'Z' => {
                        if let Some(&status) = f.captured.first() {
                            state.set_tx_status(status);
                            if status == b'I' && wrote {
                                wrote = false;
                                if let Some(n) = on_write_commit {
                                    n.notify_one();
                                }
                            }
                        }
                    }
                    b'C' => wrote |= is_write_tag(f.captured),
                    _ => {}
                }
                if let Some(o) = outstanding {
                    match o.received(f.tag) {
                        Answered::BatchFailed => state.set_batch_failed(true),
                        Answered::Synced => state.set_batch_failed(false),
                        Answered::Nothing => {}
                    }
                }
                last_tag = f.tag;
            })?;
            client.write_all(&buf).await?;
            buf.clear();
        }
        // Requests of the interceptor are served only between two server messages.
        if framer.at_boundary() {
            match pending.take() {
                Some(Control::Answer(bytes)) => client.write_all(&bytes).await?,
                Some(Control::Lend(reply)) => {
                    let (back, returned) = oneshot::channel();
                    let Some(reader) = upstream.take() else {
                        return Ok(());
                    };
                    let lent = Lent {
                        reader,
                        buf: std::mem::take(&mut buf),
                        back,
                    };
                    if reply.send(lent).is_err() {
                        return Ok(());
                    }
                    let Ok((reader, rest, for_client)) = returned.await else {
                        return Ok(());
                    };
                    upstream = Some(reader);
                    buf = rest;
                    buf.reserve(CHUNK);
                    for bytes in for_client {
                        client.write_all(&bytes).await?;
                    }
                }
                None => {}
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

        fn inspect<'a>(
            &'a mut self,
            _session: &'a SessionState,
            message: Bytes,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Verdict> + Send + 'a>> {
            Box::pin(async move {
                if &message[5..] == b"intercept me\0" {
                    let mut answer = msg(b'I', b"");
                    answer.extend(TransactionStatus::Idle.encode());
                    Verdict::Answer(Bytes::from(answer))
                } else {
                    Verdict::Forward(message)
                }
            })
        }
    }

    #[tokio::test]
    async fn an_interceptor_answers_in_order_and_forwards_the_rest() {
        let (client_side, mut client) = duplex(1 << 16);
        let (upstream_side, mut server) = duplex(1 << 16);
        let state = Arc::new(SessionState::new("u".into(), "d".into()));
        tokio::spawn(pump(
            client_side,
            BytesMut::new(),
            upstream_side,
            BytesMut::new(),
            state,
            Some(Box::new(AnswerSelectOne)),
        ));
        // Three messages in one write: forwarded, answered by the interceptor, forwarded.
        let mut batch = msg(b'Q', b"select 1\0");
        batch.extend(msg(b'Q', b"intercept me\0"));
        batch.extend(msg(b'S', b""));
        client.write_all(&batch).await.unwrap();
        let first = msg(b'Q', b"select 1\0");
        let mut got = vec![0; first.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, first);
        // The answer waits until the server has answered the first query.
        let mut reply = msg(b'C', b"SELECT 1\0");
        reply.extend(TransactionStatus::Idle.encode());
        server.write_all(&reply).await.unwrap();
        let mut expected = reply.clone();
        expected.extend(msg(b'I', b""));
        expected.extend(TransactionStatus::Idle.encode());
        let mut got = vec![0; expected.len()];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, expected);
        let sync = msg(b'S', b"");
        let mut got = vec![0; sync.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, sync);
    }
}
