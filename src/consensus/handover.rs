//! A Raft leader that is told to stop (SIGTERM: a pod deleted, a rolling
//! restart) hands its leadership over before it exits, so the group is not
//! left to notice the silence.
//!
//! openraft 0.9.25 has no leadership transfer (no `TimeoutNow`). The closest
//! safe thing, done here with plain Raft elections: the leader picks the
//! voter that has replicated the most of its log, stops its Raft node (no
//! heartbeat or entry refreshes the followers' leader lease after that),
//! waits one lease (the election timeout: a follower refuses votes while
//! its lease runs), then asks that voter to start an election at once
//! (`elect`, honoured only when the request names the voter's current
//! leader). The others grant it their vote since their lease has expired
//! and its log is the longest, so the group has a new leader about one
//! election timeout after the request instead of a lease plus a random
//! election timeout later, and the most up-to-date voter wins without a
//! split vote. If anything fails the group elects a leader as it would have.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::node::RaftNode;
use super::rpc::Status;

/// `elect`: the requester says it is the leader stepping down.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ElectRequest {
    pub from: u64,
}

/// How long the new leader is waited for, after the request.
const WAIT_FOR_NEW_LEADER: Duration = Duration::from_secs(3);
const RPC_TTL: Duration = Duration::from_secs(1);

/// The voter to hand over to: the one that has replicated the most of the
/// leader's log (its id and address); None when this node does not lead a
/// group with another voter.
pub fn successor(node: &RaftNode) -> Option<(u64, String)> {
    let m = node.raft.metrics().borrow().clone();
    if m.current_leader != Some(node.id) {
        return None;
    }
    let membership = m.membership_config.membership();
    let replication = m.replication.as_ref()?;
    membership
        .voter_ids()
        .filter(|v| *v != node.id)
        .filter_map(|v| {
            let matched = replication.get(&v).cloned().flatten().map(|l| l.index);
            Some((matched, v, membership.get_node(&v)?.addr.clone()))
        })
        .max_by_key(|(matched, v, _)| (*matched, std::cmp::Reverse(*v)))
        .map(|(_, v, addr)| (v, addr))
}

/// Hands leadership over if this node leads; returns the line to log. The
/// Raft node is shut down in every case where it led.
pub async fn hand_over(node: &RaftNode) -> Option<String> {
    let (to, addr) = successor(node)?;
    let lease = node.lease();
    node.shutdown().await;
    // Past the followers' lease (one heartbeat of margin).
    tokio::time::sleep(lease + Duration::from_millis(node.raft.config().heartbeat_interval)).await;
    let mut link = node.network.link(&addr);
    let asked: Result<bool, _> = link
        .call("elect", &ElectRequest { from: node.id }, RPC_TTL)
        .await;
    match asked {
        Ok(true) => {}
        Ok(false) => {
            return Some(format!(
                "raft: leader {} stopping; node {to} at {addr} declined to campaign (it follows another leader)",
                node.id
            ))
        }
        Err(e) => {
            return Some(format!(
                "raft: leader {} stopping; asking node {to} at {addr} to campaign failed: {e}",
                node.id
            ))
        }
    }
    let deadline = tokio::time::Instant::now() + WAIT_FOR_NEW_LEADER;
    while tokio::time::Instant::now() < deadline {
        if let Ok(st) = link.call::<_, Status>("status", &(), RPC_TTL).await {
            if let Some((leader, leader_addr)) = st.leader.filter(|(l, _)| *l != node.id) {
                return Some(format!(
                    "+raft-leader-handover {} -> {leader} {leader_addr}",
                    node.id
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(format!(
        "raft: leader {} stopping; no new leader seen at {addr} within {} s",
        node.id,
        WAIT_FOR_NEW_LEADER.as_secs()
    ))
}

/// The `elect` request on the voter: campaign now if the requester is the
/// leader this node follows (a stale or foreign request changes nothing).
pub async fn on_elect(node: &RaftNode, req: &ElectRequest) -> bool {
    let leader = node.raft.metrics().borrow().current_leader;
    if leader != Some(req.from) || req.from == node.id || !node.is_voter() {
        return false;
    }
    tracing::info!(
        "raft: leader {} is stopping and hands over: campaigning",
        req.from
    );
    node.raft.trigger().elect().await.is_ok()
}
