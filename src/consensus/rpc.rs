//! The server side of `RAFTINEL <cluster-id> <op> <json>`: checks who is
//! asking (the group secret's signature and replay window, when there is a
//! secret), checks the cluster id, hands the request to the local Raft node,
//! and answers with JSON. Every refusal is counted by kind (`INFO raft`) and
//! reported in the log at most once a minute, so a hostile or misconfigured
//! client can neither change anything nor flood the log. Requests for another
//! cluster are refused, so two deployments that can reach each other never
//! merge.
//!
//! Operations: `challenge` (opens a signed session; see `trust`), `append`,
//! `vote`, `snapshot` (openraft's RPCs), `join` (a new daemon asks to become
//! a voter), `status` (what bootstrap needs to know), and `propose` (a
//! follower's command, forwarded to the leader).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::node::RaftNode;
use super::trust::{self, ServerSession};
use crate::core::group::{Command, CommandResponse};

/// Serializes `join` handling on the leader.
static JOINS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Largest request body accepted. openraft sends at most a few hundred
/// entries per append and snapshots in chunks of a few MiB; anything bigger
/// is not from a daemon.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

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
    #[error("ERR raftinel request too large")]
    TooLarge,
    #[error("ERR raft is not running on this node")]
    NotRunning,
    /// Not authenticated while the server requires a password.
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    /// Authenticated as a user other than the one peers use.
    #[error("NOPERM this user has no permissions to run the 'raftinel' command")]
    NoPerm,
    /// An unsigned request to a daemon that has a group secret.
    #[error("NOAUTH this Raft group requires the group secret")]
    SecretRequired,
    /// A signed request on a connection that answered no challenge.
    #[error("NOAUTH no raftinel challenge on this connection")]
    NoChallenge,
    #[error("NOAUTH raftinel signature mismatch (is the group secret the same on every daemon?)")]
    BadSignature,
    #[error("ERR replayed raftinel request refused")]
    Replayed,
    /// A challenge or signed request to a daemon without a secret.
    #[error("ERR this daemon has no Raft group secret")]
    NoSecret,
}

/// Kinds of refusal, as counted in `INFO raft`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No or wrong credentials, user, secret or signature.
    Auth,
    Replay,
    /// Another cluster's request.
    Cluster,
    /// Bad arity, unknown operation, unparsable or oversized body.
    Malformed,
}

impl Refusal {
    fn name(self) -> &'static str {
        match self {
            Refusal::Auth => "auth",
            Refusal::Replay => "replay",
            Refusal::Cluster => "cluster",
            Refusal::Malformed => "malformed",
        }
    }
}

impl RpcError {
    /// What kind of refusal this is; None when it is no refusal of the
    /// request (this node is not ready).
    pub fn refusal(&self) -> Option<Refusal> {
        Some(match self {
            RpcError::NotRunning => return None,
            RpcError::ClusterMismatch => Refusal::Cluster,
            RpcError::Replayed => Refusal::Replay,
            RpcError::Arity | RpcError::UnknownOp | RpcError::Malformed | RpcError::TooLarge => {
                Refusal::Malformed
            }
            RpcError::NoAuth
            | RpcError::NoPerm
            | RpcError::SecretRequired
            | RpcError::NoChallenge
            | RpcError::BadSignature
            | RpcError::NoSecret => Refusal::Auth,
        })
    }
}

/// Refused requests, by kind, since start.
pub struct Refusals {
    pub auth: AtomicU64,
    pub replay: AtomicU64,
    pub cluster: AtomicU64,
    pub malformed: AtomicU64,
    /// When the last refusal was logged, and how many were not since.
    log: Mutex<(Option<Instant>, u64)>,
}

pub static REFUSALS: Refusals = Refusals {
    auth: AtomicU64::new(0),
    replay: AtomicU64::new(0),
    cluster: AtomicU64::new(0),
    malformed: AtomicU64::new(0),
    log: Mutex::new((None, 0)),
};

/// While refusals keep coming, how often one is logged.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

impl Refusals {
    fn counter(&self, kind: Refusal) -> &AtomicU64 {
        match kind {
            Refusal::Auth => &self.auth,
            Refusal::Replay => &self.replay,
            Refusal::Cluster => &self.cluster,
            Refusal::Malformed => &self.malformed,
        }
    }

    pub fn total(&self) -> u64 {
        [
            Refusal::Auth,
            Refusal::Replay,
            Refusal::Cluster,
            Refusal::Malformed,
        ]
        .iter()
        .map(|k| self.counter(*k).load(Ordering::Relaxed))
        .sum()
    }

    /// Counts a refusal of a request from `from` and logs it, at most once
    /// per [`REFUSAL_LOG_EVERY`] (with the number left unlogged meanwhile).
    pub fn count(&self, e: &RpcError, from: &str) {
        let Some(kind) = e.refusal() else { return };
        self.counter(kind).fetch_add(1, Ordering::Relaxed);
        metrics::counter!("raftinel_raft_rpc_refused_total", "reason" => kind.name()).increment(1);
        let now = Instant::now();
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.0.is_some_and(|t| now - t < REFUSAL_LOG_EVERY) {
            log.1 += 1;
            return;
        }
        let more = std::mem::take(&mut log.1);
        log.0 = Some(now);
        drop(log);
        let more = if more > 0 {
            format!(" ({more} more refused since the last report)")
        } else {
            String::new()
        };
        tracing::warn!("raft: refused a RAFTINEL request from {from}: {e}{more}");
    }

    /// The `INFO raft` lines of the refusals.
    pub fn info(&self) -> String {
        let get = |k| self.counter(k).load(Ordering::Relaxed);
        format!(
            "raft_rpc_refused:{}\r\nraft_rpc_refused_auth:{}\r\nraft_rpc_refused_replay:{}\r\n\
             raft_rpc_refused_cluster:{}\r\nraft_rpc_refused_malformed:{}\r\n",
            self.total(),
            get(Refusal::Auth),
            get(Refusal::Replay),
            get(Refusal::Cluster),
            get(Refusal::Malformed),
        )
    }
}

/// What a request is answered with.
#[derive(Debug, PartialEq, Eq)]
pub enum RpcReply {
    /// The JSON answer, unsigned (the group has no secret).
    Plain(Vec<u8>),
    /// The JSON answer and its signature.
    Signed(Vec<u8>, String),
    /// The server nonce answering a challenge.
    Nonce(String),
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

/// Handles one request; `args[0]` is the command name. `session` is the
/// connection's signing state, `from` the client's address (for the log).
/// The caller has checked the connection's ACL user.
pub async fn handle(
    node: Option<&RaftNode>,
    session: &mut ServerSession,
    from: &str,
    args: &[Vec<u8>],
) -> Result<RpcReply, RpcError> {
    let r = dispatch(node, session, args).await;
    if let Err(e) = &r {
        REFUSALS.count(e, from);
    }
    r
}

async fn dispatch(
    node: Option<&RaftNode>,
    session: &mut ServerSession,
    args: &[Vec<u8>],
) -> Result<RpcReply, RpcError> {
    let (cluster, op, body, signature) = match args {
        [_, c, o, b] => (c, o, b, None),
        [_, c, o, b, seq, sig] => (c, o, b, Some((seq, sig))),
        _ => return Err(RpcError::Arity),
    };
    if body.len() > MAX_BODY {
        return Err(RpcError::TooLarge);
    }
    let node = node.ok_or(RpcError::NotRunning)?;
    let secret = node.secret();
    if op.as_slice() == b"challenge" {
        let secret = secret.ok_or(RpcError::NoSecret)?;
        if signature.is_some() {
            return Err(RpcError::Arity);
        }
        if !trust::valid_nonce(body) {
            return Err(RpcError::Malformed);
        }
        return Ok(RpcReply::Nonce(session.challenge(secret, body)));
    }
    // Who is asking, before anything is parsed or looked at.
    let seq = match (secret, signature) {
        (None, None) => None,
        (None, Some(_)) => return Err(RpcError::NoSecret),
        (Some(_), None) => return Err(RpcError::SecretRequired),
        (Some(_), Some((seq, sig))) => {
            let key = session.key().ok_or(RpcError::NoChallenge)?;
            let seq: u64 = std::str::from_utf8(seq)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(RpcError::Malformed)?;
            if !key.verify_request(seq, cluster, op, body, sig) {
                return Err(RpcError::BadSignature);
            }
            // Only a verified number is recorded: a forged one cannot use
            // up the numbers of the real sender.
            if !session.window().accept(seq) {
                return Err(RpcError::Replayed);
            }
            Some(seq)
        }
    };
    if cluster.as_slice() != node.cluster_id.as_bytes() {
        return Err(RpcError::ClusterMismatch);
    }
    let raft = &node.raft;
    macro_rules! parse {
        () => {
            serde_json::from_slice(body).map_err(|_| RpcError::Malformed)?
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
        _ => return Err(RpcError::UnknownOp),
    };
    let out = out.map_err(|_| RpcError::Malformed)?;
    Ok(match (seq, session.key()) {
        (Some(seq), Some(key)) => {
            let sig = key.sign_reply(seq, &out);
            RpcReply::Signed(out, sig)
        }
        _ => RpcReply::Plain(out),
    })
}
