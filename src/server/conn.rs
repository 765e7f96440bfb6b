//! One task per client connection: buffered reads, request parsing, ordered
//! replies, pub/sub delivery, and the memory bounds.
//!
//! Memory per client stays bounded: request bytes are capped by
//! `parse::MAX_QUERY_BYTES` (the client is closed beyond it); replies are
//! written before more input is read once [`OUT_FLUSH`] bytes are pending, so
//! a client that never reads stops being read from instead of growing our
//! buffers; pub/sub messages wait in a bounded queue and a subscriber that
//! lets it fill up is closed (see `pubsub`). Idle clients and subscribers are
//! never disconnected.

use std::sync::Arc;

use bytes::BytesMut;
use indexmap::IndexSet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::client::ClientHandle;
use super::cmd::{self, ReplyMode, Session};
use super::parse::{RequestParser, MAX_QUERY_BYTES};
use super::pubsub::{Subscriber, SUBSCRIBER_QUEUE};
use super::resp::Value;
use super::stats::add;
use super::Server;

/// Pending reply bytes after which we write before parsing more requests.
pub const OUT_FLUSH: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// Runs a client connection until it closes, is killed, or the daemon shuts down.
pub async fn run(
    server: Arc<Server>,
    stream: TcpStream,
    handle: Arc<ClientHandle>,
    _permit: OwnedSemaphorePermit,
) {
    let (tx, mut rx) = mpsc::channel(SUBSCRIBER_QUEUE);
    let authenticated = server.acl().default_nopass();
    let mut sess = Session {
        handle: handle.clone(),
        proto: 2,
        authenticated,
        user: "default".into(),
        channels: IndexSet::new(),
        patterns: IndexSet::new(),
        subscriber: Subscriber {
            id: handle.id,
            tx,
            kill: handle.kill.clone(),
        },
        reply: ReplyMode::On,
        close_after_reply: false,
    };
    let (mut rd, mut wr) = stream.into_split();
    // Redis's first query buffer allocation (what CLIENT LIST's qbuf-free shows).
    let mut buf = BytesMut::with_capacity(20474);
    let mut parser = RequestParser::new();
    let mut out: Vec<u8> = Vec::new();
    let shutdown = server.shared.shutdown.clone();
    'conn: loop {
        // Execute every complete request already buffered.
        loop {
            let before = buf.len();
            let argv = match parser.next(
                &mut buf,
                sess.authenticated || server.acl().default_nopass(),
            ) {
                Ok(Some(argv)) => argv,
                Ok(None) => break,
                Err(e) => {
                    Value::error(e.reply_text()).encode(sess.proto, &mut out);
                    add(&server.stats.error_replies, 1);
                    tracing::debug!(client = handle.id, "protocol error: {e}");
                    let _ = write_all(&mut wr, &out, &handle, &server).await;
                    break 'conn;
                }
            };
            let now = Instant::now();
            {
                let mut s = handle.state();
                s.last_interaction = now;
                s.qbuf = before.saturating_sub(buf.len());
                // Redis sizes a fresh query buffer at 20474 bytes (16 KiB read, sds
                // greedy growth); report that unless more is actually buffered.
                s.qbuf_cap = (before + buf.capacity().saturating_sub(buf.len())).max(20474);
                s.argv_mem = argv.iter().map(|a| a.len()).sum();
            }
            // CLIENT PAUSE ALL holds every command until it ends (it may be
            // extended or lifted meanwhile, hence the loop).
            let mut at = now;
            while let Some(until) = server.paused_until(at) {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = handle.kill.cancelled() => break 'conn,
                    _ = shutdown.cancelled() => break 'conn,
                }
                at = Instant::now();
            }
            // Messages published before this command runs go out before its
            // reply, as in Redis (where PUBLISH writes straight into the output
            // buffer). Otherwise a message queued before an UNSUBSCRIBE could
            // arrive after its confirmation and be taken for a later reply.
            while let Ok(m) = rx.try_recv() {
                m.to_value().encode(sess.proto, &mut out);
            }
            let replies = if argv.first().is_some_and(|a| {
                a.eq_ignore_ascii_case(crate::consensus::network::RPC_COMMAND.as_bytes())
            }) {
                vec![raft_rpc(&server, &sess, &argv).await]
            } else {
                cmd::execute(&server, &mut sess, &argv)
            };
            let errors = replies
                .iter()
                .filter(|v| matches!(v, Value::Error(_)))
                .count();
            add(&server.stats.error_replies, errors as u64);
            let send = match sess.reply {
                ReplyMode::On => true,
                ReplyMode::Off => false,
                ReplyMode::SkipNext => {
                    // The SKIP command itself is silent; the next one is skipped too.
                    false
                }
            };
            let is_reply_cmd = argv
                .first()
                .is_some_and(|a| a.eq_ignore_ascii_case(b"client"))
                && argv
                    .get(1)
                    .is_some_and(|a| a.eq_ignore_ascii_case(b"reply"));
            if send {
                for v in &replies {
                    v.encode(sess.proto, &mut out);
                }
            } else if sess.reply == ReplyMode::SkipNext && !is_reply_cmd {
                sess.reply = ReplyMode::On;
            }
            if sess.close_after_reply || shutdown.is_cancelled() {
                let _ = write_all(&mut wr, &out, &handle, &server).await;
                break 'conn;
            }
            if out.len() >= OUT_FLUSH {
                if write_all(&mut wr, &out, &handle, &server).await.is_err() {
                    break 'conn;
                }
                out.clear();
            }
        }
        if buf.len() + parser.pending_bytes() > MAX_QUERY_BYTES {
            tracing::warn!(
                client = handle.id,
                "closing client that reached max query buffer length"
            );
            break;
        }
        if !out.is_empty() {
            if write_all(&mut wr, &out, &handle, &server).await.is_err() {
                break;
            }
            out.clear();
        }
        {
            // Between commands Redis reports an idle client with no query buffer.
            let mut s = handle.state();
            s.obl = 0;
            s.qbuf = 0;
            s.qbuf_cap = 0;
            s.argv_mem = 0;
        }
        buf.reserve(READ_CHUNK);
        tokio::select! {
            _ = handle.kill.cancelled() => break,
            _ = shutdown.cancelled() => break,
            Some(msg) = rx.recv() => {
                msg.to_value().encode(sess.proto, &mut out);
                // Drain what is already queued so a burst goes out in one write.
                while out.len() < OUT_FLUSH {
                    match rx.try_recv() {
                        Ok(m) => m.to_value().encode(sess.proto, &mut out),
                        Err(_) => break,
                    }
                }
            }
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    add(&server.stats.net_input_bytes, n as u64);
                    add(&server.stats.reads_processed, 1);
                }
            },
        }
    }
    cmd::unsubscribe_all(&server, &mut sess);
    server.registry.remove(handle.id);
}

/// Writes `data`, giving up if the client is killed (e.g. its pub/sub queue
/// overflowed while we were blocked on a client that does not read).
async fn write_all(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    data: &[u8],
    handle: &ClientHandle,
    server: &Server,
) -> Result<(), ()> {
    if data.is_empty() {
        return Ok(());
    }
    handle.state().obl = data.len();
    tokio::select! {
        r = wr.write_all(data) => {
            r.map_err(|_| ())?;
            add(&server.stats.net_output_bytes, data.len() as u64);
            add(&server.stats.writes_processed, 1);
            Ok(())
        }
        _ = handle.kill.cancelled() => Err(()),
        // On shutdown, give a stuck client a moment (e.g. for SHUTDOWN's
        // peers' last replies) but never hold the exit.
        _ = async {
            server.shared.shutdown.cancelled().await;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        } => Err(()),
    }
}

/// `RAFTINEL ...`: Raft RPCs between daemons (see `consensus::network`). Kept
/// out of the command table so `COMMAND` shows exactly Sentinel's 15 commands;
/// authenticated like every other command.
async fn raft_rpc(server: &Server, sess: &cmd::Session, argv: &[Vec<u8>]) -> Value {
    if !sess.authenticated && cmd::auth_required(server) {
        return Value::error("NOAUTH Authentication required.");
    }
    let node = server.shared.raft.get();
    let cluster = node.map(|n| n.cluster_id.as_str()).unwrap_or("");
    match crate::consensus::rpc::handle(node, cluster, argv).await {
        Ok(body) => Value::Bulk(body),
        Err(e) => Value::error(e.to_string()),
    }
}
