//! `RAFTINEL ...`: the Raft RPCs between daemons (see `consensus::network`),
//! carried on the sentinel port. Kept out of the command table so `COMMAND`
//! shows exactly Sentinel's 15 commands; authenticated like every other
//! command.

use super::cmd::{auth_required, Session};
use super::Server;
use crate::resp::Frame;

/// Whether a request is a Raft RPC rather than a Sentinel command.
pub fn is_rpc(argv: &[Vec<u8>]) -> bool {
    argv.first()
        .is_some_and(|a| a.eq_ignore_ascii_case(crate::consensus::network::RPC_COMMAND.as_bytes()))
}

/// Answers one Raft RPC.
pub async fn handle(server: &Server, sess: &Session, argv: &[Vec<u8>]) -> Frame {
    if !sess.authenticated && auth_required(server) {
        return Frame::error("NOAUTH Authentication required.");
    }
    let node = server.shared.raft.get();
    let cluster = node.map(|n| n.cluster_id.as_str()).unwrap_or("");
    match crate::consensus::rpc::handle(node, cluster, argv).await {
        Ok(body) => Frame::Bulk(body),
        Err(e) => Frame::error(e.to_string()),
    }
}
