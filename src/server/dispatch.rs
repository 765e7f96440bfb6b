//! From a parsed request to the bytes of its replies: CLIENT PAUSE, the
//! routing between Raft RPCs and Sentinel commands, and the reply modes of
//! CLIENT REPLY. The connection task (`conn`) calls [`run_request`] once per
//! request, in order.

use tokio::time::Instant;

use super::client::ClientHandle;
use super::cmd::{self, ReplyMode, Session};
use super::raft_rpc;
use super::stats::add;
use super::Server;
use crate::resp::Frame;

/// Waits while a CLIENT PAUSE ALL is in force (it may be extended or lifted
/// meanwhile, hence the loop). `false`: the client was killed or the daemon
/// is shutting down while it waited.
pub async fn wait_unpaused(server: &Server, handle: &ClientHandle, now: Instant) -> bool {
    let mut at = now;
    while let Some(until) = server.paused_until(at) {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = handle.kill.cancelled() => return false,
            _ = server.shutdown.cancelled() => return false,
        }
        at = Instant::now();
    }
    true
}

/// Runs one request and appends the replies the client is to receive (per
/// its reply mode) to `out`, encoded for its protocol.
pub async fn run_request(server: &Server, sess: &mut Session, argv: &[Vec<u8>], out: &mut Vec<u8>) {
    let replies = if raft_rpc::is_rpc(argv) {
        vec![raft_rpc::handle(server, sess, argv).await]
    } else if super::raft_cmd::is_sentinel_raft(argv) {
        vec![super::raft_cmd::sentinel_raft(server, sess, argv).await]
    } else {
        cmd::execute(server, sess, argv).await
    };
    let errors = replies
        .iter()
        .filter(|v| matches!(v, Frame::Error(_)))
        .count();
    if errors > 0 {
        add(&server.stats.error_replies, errors as u64);
    }
    match sess.reply {
        ReplyMode::On => {
            for v in &replies {
                v.encode(sess.proto, out);
            }
        }
        ReplyMode::Off => {}
        // CLIENT REPLY SKIP is silent itself and silences the next command.
        ReplyMode::SkipNext if !is_client_reply(argv) => sess.reply = ReplyMode::On,
        ReplyMode::SkipNext => {}
    }
}

fn is_client_reply(argv: &[Vec<u8>]) -> bool {
    argv.first()
        .is_some_and(|a| a.eq_ignore_ascii_case(b"client"))
        && argv
            .get(1)
            .is_some_and(|a| a.eq_ignore_ascii_case(b"reply"))
}
