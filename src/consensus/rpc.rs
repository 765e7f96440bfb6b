//! The server side of `RAFTINEL <cluster-id> <op> <json>`: checks the cluster
//! id, hands the request to the local Raft node, and answers with JSON.
//! Requests for another cluster are refused and counted, so two deployments
//! that can reach each other never merge.
//!
//! Operations: `append`, `vote`, `snapshot` (openraft's RPCs), `join` (a new
//! daemon asks to become a voter), `status` (what bootstrap needs to know), and
//! `propose` (a follower's command, forwarded to the leader).

use std::sync::atomic::{AtomicU64, Ordering};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};

use super::node::RaftNode;
use crate::core::group::{Command, CommandResponse};

/// Serializes `join` handling on the leader.
static JOINS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// RPCs refused because they named another cluster or were malformed.
pub static REFUSED: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RpcError {
    #[error("ERR wrong number of arguments for 'raftinel' command")]
    Arity,
    #[error("ERR cluster id mismatch")]
    ClusterMismatch,
    #[error("ERR unknown raftinel operation")]
    UnknownOp,
    #[error("ERR malformed raftinel request")]
    Malformed,
    #[error("ERR raft is not running on this node")]
    NotRunning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub id: u64,
    /// `host:port` of the joiner's sentinel port.
    pub addr: String,
    /// The joiner's Raft storage is empty.
    pub fresh: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinReply {
    Joined,
    /// Ask the leader instead (its address, when known).
    NotLeader {
        leader: Option<String>,
    },
    /// The joiner's id is already a voter but its storage is empty: its state
    /// was lost, and letting it vote again could elect a leader without the
    /// committed log. It must not start.
    LostState,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub id: u64,
    pub initialized: bool,
    pub leader: Option<(u64, String)>,
    pub voters: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposeReply {
    Done(CommandResponse),
    NotLeader { leader: Option<String> },
    Failed(String),
}

fn leader_addr(node: &RaftNode) -> Option<(u64, String)> {
    let m = node.raft.metrics().borrow().clone();
    let id = m.current_leader?;
    let addr = m.membership_config.membership().get_node(&id)?.addr.clone();
    Some((id, addr))
}

pub fn status(node: &RaftNode) -> Status {
    let m = node.raft.metrics().borrow().clone();
    Status {
        id: node.id,
        initialized: node.is_initialized(),
        leader: leader_addr(node),
        voters: m.membership_config.membership().voter_ids().collect(),
    }
}

fn not_leader<E>(node: &RaftNode, e: &RaftError<u64, ClientWriteError<u64, BasicNode>>) -> Option<E>
where
    E: From<Option<String>>,
{
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Some(E::from(
            f.leader_node
                .as_ref()
                .map(|n| n.addr.clone())
                .or_else(|| leader_addr(node).map(|l| l.1)),
        )),
        _ => None,
    }
}

impl From<Option<String>> for JoinReply {
    fn from(leader: Option<String>) -> Self {
        JoinReply::NotLeader { leader }
    }
}

impl From<Option<String>> for ProposeReply {
    fn from(leader: Option<String>) -> Self {
        ProposeReply::NotLeader { leader }
    }
}

/// Adds a daemon as a voter (on the leader only).
pub async fn join(node: &RaftNode, req: &JoinRequest) -> JoinReply {
    let m = node.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    if membership.voter_ids().any(|v| v == req.id) {
        if req.fresh {
            return JoinReply::LostState;
        }
        return JoinReply::Joined;
    }
    // Joins are serialized here: openraft refuses a membership change while
    // another is in flight, and a joiner left a learner would retry anyway.
    let _one_at_a_time = JOINS.lock().await;
    if m.current_leader != Some(node.id) {
        return JoinReply::NotLeader {
            leader: leader_addr(node).map(|l| l.1),
        };
    }
    if let Err(e) = node
        .raft
        .add_learner(req.id, BasicNode::new(req.addr.clone()), true)
        .await
    {
        return not_leader(node, &e).unwrap_or_else(|| JoinReply::Failed(e.to_string()));
    }
    let change = ChangeMembers::AddVoterIds([req.id].into_iter().collect());
    match node.raft.change_membership(change, false).await {
        Ok(_) => JoinReply::Joined,
        Err(e) => not_leader(node, &e).unwrap_or_else(|| JoinReply::Failed(e.to_string())),
    }
}

/// Commits `cmd` if this node leads; tells the caller where the leader is otherwise.
pub async fn propose_local(node: &RaftNode, cmd: Command) -> ProposeReply {
    match node.raft.client_write(cmd).await {
        Ok(resp) => ProposeReply::Done(resp.data),
        Err(e) => not_leader(node, &e).unwrap_or_else(|| ProposeReply::Failed(e.to_string())),
    }
}

/// Handles one request; `args[0]` is the command name.
pub async fn handle(
    node: Option<&RaftNode>,
    cluster_id: &str,
    args: &[Vec<u8>],
) -> Result<Vec<u8>, RpcError> {
    let refuse = |e: RpcError| {
        REFUSED.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("raftinel_raft_rpc_refused_total").increment(1);
        e
    };
    let [_, cluster, op, body] = args else {
        return Err(refuse(RpcError::Arity));
    };
    if cluster.as_slice() != cluster_id.as_bytes() {
        return Err(refuse(RpcError::ClusterMismatch));
    }
    let node = node.ok_or(RpcError::NotRunning)?;
    let raft = &node.raft;
    macro_rules! parse {
        () => {
            serde_json::from_slice(body).map_err(|_| refuse(RpcError::Malformed))?
        };
    }
    let out = match op.as_slice() {
        b"append" => serde_json::to_vec(&raft.append_entries(parse!()).await),
        b"vote" => serde_json::to_vec(&raft.vote(parse!()).await),
        b"snapshot" => serde_json::to_vec(&raft.install_snapshot(parse!()).await),
        b"join" => {
            let req: JoinRequest = parse!();
            serde_json::to_vec(&join(node, &req).await)
        }
        b"status" => serde_json::to_vec(&status(node)),
        b"propose" => {
            let cmd: Command = parse!();
            serde_json::to_vec(&propose_local(node, cmd).await)
        }
        _ => return Err(refuse(RpcError::UnknownOp)),
    };
    out.map_err(|_| RpcError::Malformed)
}
