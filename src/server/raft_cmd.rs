//! `SENTINEL RAFT MEMBERS`, `SENTINEL RAFT FORGET <node-id>` and
//! `SENTINEL RAFT STATUS` (raftinel extensions): the Raft group's members as
//! this daemon sees them; the removal of a departed daemon (carried out by
//! the leader, which refuses it while the daemon still answers or when the
//! rest would not be a live majority); and everything the daemon knows as
//! one JSON document (`pod::status`, read by `raftinel ctl` and
//! `boot-redis`).
//!
//! Kept out of the command table, like `RAFTINEL`, so `COMMAND` and
//! `SENTINEL HELP` stay Sentinel's; a client needs the rights of
//! `SENTINEL RESET` (which forgets peers too) to run either.

use super::cmd::{self, Session};
use super::Server;
use crate::consensus::rpc::ForgetReply;
use crate::resp::Frame;

/// Whether `argv` is `SENTINEL RAFT ...`.
pub fn is_sentinel_raft(argv: &[Vec<u8>]) -> bool {
    matches!(argv, [a, b, ..] if a.eq_ignore_ascii_case(b"sentinel") && b.eq_ignore_ascii_case(b"raft"))
}

const USAGE: &str = "ERR Unknown SENTINEL RAFT subcommand or wrong number of arguments: use MEMBERS, FORGET <node-id> or STATUS";

pub async fn sentinel_raft(server: &Server, sess: &Session, argv: &[Vec<u8>]) -> Frame {
    if !sess.authenticated && cmd::auth_required(server) {
        return Frame::error("NOAUTH Authentication required.");
    }
    let as_reset = [b"sentinel".to_vec(), b"reset".to_vec(), b"*".to_vec()];
    if let Some(denied) = cmd::check_acl_as(server, sess, &as_reset) {
        return denied;
    }
    let sub = String::from_utf8_lossy(&argv[2..].first().cloned().unwrap_or_default())
        .to_ascii_lowercase();
    if (sub.as_str(), argv.len()) == ("status", 3) {
        let status = {
            let raft = server.raft.get();
            let now = server.core.now();
            crate::pod::status::snapshot_of(&server.core.lock(), now, raft)
        };
        return match serde_json::to_vec(&status) {
            Ok(json) => Frame::Bulk(json),
            Err(e) => Frame::error(format!("ERR {e}")),
        };
    }
    let Some(node) = server.raft.get() else {
        return Frame::error("ERR raft is not running on this node");
    };
    match (sub.as_str(), argv.len()) {
        ("members", 3) => members(node),
        ("forget", 4) => {
            let Some(id) = std::str::from_utf8(&argv[3])
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            else {
                return Frame::error("ERR node-id must be a Raft node id (an unsigned integer)");
            };
            match crate::consensus::upkeep::forget_through_leader(node, id, "forget").await {
                ForgetReply::Removed => Frame::ok(),
                ForgetReply::Refused(why) => {
                    Frame::error(format!("ERR node {id} not removed: {why}"))
                }
                ForgetReply::NotLeader { .. } => {
                    Frame::error("ERR no raft leader is known: nothing can be removed now")
                }
                ForgetReply::Failed(why) => {
                    Frame::error(format!("ERR node {id} not removed: {why}"))
                }
            }
        }
        _ => Frame::error(USAGE),
    }
}

/// One description per member, as field/value pairs like SENTINEL SENTINELS.
fn members(node: &crate::consensus::node::RaftNode) -> Frame {
    let m = node.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let leads = m.current_leader == Some(node.id);
    let now = tokio::time::Instant::now();
    let probes = node.probes.lock().unwrap_or_else(|e| e.into_inner());
    let rows = membership
        .nodes()
        .map(|(id, n)| {
            let live = if *id == node.id {
                "yes".to_string()
            } else if leads {
                match probes.liveness(*id, now, node.policy.live_window) {
                    crate::core::membership::Liveness::Live => "yes".into(),
                    crate::core::membership::Liveness::Silent(ms) => format!("no ({ms} ms)"),
                    crate::core::membership::Liveness::Unknown => "unknown".into(),
                }
            } else {
                // Only the leader probes its members.
                "unknown".into()
            };
            let fields = [
                ("node-id", id.to_string()),
                ("addr", n.addr.clone()),
                ("runid", n.myid.clone()),
                (
                    "role",
                    if voters.contains(id) {
                        "voter"
                    } else {
                        "learner"
                    }
                    .to_string(),
                ),
                (
                    "leader",
                    u8::from(m.current_leader == Some(*id)).to_string(),
                ),
                ("myself", u8::from(*id == node.id).to_string()),
                ("live", live),
            ];
            Frame::Array(
                fields
                    .into_iter()
                    .flat_map(|(k, v)| [Frame::bulk(k), Frame::bulk(v)])
                    .collect(),
            )
        })
        .collect();
    Frame::Array(rows)
}
