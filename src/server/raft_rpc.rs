//! `RAFTINEL ...`: the Raft RPCs between daemons (see `consensus::network`),
//! carried on the sentinel port.
//!
//! Kept out of the command table so `COMMAND` shows exactly Sentinel's 15
//! commands, but not out of the ACL: like any command it needs an
//! authenticated connection when a password is required, and it is allowed to
//! one user only, the one peers authenticate as (`sentinel-user` with
//! `sentinel-pass`, else `default`). Any other user gets Redis's NOPERM reply
//! and an ACL LOG entry. The request itself (secret, signature, replay,
//! cluster id) is checked by `consensus::rpc`.

use tokio::time::Instant;

use super::cmd::{auth_required, Session};
use super::Server;
use crate::consensus::network::RPC_COMMAND;
use crate::consensus::rpc::{self, RpcError, RpcReply};
use crate::resp::Frame;

/// Whether a request is a Raft RPC rather than a Sentinel command.
pub fn is_rpc(argv: &[Vec<u8>]) -> bool {
    argv.first()
        .is_some_and(|a| a.eq_ignore_ascii_case(RPC_COMMAND.as_bytes()))
}

/// Answers one Raft RPC of the connection `sess`.
pub async fn handle(server: &Server, sess: &mut Session, argv: &[Vec<u8>]) -> Frame {
    if let Err(e) = authorize(server, sess) {
        server.rpc_counters.refusals.count(&e, &sess.handle.addr);
        return Frame::error(e.to_string());
    }
    let node = server.raft.get();
    let refusals = &server.rpc_counters.refusals;
    match rpc::handle(node, refusals, &mut sess.raft, &sess.handle.addr, argv).await {
        Ok(RpcReply::Plain(body)) => Frame::Bulk(body),
        Ok(RpcReply::Signed(body, sig)) => {
            Frame::Array(vec![Frame::Bulk(body), Frame::Bulk(sig.into_bytes())])
        }
        Ok(RpcReply::Nonce(nonce)) => Frame::Bulk(nonce.into_bytes()),
        Err(e) => Frame::error(e.to_string()),
    }
}

/// The connection is authenticated, as the peers' user.
fn authorize(server: &Server, sess: &Session) -> Result<(), RpcError> {
    if !sess.authenticated && auth_required(server) {
        return Err(RpcError::NoAuth);
    }
    let peer_user = server
        .core
        .lock()
        .sentinel_auth()
        .user
        .unwrap_or_else(|| "default".into());
    if sess.user != peer_user {
        let now = Instant::now();
        let info = sess.handle.info_line(now);
        server
            .acl()
            .add_log("command", "toplevel", "raftinel", &sess.user, info, now);
        return Err(RpcError::NoPerm);
    }
    Ok(())
}
