//! Runs the local Raft node inside the daemon: forms or joins the group,
//! forwards the core's proposals to the leader, and feeds the core what Raft
//! decided (`Input::Committed`) and where this node stands (`Input::Raft`).
//!
//! Group formation ("exactly one node initializes"):
//! - with a static peer list (`[raft] peers`), only the first peer may
//!   bootstrap, and only after every reachable peer said it is not in a group;
//!   the others join through any member;
//! - in a drop-in sentinel.conf deployment, the candidates are this daemon and
//!   the sentinels it discovered by hello; after a grace window, the one with
//!   the smallest node id bootstraps and the others join.
//!
//! A node whose storage is empty but whose id is already a voter is refused by
//! the leader (`LostState`) and stops: letting it vote with an empty log could
//! elect a leader that lacks committed decisions.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::network::{split_addr, CredentialsFn, Network, PeerAuth, PeerLink};
use super::node::{RaftNode, StartError};
use super::rpc::{self, JoinReply, JoinRequest, ProposeReply, Status};
use super::trust::GroupSecret;
use crate::core::group::node_id_from_myid;
use crate::core::group::Command;
use crate::core::{Input, RaftView};
use crate::runtime::Shared;

/// How long a drop-in daemon listens for peers' hellos before the smallest id
/// may bootstrap (hellos go out every 2 s).
const DISCOVERY_GRACE: Duration = Duration::from_secs(3);
/// How long a drop-in daemon that has discovered no peer at all keeps
/// listening, counted from when its own pubsub links are up, before it forms a
/// group alone. Hellos go out every 2 s per master, but with hundreds of
/// masters the first ones arrive several seconds after start: daemons started
/// together that each bootstrapped alone would stay in separate one-node
/// groups for good (no ODOWN could ever be committed).
const LONE_GRACE: Duration = Duration::from_secs(8);
/// Cadence of the formation loop while the node is not in a group.
const FORMATION_PERIOD: Duration = Duration::from_millis(500);
/// Every RPC made by the driver itself.
const RPC_TTL: Duration = Duration::from_secs(1);

/// Where the group lives and how to reach peers.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub cluster_id: String,
    /// Static peers (`host:port` of their sentinel ports); empty = discover.
    pub peers: Vec<String>,
    pub data_dir: PathBuf,
    /// `data_dir` may be shared with other daemons (it is `dir` or the working
    /// directory): use a per-daemon subdirectory of it.
    pub shared_root: bool,
    /// `announce-ip:announce-port` when set.
    pub announce: Option<String>,
    /// This daemon's sentinel port.
    pub port: u16,
    /// The group secret RPCs are signed with (`[raft] secret-file` or
    /// `RAFTINEL_SECRET`). RPCs authenticate to peers with the credentials
    /// of Sentinel's peer links, read from the running configuration.
    pub secret: Option<GroupSecret>,
    pub down_after_ms: u64,
}

impl GroupSettings {
    /// Settings from the loaded configuration. The cluster id is, in order:
    /// `[raft] cluster-id`, `RAFTINEL_CLUSTER_ID`, or one derived from the
    /// monitored master names (so sentinel.conf needs no new directive).
    pub fn from_config(cfg: &crate::config::Config) -> GroupSettings {
        let g = &cfg.sentinel.globals;
        let mut names: Vec<&str> = cfg
            .sentinel
            .masters
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        names.sort_unstable();
        let cluster_id = cfg
            .raft
            .cluster_id
            .clone()
            .or_else(|| std::env::var("RAFTINEL_CLUSTER_ID").ok())
            .unwrap_or_else(|| format!("raftinel:{}", names.join(",")));
        // An explicit data directory belongs to this daemon; `dir` (or the
        // working directory) may be shared by several daemons started from
        // the same place, so the Raft data goes to a subdirectory named after
        // the daemon's id there (see `data_dir_for`).
        let (data_dir, shared_root) = match cfg
            .raft
            .data_dir
            .clone()
            .or_else(|| cfg.server.data_dir.clone())
        {
            Some(d) => (PathBuf::from(d), false),
            None => (
                cfg.server
                    .dir
                    .clone()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(".")),
                true,
            ),
        };
        let port = cfg.server.port;
        let announce = g
            .announce_ip
            .as_ref()
            .filter(|ip| !ip.is_empty())
            .map(|ip| {
                let p = if g.announce_port != 0 {
                    g.announce_port
                } else {
                    port
                };
                format!("{ip}:{p}")
            });
        let down_after_ms = cfg
            .sentinel
            .masters
            .iter()
            .map(|m| m.down_after_ms)
            .min()
            .unwrap_or(crate::config::MasterState::DEFAULT_DOWN_AFTER_MS);
        GroupSettings {
            cluster_id,
            peers: cfg.raft.peers.clone(),
            data_dir,
            shared_root,
            announce,
            port,
            secret: cfg.raft.secret.clone(),
            down_after_ms,
        }
    }
}

/// Starts the node, publishes it in `shared`, and spawns the driver tasks.
/// Returns once the node runs; group formation continues in the background.
pub async fn start(shared: Arc<Shared>, settings: GroupSettings) -> Result<RaftNode, StartError> {
    let myid = shared.lock_core().myid().to_string();
    let id = node_id_from_myid(&myid)
        .ok_or_else(|| StartError::Config(format!("myid {myid:?} is not 40 hex digits")))?;
    let data_dir = data_dir_for(&settings, &myid);
    // Sentinel's peer-link credentials as they are now: `SENTINEL CONFIG SET
    // sentinel-user / sentinel-pass` applies to the next RPC.
    let running = Arc::downgrade(&shared);
    let credentials: CredentialsFn = Arc::new(move || {
        running
            .upgrade()
            .map(|s| s.lock_core().sentinel_auth())
            .unwrap_or_default()
    });
    let (node, report) = RaftNode::start(
        &data_dir,
        id,
        &settings.cluster_id,
        settings.down_after_ms,
        PeerAuth::new(settings.secret.clone(), credentials),
    )
    .await?;
    if report.torn_tail_bytes > 0 {
        tracing::warn!(
            "raft log: cut {} bytes of a torn final record (a crash mid-append; never acknowledged)",
            report.torn_tail_bytes
        );
    }
    let _ = shared.raft.set(node.clone());
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = shared.proposals.set(tx);
    let network = node.network.clone();
    tokio::spawn(forward_proposals(
        shared.clone(),
        node.clone(),
        network.clone(),
        rx,
    ));
    tokio::spawn(feed_committed(shared.clone(), node.clone()));
    tokio::spawn(feed_raft_view(shared.clone(), node.clone()));
    tokio::spawn(form_group(
        shared,
        node.clone(),
        network,
        settings,
        report.was_empty,
    ));
    Ok(node)
}

/// Where this daemon's Raft data lives: the explicit data directory, or
/// `raftinel-<first 8 hex of myid>` under a possibly shared `dir`.
pub fn data_dir_for(settings: &GroupSettings, myid: &str) -> PathBuf {
    if settings.shared_root {
        settings
            .data_dir
            .join(format!("raftinel-{}", myid.get(..8).unwrap_or(myid)))
    } else {
        settings.data_dir.clone()
    }
}

fn feed(shared: &Shared, input: Input) {
    let actions = shared.lock_core().handle(shared.now(), input);
    // Config flushes and events in the background: this task must keep
    // feeding commits while a flush is written.
    shared.execute_background(actions);
}

/// Every applied change of the committed state goes to the core.
async fn feed_committed(shared: Arc<Shared>, node: RaftNode) {
    let mut rx = node.state.clone();
    loop {
        let state = rx.borrow_and_update().clone();
        feed(&shared, Input::Committed(Box::new(state)));
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

/// Leadership and membership changes go to the core as a `RaftView`.
async fn feed_raft_view(shared: Arc<Shared>, node: RaftNode) {
    let mut rx = node.raft.metrics();
    let mut last = None;
    loop {
        let view = {
            let m = rx.borrow_and_update();
            let voters = m.membership_config.membership().voter_ids().count();
            RaftView {
                node_id: node.id,
                initialized: voters > 0,
                is_leader: m.current_leader == Some(node.id),
                voters,
                leader: m.current_leader,
            }
        };
        if last != Some(view) {
            last = Some(view);
            metrics::gauge!("raftinel_raft_is_leader").set(if view.is_leader { 1.0 } else { 0.0 });
            metrics::gauge!("raftinel_raft_voters").set(view.voters as f64);
            feed(&shared, Input::Raft(view));
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

/// Proposals are committed through the leader: locally when this node leads,
/// else by RPC to the leader. A proposal that cannot be delivered is dropped:
/// the core proposes again what it still needs and does not see committed.
///
/// Everything queued is taken at once and coalesced (see `coalesce`).
/// - On the leader the batch is handed to openraft in proposal order without
///   waiting for each commit (openraft appends what it has queued together):
///   failover starts carry increasing epochs, and one applied before an
///   earlier one would make that one stale.
/// - A follower sends one sequence per master, the masters spread over
///   `PROPOSE_LINKS` connections: the leader answers the requests of one
///   connection in order, each after its commit, so with a single connection
///   twenty masters going down together had their opinions committed one
///   after the other.
async fn forward_proposals(
    shared: Arc<Shared>,
    node: RaftNode,
    network: Network,
    mut rx: mpsc::UnboundedReceiver<Command>,
) {
    let mut links: Vec<PeerLink> = Vec::new();
    loop {
        let first = tokio::select! {
            c = rx.recv() => match c { Some(c) => c, None => return },
            _ = shared.shutdown.cancelled() => return,
        };
        let mut batch = vec![first];
        while let Ok(c) = rx.try_recv() {
            batch.push(c);
        }
        let batch = coalesce(batch);
        let leader = node.leader();
        if leader == Some(node.id) {
            for cmd in batch {
                match node.raft.client_write_ff(cmd).await {
                    Ok(done) => {
                        tokio::spawn(async move {
                            match done.await {
                                Ok(Ok(_)) => {}
                                Ok(Err(e)) => tracing::debug!("proposal failed: {e}"),
                                Err(e) => tracing::debug!("proposal dropped: {e}"),
                            }
                        });
                    }
                    Err(e) => {
                        tracing::debug!("proposal failed: {e}");
                        break;
                    }
                }
            }
            continue;
        }
        let Some(addr) = leader_addr(&node) else {
            tracing::debug!("no raft leader known; dropping {} proposal(s)", batch.len());
            continue;
        };
        if links.first().is_none_or(|l| l.addr() != addr) {
            links = (0..PROPOSE_LINKS).map(|_| network.link(&addr)).collect();
        }
        // Per master, in proposal order (a Monitor before its Opinion); a
        // master always on the same connection, masters spread over them.
        let mut per_link: Vec<Vec<Vec<Command>>> = vec![Vec::new(); links.len()];
        let mut per_master: BTreeMap<String, Vec<Command>> = BTreeMap::new();
        for cmd in batch {
            per_master
                .entry(cmd.master().to_string())
                .or_default()
                .push(cmd);
        }
        for (name, cmds) in per_master {
            per_link[link_slot(&name, links.len())].push(cmds);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (slot, seqs) in per_link.into_iter().enumerate() {
            if seqs.is_empty() {
                continue;
            }
            let mut l = links[slot].clone();
            let addr = addr.clone();
            tasks.spawn(async move {
                if let Err(e) = l.connect().await {
                    tracing::debug!("proposals to {addr} failed: {e}");
                    return (slot, None);
                }
                // The sequences of one connection run concurrently: the
                // requests are pipelined, each master's in order.
                let mut calls = tokio::task::JoinSet::new();
                for cmds in seqs {
                    let mut l = l.clone();
                    let addr = addr.clone();
                    calls.spawn(async move {
                        for cmd in cmds {
                            match l.call::<_, ProposeReply>("propose", &cmd, RPC_TTL).await {
                                Ok(ProposeReply::Done(_)) => {}
                                Ok(other) => tracing::debug!("proposal not committed: {other:?}"),
                                Err(e) => {
                                    tracing::debug!("proposal to {addr} failed: {e}");
                                    return false;
                                }
                            }
                        }
                        true
                    });
                }
                let mut healthy = true;
                while let Some(r) = calls.join_next().await {
                    healthy &= r.unwrap_or(false);
                }
                (slot, healthy.then_some(l))
            });
        }
        // Bounded: every call has RPC_TTL. What the core queues meanwhile is
        // coalesced into the next batch.
        let mut results = Vec::new();
        tokio::select! {
            _ = async {
                while let Some(r) = tasks.join_next().await {
                    if let Ok(r) = r {
                        results.push(r);
                    }
                }
            } => {}
            _ = shared.shutdown.cancelled() => return,
        }
        // A connected link is kept for the next batch; a failed one is
        // replaced by a fresh one.
        for (slot, link) in results {
            if let Some(l) = links.get_mut(slot) {
                *l = link.unwrap_or_else(|| network.link(&addr));
            }
        }
    }
}

/// Connections a follower uses to forward proposals to the leader.
const PROPOSE_LINKS: usize = 8;

/// The connection a master's proposals take (stable for a name).
fn link_slot(name: &str, links: usize) -> usize {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % links.max(1) as u64) as usize
}

/// Drops the proposals of a batch that another one makes pointless: an exact
/// repeat (the core re-proposes until it sees a commit), and an older opinion
/// of a daemon about a master (the newest takes its place). Everything keeps
/// the position of its first occurrence, so a command another depends on
/// (a Monitor before an Opinion) still goes first.
fn coalesce(batch: Vec<Command>) -> Vec<Command> {
    let mut out: Vec<Command> = Vec::with_capacity(batch.len());
    for cmd in batch {
        let same_opinion = |c: &Command| {
            matches!(
                (c, &cmd),
                (
                    Command::Opinion { name: n1, node: a, .. },
                    Command::Opinion { name: n2, node: b, .. },
                ) if n1 == n2 && a == b
            )
        };
        if let Some(slot) = out.iter_mut().find(|c| same_opinion(c)) {
            *slot = cmd;
        } else if !out.contains(&cmd) {
            out.push(cmd);
        }
    }
    out
}

fn leader_addr(node: &RaftNode) -> Option<String> {
    rpc::status(node).leader.map(|(_, addr)| addr)
}

/// Whether `ip` belongs to this machine (binding to it succeeds).
fn is_local_ip(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// This daemon's address as peers reach it.
async fn own_addr(shared: &Shared, settings: &GroupSettings) -> Option<String> {
    if let Some(a) = &settings.announce {
        return Some(a.clone());
    }
    if !settings.peers.is_empty() {
        let host = hostname();
        for p in &settings.peers {
            let (h, port) = split_addr(p)?;
            if port != settings.port {
                continue;
            }
            let short = h.split('.').next().unwrap_or("");
            if !host.is_empty() && short == host {
                return Some(p.clone());
            }
            if let Ok(addr) = crate::links::connect::resolve(&h, port).await {
                if is_local_ip(addr.ip()) {
                    return Some(p.clone());
                }
            }
        }
        return None;
    }
    // Discovered mode: the address our links to the master come from, which
    // is also the address our hellos announce.
    let (host, port) = {
        let core = shared.lock_core();
        let m = core.masters.values().next()?;
        (m.inst.host.clone(), m.inst.port)
    };
    let (_, local_ip) = crate::links::connect::connect(&host, port).await.ok()?;
    let ip = if local_ip.contains(':') {
        format!("[{local_ip}]")
    } else {
        local_ip
    };
    Some(format!("{ip}:{}", settings.port))
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Candidate members: static peers, or the sentinels discovered by hello
/// (with their node ids, so the smallest id can be found).
fn candidates(shared: &Shared, settings: &GroupSettings) -> Vec<(Option<u64>, String)> {
    if !settings.peers.is_empty() {
        return settings.peers.iter().map(|p| (None, p.clone())).collect();
    }
    let core = shared.lock_core();
    let mut out = BTreeMap::new();
    for m in core.masters.values() {
        for s in m.sentinels.values() {
            let host = if s.host.contains(':') {
                format!("[{}]", s.host)
            } else {
                s.host.clone()
            };
            out.insert(
                s.name.clone(),
                (node_id_from_myid(&s.name), format!("{host}:{}", s.port)),
            );
        }
    }
    out.into_values().collect()
}

/// Bootstraps or joins until this node is a voter of a group.
///
/// Bootstrapping needs a majority of the known candidates (this daemon
/// included) to have answered that they are in no group: a daemon that can
/// reach too few of the peers it knows of waits rather than start a second
/// group on its own (during a restart of everything, or a partition).
async fn form_group(
    shared: Arc<Shared>,
    node: RaftNode,
    network: Network,
    settings: GroupSettings,
    started_blank: bool,
) {
    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(FORMATION_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut me: Option<String> = None;
    let mut warned = false;
    // A join is answered before this node shows as a voter (it is added as
    // a learner, then promoted): the loop may join again; say it once.
    let mut joined_through: Option<String> = None;
    let mut join_sent = false;
    let mut pubsub_up_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        // Checked after the wait: a bootstrap or join done in the previous
        // round may take a moment to show in the metrics.
        if node.is_voter() {
            return;
        }
        if me.is_none() {
            me = own_addr(&shared, &settings).await;
            if me.is_none() {
                if !warned {
                    tracing::warn!(
                        "raft: cannot tell this daemon's own address among the peers yet"
                    );
                    warned = true;
                }
                continue;
            }
        }
        let Some(addr) = me.clone() else { continue };
        if pubsub_up_since.is_none() && any_pubsub_up(&shared) {
            pubsub_up_since = Some(tokio::time::Instant::now());
        }
        let cands = candidates(&shared, &settings);
        let mut statuses: Vec<(String, Status)> = Vec::new();
        for (_, peer) in cands.iter().filter(|(_, p)| *p != addr) {
            let mut link = network.link(peer);
            if let Ok(st) = link.call::<_, Status>("status", &(), RPC_TTL).await {
                statuses.push((peer.clone(), st));
            }
        }
        // Blank = no log and no term now. A node that was added as a learner
        // already holds entries, so a retried join is not mistaken for a
        // voter that lost its data.
        // Only the first join of this process can tell that the group
        // already counts this node as a voter whose data was lost: a retry
        // (the previous answer lost or late, or the leader's first entries
        // not arrived yet) is still blank here although the group added it
        // moments ago.
        let blank = node.is_blank() && !join_sent;
        if let Some((peer, _)) = statuses.iter().find(|(_, st)| st.initialized) {
            join_sent = true;
            match join(&network, peer, node.id, &addr, blank).await {
                Ok(()) if joined_through.as_deref() != Some(peer.as_str()) => {
                    tracing::info!("raft: joined the group through {peer}");
                    joined_through = Some(peer.clone());
                }
                Ok(()) => tracing::debug!("raft: join through {peer} confirmed again"),
                Err(JoinFailure::LostState) => {
                    tracing::error!(
                        "raft: this daemon (node {}) is already a voter of the group, but its raft \
                         data in {} is empty: its state was lost. Refusing to start; remove it from \
                         the group or restore its data directory.",
                        node.id,
                        data_dir_for(&settings, shared.lock_core().myid()).display()
                    );
                    std::process::exit(1);
                }
                Err(JoinFailure::Other(e)) => tracing::debug!("raft: join through {peer}: {e}"),
            }
            continue;
        }
        let others = cands.iter().filter(|(_, p)| *p != addr).count();
        // This daemon plus the peers that answered, out of itself plus all
        // the peers it knows of.
        let majority_answered = (statuses.len() + 1) * 2 > others + 1;
        let may_bootstrap = majority_answered
            && if settings.peers.is_empty() {
                let smallest = statuses
                    .iter()
                    .map(|(_, st)| st.id)
                    .chain([node.id])
                    .min()
                    .unwrap_or(node.id);
                let listened = if others == 0 {
                    pubsub_up_since.is_some_and(|t| t.elapsed() >= LONE_GRACE)
                } else {
                    true
                };
                smallest == node.id && started.elapsed() >= DISCOVERY_GRACE && listened
            } else {
                settings.peers.first() == Some(&addr)
            };
        if may_bootstrap && blank && started_blank {
            match node.bootstrap(&addr).await {
                Ok(()) => tracing::info!(
                    "raft: bootstrapped a new group as node {} at {addr}",
                    node.id
                ),
                Err(e) => tracing::debug!("raft: bootstrap: {e}"),
            }
        }
    }
}

/// Whether hellos can reach this daemon yet: a pubsub link to a master is up.
fn any_pubsub_up(shared: &Shared) -> bool {
    shared
        .lock_core()
        .masters
        .values()
        .any(|m| m.inst.link.pc_up)
}

enum JoinFailure {
    LostState,
    Other(String),
}

async fn join(
    network: &Network,
    via: &str,
    id: u64,
    addr: &str,
    fresh: bool,
) -> Result<(), JoinFailure> {
    let req = JoinRequest {
        id,
        addr: addr.to_string(),
        fresh,
    };
    let mut target = via.to_string();
    for _ in 0..3 {
        let mut link = network.link(&target);
        // Adding a voter waits for it to catch up: allow more than one RPC TTL.
        match link.call::<_, JoinReply>("join", &req, RPC_TTL * 5).await {
            Ok(JoinReply::Joined) => return Ok(()),
            Ok(JoinReply::LostState) => return Err(JoinFailure::LostState),
            Ok(JoinReply::NotLeader { leader: Some(l) }) => target = l,
            Ok(other) => return Err(JoinFailure::Other(format!("{other:?}"))),
            Err(e) => return Err(JoinFailure::Other(e.to_string())),
        }
    }
    Err(JoinFailure::Other("leader kept moving".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opinion(name: &str, node: u64, down: bool) -> Command {
        Command::Opinion {
            name: name.into(),
            node,
            down,
        }
    }

    #[test]
    fn coalesce_keeps_the_latest_opinion_and_drops_repeats() {
        let remove = Command::Remove { name: "b".into() };
        let batch = vec![
            opinion("a", 1, true),
            opinion("b", 1, true),
            remove.clone(),
            opinion("a", 1, false),
            opinion("a", 2, true),
            opinion("b", 1, true),
            remove.clone(),
        ];
        assert_eq!(
            coalesce(batch),
            vec![
                opinion("a", 1, false),
                opinion("b", 1, true),
                remove,
                opinion("a", 2, true),
            ]
        );
    }

    #[test]
    fn coalesce_keeps_distinct_commands_in_order() {
        let batch = vec![
            Command::Monitor {
                name: "a".into(),
                host: "h".into(),
                port: 1,
                quorum: 2,
            },
            opinion("a", 1, true),
        ];
        assert_eq!(coalesce(batch.clone()), batch);
    }
}
