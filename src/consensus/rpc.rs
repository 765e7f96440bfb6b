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
//! `vote`, `snapshot` (openraft's RPCs, addressed to a node id: a daemon
//! never answers for another node, e.g. the old incarnation whose address it
//! took over), `join` (a daemon asks to be in the group or to have its entry
//! updated), `forget` (remove a departed daemon), `status` (what formation and
//! the leader's probes need to know; answerable under the cluster id `*` by a
//! daemon that does not know its group's id yet), and `propose` (a follower's
//! command, forwarded to the leader).
//!
//! Membership decisions are the pure core's (`core::membership`); this module
//! gathers their inputs and carries them out with openraft.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::network::ANY_CLUSTER;
use super::node::RaftNode;
use super::trust::{self, ServerSession};
use crate::core::group::{Command, CommandResponse, Member};
use crate::core::membership::{
    self, Change, GroupView, JoinDecision, MemberState, Refusal as MembershipRefusal,
};

/// How long the leader waits for a new learner to catch up before giving up
/// on a join (the joiner asks again).
const CATCH_UP: Duration = Duration::from_secs(10);
/// A probe of a member's `status`.
pub const PROBE_TTL: Duration = Duration::from_millis(500);

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
    /// An openraft RPC meant for another node id.
    #[error("ERR request for node {to}, this is node {me}")]
    WrongNode { to: u64, me: u64 },
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
            RpcError::ClusterMismatch | RpcError::WrongNode { .. } => Refusal::Cluster,
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

/// What the RPC layer counts, since start: refused requests (counted
/// before the Raft node runs too) and refused membership changes. One per
/// daemon, shared by the server (which answers RPCs and shows the counts in
/// `INFO raft`) and the Raft node.
#[derive(Default)]
pub struct Counters {
    pub refusals: Refusals,
    /// Joins and removals refused by the membership rules.
    pub membership_refused: AtomicU64,
}

/// Refused requests, by kind, since start.
#[derive(Default)]
pub struct Refusals {
    pub auth: AtomicU64,
    pub replay: AtomicU64,
    pub cluster: AtomicU64,
    pub malformed: AtomicU64,
    /// When the last refusal was logged, and how many were not since.
    log: Mutex<(Option<Instant>, u64)>,
}

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

/// An openraft RPC with the node id it is meant for (`to`, next to the
/// request's own fields; absent from daemons that do not send it).
#[derive(Debug, Serialize)]
pub struct Addressed<T> {
    #[serde(flatten)]
    pub rpc: T,
    pub to: u64,
}

impl<T> Addressed<T> {
    pub fn new(to: u64, rpc: T) -> Addressed<T> {
        Addressed { rpc, to }
    }
}

/// The `to` of an addressed request, read without the request itself.
#[derive(Deserialize)]
struct Recipient {
    #[serde(default)]
    to: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub id: u64,
    /// `host:port` of the joiner's sentinel port.
    pub addr: String,
    /// First join of a process whose Raft storage is empty.
    pub fresh: bool,
    /// The joiner's Sentinel runid.
    #[serde(default)]
    pub myid: String,
    /// The joiner's static peer list, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,
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
    /// committed log. It must not run as that node.
    LostState,
    Failed(String),
    /// The membership rules refused it; nothing changed.
    Refused(String),
    /// Not now (another change is being committed, or the leader has not
    /// probed the members long enough); nothing changed.
    Retry(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetRequest {
    pub id: u64,
    /// Why it is asked: "forget" (an operator) or "reset".
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForgetReply {
    Removed,
    NotLeader { leader: Option<String> },
    Refused(String),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub id: u64,
    pub initialized: bool,
    pub leader: Option<(u64, String)>,
    pub voters: Vec<u64>,
    /// The group's cluster id (None: not known yet).
    #[serde(default)]
    pub cluster_id: Option<String>,
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
        cluster_id: node.cluster_id.get().map(str::to_string),
    }
}

type WriteError = RaftError<u64, ClientWriteError<u64, Member>>;

/// The leader's address when `e` says this node is not the leader.
fn forward_to(node: &RaftNode, e: &WriteError) -> Option<Option<String>> {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Some(
            f.leader_node
                .as_ref()
                .map(|n| n.addr.clone())
                .or_else(|| leader_addr(node).map(|l| l.1)),
        ),
        _ => None,
    }
}

/// Probes `addr`: whether node `id` answers there as itself.
pub async fn probe(node: &RaftNode, id: u64, addr: &str) -> bool {
    let mut link = node.network.link(addr);
    matches!(link.call::<_, Status>("status", &(), PROBE_TTL).await, Ok(st) if st.id == id)
}

/// Records the answers of probes made now.
fn record_probes(node: &RaftNode, answered: &[u64]) {
    let now = tokio::time::Instant::now();
    let mut p = node.probes.lock().unwrap_or_else(|e| e.into_inner());
    p.since.get_or_insert(now);
    for &id in answered {
        p.last.insert(id, now);
    }
}

/// The leader's view of its group, for a decision now: members not known to
/// be live are probed first, so a decision is taken on fresh answers.
pub async fn group_view(node: &RaftNode) -> GroupView {
    let m = node.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let window = node.policy.live_window;
    let stale: Vec<(u64, String)> = {
        let p = node.probes.lock().unwrap_or_else(|e| e.into_inner());
        let now = tokio::time::Instant::now();
        membership
            .nodes()
            .filter(|(id, _)| **id != node.id && !p.liveness(**id, now, window).is_live())
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect()
    };
    let mut probes = tokio::task::JoinSet::new();
    for (id, addr) in stale {
        let node = node.clone();
        probes.spawn(async move { probe(&node, id, &addr).await.then_some(id) });
    }
    let mut answered = Vec::new();
    while let Some(r) = probes.join_next().await {
        if let Ok(Some(id)) = r {
            answered.push(id);
        }
    }
    record_probes(node, &answered);
    let now = tokio::time::Instant::now();
    let p = node.probes.lock().unwrap_or_else(|e| e.into_inner());
    let members = membership
        .nodes()
        .map(|(id, n)| MemberState {
            id: *id,
            member: n.clone(),
            voter: voters.contains(id),
            live: if *id == node.id {
                membership::Liveness::Live
            } else {
                p.liveness(*id, now, window)
            },
        })
        .collect();
    GroupView {
        leader: node.id,
        members,
        changing: membership.get_joint_config().len() > 1,
        peers: node.policy.peers.get(),
        authenticated: node.secret().is_some(),
    }
}

/// Why a membership change was not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// This node no longer leads (the leader's address, when known).
    NotLeader(Option<String>),
    Failed(String),
}

impl ChangeError {
    fn of(node: &RaftNode, e: WriteError) -> ChangeError {
        match forward_to(node, &e) {
            Some(leader) => ChangeError::NotLeader(leader),
            None => ChangeError::Failed(e.to_string()),
        }
    }
}

/// Carries out a membership change with openraft (joint consensus for any
/// change of voters). Logged once, Sentinel-style.
pub async fn carry_out(node: &RaftNode, change: &Change, why: &str) -> Result<(), ChangeError> {
    let err = |e| ChangeError::of(node, e);
    let wait_caught_up = |id: u64, member: Member| async move {
        match tokio::time::timeout(CATCH_UP, node.raft.add_learner(id, member, true)).await {
            Ok(r) => r.map(|_| ()).map_err(|e| ChangeError::of(node, e)),
            Err(_) => Err(ChangeError::Failed(format!(
                "node {id} did not catch up within {CATCH_UP:?}"
            ))),
        }
    };
    let membership = || {
        node.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone()
    };
    // A learner, caught up, then a voter.
    let add_voter = |id: u64, member: Member| async move {
        wait_caught_up(id, member.clone()).await?;
        node.raft
            .change_membership(ChangeMembers::AddVoterIds([id].into()), false)
            .await
            .map_err(|e| ChangeError::of(node, e))?;
        tracing::warn!("+raft-member-add {id} {} {}", member.addr, member.myid);
        Ok::<(), ChangeError>(())
    };
    match change {
        Change::SetNode { id, member } => {
            node.raft
                .change_membership(
                    ChangeMembers::SetNodes([(*id, member.clone())].into_iter().collect()),
                    false,
                )
                .await
                .map_err(err)?;
            tracing::warn!("+raft-member-update {id} {} {}", member.addr, member.myid);
        }
        Change::AddVoter { id, member } => add_voter(*id, member.clone()).await?,
        Change::Promote { id } => {
            let member = membership().get_node(id).cloned().unwrap_or_default();
            add_voter(*id, member).await?
        }
        Change::Replace { old, id, member } => {
            wait_caught_up(*id, member.clone()).await?;
            let voters: BTreeSet<u64> = membership()
                .voter_ids()
                .filter(|v| v != old)
                .chain([*id])
                .collect();
            node.raft
                .change_membership(ChangeMembers::ReplaceAllVoters(voters), false)
                .await
                .map_err(err)?;
            tracing::warn!(
                "+raft-member-replace {old} {id} {} {} (a new incarnation)",
                member.addr,
                member.myid
            );
        }
        Change::Remove { id, voter } => {
            let addr = membership()
                .get_node(id)
                .map(|n| n.addr.clone())
                .unwrap_or_default();
            let change = if *voter {
                ChangeMembers::RemoveVoters([*id].into())
            } else {
                ChangeMembers::RemoveNodes([*id].into())
            };
            node.raft
                .change_membership(change, false)
                .await
                .map_err(err)?;
            tracing::warn!("-raft-member {id} {addr} {why}");
        }
    }
    Ok(())
}

fn refused(node: &RaftNode, r: &MembershipRefusal) -> String {
    node.counters
        .membership_refused
        .fetch_add(1, Ordering::Relaxed);
    metrics::counter!("raftinel_raft_membership_refused_total").increment(1);
    r.to_string()
}

/// Holds the membership lock and gives the leader's view, or says where
/// the leader is when this node does not lead.
async fn leading(
    node: &RaftNode,
) -> Result<(tokio::sync::MutexGuard<'_, ()>, GroupView), Option<String>> {
    let one_at_a_time = node.changes.lock().await;
    if node.leader() != Some(node.id) {
        return Err(leader_addr(node).map(|l| l.1));
    }
    Ok((one_at_a_time, group_view(node).await))
}

impl From<ChangeError> for JoinReply {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::NotLeader(leader) => JoinReply::NotLeader { leader },
            ChangeError::Failed(e) => JoinReply::Failed(e),
        }
    }
}

impl From<ChangeError> for ForgetReply {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::NotLeader(leader) => ForgetReply::NotLeader { leader },
            ChangeError::Failed(e) => ForgetReply::Failed(e),
        }
    }
}

/// A join, on the leader only (see `core::membership::decide_join`).
pub async fn join(node: &RaftNode, req: &JoinRequest) -> JoinReply {
    let (_one_at_a_time, view) = match leading(node).await {
        Ok(v) => v,
        Err(leader) => return JoinReply::NotLeader { leader },
    };
    let ask = membership::JoinRequest {
        id: req.id,
        addr: req.addr.clone(),
        myid: req.myid.clone(),
        fresh: req.fresh,
        peers: req.peers.clone(),
    };
    match membership::decide_join(&view, &ask) {
        JoinDecision::Member => JoinReply::Joined,
        JoinDecision::Refuse(r @ MembershipRefusal::LostState { .. }) => {
            refused(node, &r);
            JoinReply::LostState
        }
        JoinDecision::Refuse(
            r @ (MembershipRefusal::Busy | MembershipRefusal::NotProbedYet { .. }),
        ) => JoinReply::Retry(r.to_string()),
        JoinDecision::Refuse(r) => JoinReply::Refused(refused(node, &r)),
        JoinDecision::Change(c) => match carry_out(node, &c, "joined").await {
            Ok(()) => JoinReply::Joined,
            Err(e) => e.into(),
        },
    }
}

/// A removal, on the leader only (see `core::membership::decide_remove`).
pub async fn forget(node: &RaftNode, req: &ForgetRequest) -> ForgetReply {
    let (_one_at_a_time, view) = match leading(node).await {
        Ok(v) => v,
        Err(leader) => return ForgetReply::NotLeader { leader },
    };
    let why = match req.reason.as_str() {
        "reset" => membership::RemoveReason::Reset,
        "unlisted" => membership::RemoveReason::NotInPeerList,
        _ => membership::RemoveReason::Forget,
    };
    match membership::decide_remove(&view, req.id) {
        Err(r) => ForgetReply::Refused(refused(node, &r)),
        Ok(c) => match carry_out(node, &c, &why.to_string()).await {
            Ok(()) => ForgetReply::Removed,
            Err(e) => e.into(),
        },
    }
}

/// Commits `cmd` if this node leads; tells the caller where the leader is otherwise.
pub async fn propose_local(node: &RaftNode, cmd: Command) -> ProposeReply {
    match node.raft.client_write(cmd).await {
        Ok(resp) => ProposeReply::Done(resp.data),
        Err(e) => match forward_to(node, &e) {
            Some(leader) => ProposeReply::NotLeader { leader },
            None => ProposeReply::Failed(e.to_string()),
        },
    }
}

/// Handles one request; `args[0]` is the command name. `session` is the
/// connection's signing state, `from` the client's address (for the log).
/// The caller has checked the connection's ACL user.
pub async fn handle(
    node: Option<&RaftNode>,
    refusals: &Refusals,
    session: &mut ServerSession,
    from: &str,
    args: &[Vec<u8>],
) -> Result<RpcReply, RpcError> {
    let r = dispatch(node, session, args).await;
    if let Err(e) = &r {
        refusals.count(e, from);
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
    // `status` tells a daemon that does not know its group's id yet what it
    // is; everything else must name this group.
    let mine = node.cluster_id.get();
    let named = cluster.as_slice();
    let cluster_ok = mine.is_some_and(|c| c.as_bytes() == named);
    let any = op.as_slice() == b"status" && (named == ANY_CLUSTER.as_bytes() || mine.is_none());
    if !cluster_ok && !any {
        return Err(RpcError::ClusterMismatch);
    }
    let raft = &node.raft;
    macro_rules! parse {
        () => {
            serde_json::from_slice(body).map_err(|_| RpcError::Malformed)?
        };
    }
    // openraft's RPCs are for one node id: never answered for another.
    macro_rules! addressed {
        () => {{
            let r: Recipient = parse!();
            if let Some(to) = r.to.filter(|&to| to != node.id) {
                return Err(RpcError::WrongNode { to, me: node.id });
            }
            parse!()
        }};
    }
    let out = match op.as_slice() {
        b"append" => {
            let req: openraft::raft::AppendEntriesRequest<super::TypeConfig> = addressed!();
            let leader = req.vote.leader_id().voted_for();
            let committed = req.vote.is_committed();
            let resp = raft.append_entries(req).await;
            // Heard from the leader: it was accepted as such.
            if let (Ok(r), Some(leader), true) = (&resp, leader, committed) {
                if !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_)) {
                    node.contact.heard_from(leader);
                }
            }
            serde_json::to_vec(&resp)
        }
        b"vote" => serde_json::to_vec(&raft.vote(addressed!()).await),
        b"snapshot" => serde_json::to_vec(&raft.install_snapshot(addressed!()).await),
        b"join" => {
            let req: JoinRequest = parse!();
            serde_json::to_vec(&join(node, &req).await)
        }
        b"forget" => {
            let req: ForgetRequest = parse!();
            serde_json::to_vec(&forget(node, &req).await)
        }
        b"status" => serde_json::to_vec(&status(node)),
        b"elect" => {
            let req: super::handover::ElectRequest = parse!();
            serde_json::to_vec(&super::handover::on_elect(node, &req).await)
        }
        b"propose" => {
            let cmd: Command = parse!();
            // Every daemon signs what `apply` checks the authority of.
            if cmd.unsigned() {
                return Err(RpcError::Malformed);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_addressed_request_carries_its_fields_and_the_node_id() {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Req {
            a: u32,
        }
        let json = serde_json::to_string(&Addressed::new(9, &Req { a: 1 })).unwrap();
        assert_eq!(json, r#"{"a":1,"to":9}"#);
        let r: Recipient = serde_json::from_str(&json).unwrap();
        assert_eq!(r.to, Some(9));
        // The request reads as before, `to` ignored; and unaddressed
        // requests (earlier releases) have none.
        assert_eq!(serde_json::from_str::<Req>(&json).unwrap(), Req { a: 1 });
        let r: Recipient = serde_json::from_str(r#"{"a":1}"#).unwrap();
        assert_eq!(r.to, None);
    }
}
