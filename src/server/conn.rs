//! One task per client connection: the framing (buffered reads, request
//! parsing, ordered and flow-controlled writes) and the memory bounds. What a
//! request does is `dispatch`'s business; pub/sub messages come in through
//! the subscriber queue and are written between replies.
//!
//! Memory per client stays bounded: request bytes are capped by
//! `client-query-buffer-limit` (the client is closed beyond it); replies are
//! written before more input is read once [`OUT_FLUSH`] bytes are pending, so
//! a client that never reads stops being read from instead of growing our
//! buffers; pub/sub messages wait in a bounded queue and a subscriber that
//! lets it fill up is closed (see `pubsub`). With `timeout`, a client that
//! sent nothing for that long is closed, unless it is subscribed (as Redis
//! spares pub/sub clients).

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::ClientHandle;
use super::cmd::Session;
use super::dispatch;
use super::pubsub::{self, PubMessage, Subscriber, SUBSCRIBER_QUEUE};
use super::pubsub_cmd;
use super::stats::add;
use super::Server;
use crate::resp::request::RequestParser;
use crate::resp::Frame;

/// Pending reply bytes after which we write before parsing more requests.
pub const OUT_FLUSH: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;
/// Redis's first query buffer allocation (what CLIENT LIST's qbuf-free shows).
const QBUF_INITIAL: usize = 20474;

/// A TLS handshake not finished in this time closes the connection.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs a plain TCP client connection (its owned socket halves, no extra
/// layer) until it closes, is killed, or the daemon shuts down.
pub async fn run_plain(
    server: Arc<Server>,
    stream: TcpStream,
    handle: Arc<ClientHandle>,
    permit: OwnedSemaphorePermit,
) {
    let (rd, wr) = stream.into_split();
    run(server, rd, wr, handle, permit).await
}

/// Runs a client of `tls-port`: the TLS handshake (bounded), then the same
/// connection loop over the TLS stream. A failed handshake (a plain client,
/// a certificate the CA did not sign, a missing client certificate) closes
/// the connection with Redis's log line.
pub async fn run_tls(
    server: Arc<Server>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    handle: Arc<ClientHandle>,
    permit: OwnedSemaphorePermit,
) {
    let handshake = tokio::select! {
        r = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => match r {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("TLS handshake timed out".to_string()),
        },
        _ = handle.kill.cancelled() => Err("killed during the TLS handshake".to_string()),
        _ = server.shutdown.cancelled() => Err("shutting down".to_string()),
    };
    match handshake {
        Ok(tls) => {
            let (rd, wr) = tokio::io::split(tls);
            run(server, rd, wr, handle, permit).await
        }
        Err(e) => {
            tracing::warn!("Error accepting a client connection: {e}");
            server.registry.remove(handle.id);
        }
    }
}

/// Runs a client connection until it closes, is killed, or the daemon shuts down.
pub(super) async fn run<R, W>(
    server: Arc<Server>,
    rd: R,
    wr: W,
    handle: Arc<ClientHandle>,
    _permit: OwnedSemaphorePermit,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
    let subscriber = Subscriber {
        id: handle.id,
        tx,
        kill: handle.kill.clone(),
    };
    let authenticated = server.acl().default_nopass();
    let server_limits = server.limits;
    let server_stop = server.shutdown.child_token();
    let mut conn = Conn {
        sess: Session::new(handle.clone(), subscriber, authenticated),
        server,
        handle,
        rd,
        wr,
        buf: BytesMut::with_capacity(QBUF_INITIAL),
        parser: RequestParser::with_max_bulk(server_limits.max_bulk),
        out: Vec::new(),
        messages: rx,
        held: 0,
        stop: server_stop,
    };
    conn.serve().await;
    conn.server
        .input_held
        .fetch_sub(conn.held, Ordering::Relaxed);
    pubsub_cmd::unsubscribe_all(&conn.server, &mut conn.sess);
    conn.server.registry.remove(conn.handle.id);
}

/// One connection's socket, buffers and session.
struct Conn<R, W> {
    server: Arc<Server>,
    handle: Arc<ClientHandle>,
    sess: Session,
    rd: R,
    wr: W,
    /// Received bytes not parsed yet.
    buf: BytesMut,
    parser: RequestParser,
    /// Encoded replies and messages not written yet.
    out: Vec<u8>,
    /// This client's pub/sub queue.
    messages: mpsc::Receiver<PubMessage>,
    /// Request bytes of this client counted in `Server::input_held`.
    held: usize,
    /// The daemon's shutdown, as this connection's own child token: waiting
    /// on it, or asking it, locks only this connection's node, where the
    /// daemon's token is shared by every connection (two workers serving
    /// pipelined clients contended on its lock at every request batch).
    stop: CancellationToken,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Conn<R, W> {
    async fn serve(&mut self) {
        loop {
            if self.run_buffered().await.is_break() {
                return;
            }
            if self.over_input_limits() {
                return;
            }
            if self.flush().await.is_break() {
                return;
            }
            self.mark_idle();
            if self.wait_input().await.is_break() {
                return;
            }
        }
    }

    /// Executes every complete request already buffered. The clock is read
    /// and the daemon's shutdown checked once per batch of pipelined
    /// requests, not per request (the shutdown token takes a lock shared by
    /// every connection).
    async fn run_buffered(&mut self) -> ControlFlow<()> {
        let mut now = Instant::now();
        loop {
            let before = self.buf.len();
            let may_send_large = self.sess.authenticated || self.server.acl().default_nopass();
            let argv = match self.parser.next(&mut self.buf, may_send_large) {
                Ok(Some(argv)) => argv,
                Ok(None) if self.stop.is_cancelled() => {
                    let _ = self.write_out().await;
                    return ControlFlow::Break(());
                }
                Ok(None) => return ControlFlow::Continue(()),
                Err(e) => {
                    Frame::error(e.reply_text()).encode(self.sess.proto, &mut self.out);
                    add(&self.server.stats.error_replies, 1);
                    tracing::debug!(client = self.handle.id, "protocol error: {e}");
                    let _ = self.write_out().await;
                    return ControlFlow::Break(());
                }
            };
            self.note_request(now, before, &argv);
            if self.server.paused_until(now).is_some() {
                if !dispatch::wait_unpaused(&self.server, &self.handle, now).await {
                    return ControlFlow::Break(());
                }
                now = Instant::now();
            }
            // Messages published before this command runs go out before its
            // reply, as in Redis (where PUBLISH writes straight into the output
            // buffer). Otherwise a message queued before an UNSUBSCRIBE could
            // arrive after its confirmation and be taken for a later reply.
            pubsub::drain_queued(
                &mut self.messages,
                self.sess.proto,
                &mut self.out,
                usize::MAX,
            );
            dispatch::run_request(&self.server, &mut self.sess, &argv, &mut self.out).await;
            if self.sess.close_after_reply {
                let _ = self.write_out().await;
                return ControlFlow::Break(());
            }
            if self.out.len() >= OUT_FLUSH {
                self.flush().await?;
            }
        }
    }

    /// Accounts this client's buffered request bytes in the server's total
    /// and says whether it must be closed: past `client-query-buffer-limit`,
    /// or holding a partial request while every client together holds more
    /// than twice that (many connections each under the limit).
    fn over_input_limits(&mut self) -> bool {
        let now = self.buf.len() + self.parser.pending_bytes();
        let total = &self.server.input_held;
        let all = if now >= self.held {
            total.fetch_add(now - self.held, Ordering::Relaxed) + (now - self.held)
        } else {
            total.fetch_sub(self.held - now, Ordering::Relaxed) - (self.held - now)
        };
        self.held = now;
        let limit = self.server.limits.query_buffer;
        if now > limit {
            tracing::warn!(
                client = self.handle.id,
                "closing client that reached max query buffer length"
            );
            return true;
        }
        if now > READ_CHUNK && all > limit.saturating_mul(2) {
            tracing::warn!(
                client = self.handle.id,
                "closing client: the query buffers of all clients hold {all} bytes, over twice client-query-buffer-limit"
            );
            return true;
        }
        false
    }

    /// What CLIENT LIST shows about the request being run.
    fn note_request(&self, now: Instant, before: usize, argv: &[Vec<u8>]) {
        let mut s = self.handle.state();
        s.last_interaction = now;
        s.qbuf = before.saturating_sub(self.buf.len());
        // Redis sizes a fresh query buffer at 20474 bytes (16 KiB read, sds
        // greedy growth); report that unless more is actually buffered.
        s.qbuf_cap =
            (before + self.buf.capacity().saturating_sub(self.buf.len())).max(QBUF_INITIAL);
        s.argv_mem = argv.iter().map(|a| a.len()).sum();
    }

    /// Between commands Redis reports an idle client with no query buffer.
    fn mark_idle(&self) {
        let mut s = self.handle.state();
        s.obl = 0;
        s.qbuf = 0;
        s.qbuf_cap = 0;
        s.argv_mem = 0;
    }

    /// Waits for request bytes or a pub/sub message; with `timeout`, closes a
    /// client (not a subscriber) that sent nothing for that long.
    async fn wait_input(&mut self) -> ControlFlow<()> {
        self.buf.reserve(READ_CHUNK);
        let idle = self
            .server
            .limits
            .idle
            .filter(|_| self.sess.subscriptions() == 0);
        tokio::select! {
            _ = self.handle.kill.cancelled() => ControlFlow::Break(()),
            _ = tokio::time::sleep(idle.unwrap_or_default()), if idle.is_some() => {
                tracing::debug!(client = self.handle.id, "Closing idle client");
                ControlFlow::Break(())
            }
            _ = self.stop.cancelled() => ControlFlow::Break(()),
            Some(msg) = self.messages.recv() => {
                msg.to_value().encode(self.sess.proto, &mut self.out);
                // Drain what is already queued so a burst goes out in one write.
                pubsub::drain_queued(&mut self.messages, self.sess.proto, &mut self.out, OUT_FLUSH);
                ControlFlow::Continue(())
            }
            r = self.rd.read_buf(&mut self.buf) => match r {
                Ok(0) | Err(_) => ControlFlow::Break(()),
                Ok(n) => {
                    add(&self.server.stats.net_input_bytes, n as u64);
                    add(&self.server.stats.reads_processed, 1);
                    ControlFlow::Continue(())
                }
            },
        }
    }

    /// Writes and clears the pending output.
    async fn flush(&mut self) -> ControlFlow<()> {
        if self.out.is_empty() {
            return ControlFlow::Continue(());
        }
        if self.write_out().await.is_err() {
            return ControlFlow::Break(());
        }
        self.out.clear();
        ControlFlow::Continue(())
    }

    /// Writes the pending output, giving up if the client is killed (e.g. its
    /// pub/sub queue overflowed while we were blocked on a client that does
    /// not read).
    async fn write_out(&mut self) -> Result<(), ()> {
        let data = &self.out;
        if data.is_empty() {
            return Ok(());
        }
        self.handle.state().obl = data.len();
        let server = &self.server;
        tokio::select! {
            // flush: a no-op on plain TCP; TLS may hold the last record.
            r = async { self.wr.write_all(data).await?; self.wr.flush().await } => {
                r.map_err(|_| ())?;
                add(&server.stats.net_output_bytes, data.len() as u64);
                add(&server.stats.writes_processed, 1);
                Ok(())
            }
            _ = self.handle.kill.cancelled() => Err(()),
            // On shutdown, give a stuck client a moment (e.g. for SHUTDOWN's
            // peers' last replies) but never hold the exit.
            _ = async {
                self.stop.cancelled().await;
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            } => Err(()),
        }
    }
}
