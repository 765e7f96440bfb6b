//! Runs the local Raft node inside the daemon: starts it on its data
//! directory, forwards the core's proposals to the leader, and feeds the core
//! what Raft decided (`Input::Committed`) and where this node stands
//! (`Input::Raft`). Formation and membership upkeep run in `upkeep`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::network::{CredentialsFn, Network, PeerAuth, PeerLink};
use super::node::{Policy, RaftNode, StartError};
use super::rpc::{self, ProposeReply};
use super::store::{IdentityOrigin, IdentitySeed};
use super::trust::GroupSecret;
use crate::core::group::{node_id_from_myid, Command};
use crate::core::membership::Housekeeping;
use tokio_util::sync::CancellationToken;

use super::rpc::Counters;
use super::Host;
use crate::core::{Input, RaftView};

/// Every RPC made by the driver itself.
pub(super) const RPC_TTL: Duration = Duration::from_secs(1);

/// Where the group lives and how to reach peers.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// `[raft] cluster-id` or `RAFTINEL_CLUSTER_ID`: the id a new group is
    /// bootstrapped with (else one is generated). The id of an existing group
    /// is the one persisted with its Raft data, never recomputed.
    pub cluster_id: Option<String>,
    /// The id releases before persisted identities computed from the
    /// monitored master names: used once, to convert their data directories.
    pub legacy_cluster_id: String,
    /// Static peers (`host:port` of their sentinel ports); empty = discover.
    pub peers: Vec<String>,
    pub data_dir: PathBuf,
    /// `data_dir` may be shared with other daemons (`dir`, or the default
    /// state directory): use a per-daemon subdirectory of it.
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
    /// `[raft] remove-unreachable-after-ms`.
    pub remove_unreachable_after_ms: Option<u64>,
    /// `tls-replication yes`: RPCs to peers go over TLS with this.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl GroupSettings {
    /// The membership rules this daemon applies when it leads.
    fn policy(&self) -> Policy {
        let (_, _, election_max) = super::node::raft_timing(self.down_after_ms);
        let default = Policy::default();
        Policy {
            peers: super::node::PeerList::new((!self.peers.is_empty()).then(|| self.peers.clone())),
            // Probes go out every second: three missed ones, and never less
            // than an election timeout.
            live_window: Duration::from_millis(election_max.max(3000)),
            housekeeping: Housekeeping {
                remove_unreachable_after: self.remove_unreachable_after_ms,
                ..default.housekeeping
            },
        }
    }
}

/// A condition the daemon cannot run with, found after start (returned to
/// `main`, which stops the daemon with it).
pub type Fatal = mpsc::Receiver<String>;

/// A node id for a new incarnation: random, never 0.
fn fresh_node_id() -> u64 {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return id;
        }
    }
}

/// What the daemon hands the consensus task: the core's proposals and its
/// requests to remove a voter after `SENTINEL RESET`, queued until the
/// consensus task runs.
pub struct Inbox {
    pub proposals: mpsc::UnboundedReceiver<Command>,
    pub forgets: mpsc::UnboundedReceiver<u64>,
}

/// Starts the node and the tasks that drive it: proposals out, commits and
/// the node's place in the group in, formation and membership upkeep, and a
/// watch on openraft's core. Returns once the node runs; a condition the
/// daemon cannot run with, found later, comes back through `Fatal`.
pub async fn start(
    host: Arc<dyn Host>,
    myid: &str,
    settings: GroupSettings,
    inbox: Inbox,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
) -> Result<(RaftNode, Fatal), StartError> {
    let legacy_node_id = node_id_from_myid(myid)
        .ok_or_else(|| StartError::Config(format!("myid {myid:?} is not 40 hex digits")))?;
    let data_dir = data_dir_for(&settings, myid);
    let running = Arc::downgrade(&host);
    let credentials: CredentialsFn = Arc::new(move || {
        running
            .upgrade()
            .map(|h| h.peer_credentials())
            .unwrap_or_default()
    });
    let seed = IdentitySeed {
        fresh_node_id: fresh_node_id(),
        configured_cluster_id: settings.cluster_id.clone(),
        legacy_node_id,
        legacy_cluster_id: settings.legacy_cluster_id.clone(),
    };
    let (mut node, report) = RaftNode::start(
        &data_dir,
        &seed,
        myid,
        settings.down_after_ms,
        PeerAuth::new(settings.secret.clone(), credentials).with_tls(settings.tls.clone()),
        settings.policy(),
    )
    .await?;
    node.counters = counters;
    if report.torn_tail_bytes > 0 {
        tracing::warn!(
            "raft log: cut {} bytes of a torn final record (a crash mid-append; never acknowledged)",
            report.torn_tail_bytes
        );
    }
    report_identity(&node, report.identity_origin, &data_dir);
    let (fatal_tx, fatal_rx) = mpsc::channel(2);
    let network = node.network.clone();
    tokio::spawn(forward_proposals(
        node.clone(),
        network.clone(),
        inbox.proposals,
        shutdown.clone(),
    ));
    tokio::spawn(feed_committed(host.clone(), node.clone(), shutdown.clone()));
    tokio::spawn(feed_raft_view(host.clone(), node.clone(), shutdown.clone()));
    tokio::spawn(feed_contact(host.clone(), node.clone(), shutdown.clone()));
    tokio::spawn(watch_core(node.clone(), fatal_tx.clone(), shutdown.clone()));
    // Only a node that never belonged to a group may start one.
    let may_bootstrap = report.was_empty && report.identity_origin != IdentityOrigin::Emptied;
    tokio::spawn(super::upkeep::run(
        host,
        node.clone(),
        settings,
        may_bootstrap,
        inbox.forgets,
        fatal_tx,
        shutdown,
    ));
    Ok((node, fatal_rx))
}

/// One line on who this daemon is in its group, at start.
fn report_identity(node: &RaftNode, origin: IdentityOrigin, dir: &Path) {
    let cluster = node.cluster_id.get().unwrap_or("(not in a group yet)");
    match origin {
        IdentityOrigin::Converted => tracing::warn!(
            "raft: converted the data directory {} of an earlier release: node {} of cluster {cluster}",
            dir.display(),
            node.id
        ),
        IdentityOrigin::Emptied => tracing::warn!(
            "raft: the raft data in {} is empty: this daemon comes back as a new node {} of cluster \
             {cluster} and will replace its old voter",
            dir.display(),
            node.id
        ),
        IdentityOrigin::New => tracing::info!(
            "raft: new node {} in {} (cluster {cluster})",
            node.id,
            dir.display()
        ),
        IdentityOrigin::Stored => tracing::info!(
            "raft: node {} of cluster {cluster}, data in {}",
            node.id,
            dir.display()
        ),
    }
}

/// Where this daemon's Raft data lives: the explicit data directory, or
/// `raftinel-<first 8 hex of myid>` under a possibly shared root.
pub fn data_dir_for(settings: &GroupSettings, myid: &str) -> PathBuf {
    if settings.shared_root {
        settings
            .data_dir
            .join(format!("raftinel-{}", myid.get(..8).unwrap_or(myid)))
    } else {
        settings.data_dir.clone()
    }
}

/// Every applied change of the committed state goes to the core.
async fn feed_committed(host: Arc<dyn Host>, node: RaftNode, shutdown: CancellationToken) {
    let mut rx = node.state.clone();
    loop {
        let state = rx.borrow_and_update().clone();
        host.feed(Input::Committed(Box::new(state)));
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Leadership and membership changes go to the core as a `RaftView`.
async fn feed_raft_view(host: Arc<dyn Host>, node: RaftNode, shutdown: CancellationToken) {
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
            host.feed(Input::Raft(view));
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
    }
}

/// How often the contact with the group is looked at (fencing's bound
/// includes it).
const CONTACT_POLL: Duration = Duration::from_millis(50);

/// The contact with the group goes to the core when it changes: lost once
/// the lease passed without the leader (a leader: without a majority's
/// acknowledgement); not in touch for a node that has not heard one since
/// it started.
///
/// In touch, it looks again when the lease would run out from the last
/// contact (about twice a second at idle); out of touch, every
/// `CONTACT_POLL`, and for its first second out of touch it reports at every
/// poll: the core's fence decides at each report (`FENCE_PROBE_MS` after its
/// probe), not a tick later.
async fn feed_contact(host: Arc<dyn Host>, node: RaftNode, shutdown: CancellationToken) {
    let mut last = None;
    let mut lost_at = None;
    loop {
        let lease = node.lease();
        let contact = node.leader_contact();
        let in_touch = contact.within(lease);
        let now = tokio::time::Instant::now();
        let fresh = if in_touch {
            lost_at = None;
            false
        } else {
            now - *lost_at.get_or_insert(now) < Duration::from_secs(1)
        };
        if last != Some(in_touch) || fresh {
            last = Some(in_touch);
            host.feed(Input::GroupContact { in_touch });
        }
        let wait = match contact.age() {
            Some(age) if in_touch => lease.saturating_sub(age) + Duration::from_millis(1),
            _ => CONTACT_POLL,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// openraft's core stops for good on a fatal error (a storage failure, a
/// panic inside it): from then on the node neither replicates nor applies,
/// and a daemon that kept answering would answer from stale state. Reports
/// it to the daemon, which stops.
async fn watch_core(node: RaftNode, fatal: mpsc::Sender<String>, shutdown: CancellationToken) {
    let mut rx = node.raft.metrics();
    loop {
        let stopped = rx.borrow_and_update().running_state.clone().err();
        if let Some(e) = stopped {
            if !shutdown.is_cancelled() {
                let _ = fatal
                    .send(format!(
                        "raft: the Raft core of node {} stopped: {e}",
                        node.id
                    ))
                    .await;
            }
            return;
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() {
                if !shutdown.is_cancelled() {
                    let _ = fatal
                        .send(format!("raft: the Raft core of node {} stopped", node.id))
                        .await;
                }
                return;
            },
            _ = shutdown.cancelled() => return,
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
    node: RaftNode,
    network: Network,
    mut rx: mpsc::UnboundedReceiver<Command>,
    shutdown: CancellationToken,
) {
    let mut links: Vec<PeerLink> = Vec::new();
    loop {
        let first = tokio::select! {
            c = rx.recv() => match c { Some(c) => c, None => return },
            _ = shutdown.cancelled() => return,
        };
        let mut batch = vec![first];
        while let Ok(c) = rx.try_recv() {
            batch.push(c);
        }
        let batch = coalesce(batch);
        if node.leader() == Some(node.id) {
            propose_here(&node, batch).await;
            continue;
        }
        let Some(addr) = leader_addr(&node) else {
            tracing::debug!("no raft leader known; dropping {} proposal(s)", batch.len());
            continue;
        };
        if links.first().is_none_or(|l| l.addr() != addr) {
            links = (0..PROPOSE_LINKS).map(|_| network.link(&addr)).collect();
        }
        // Bounded: every call has RPC_TTL. What the core queues meanwhile is
        // coalesced into the next batch.
        let sent = tokio::select! {
            r = send_to_leader(&links, &addr, batch) => r,
            _ = shutdown.cancelled() => return,
        };
        // A connected link is kept for the next batch; a failed one is
        // replaced by a fresh one.
        for (slot, link) in sent {
            if let Some(l) = links.get_mut(slot) {
                *l = link.unwrap_or_else(|| network.link(&addr));
            }
        }
    }
}

/// On the leader: the batch is handed to openraft in proposal order without
/// waiting for each commit.
async fn propose_here(node: &RaftNode, batch: Vec<Command>) {
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
                return;
            }
        }
    }
}

/// On a follower: the batch goes to the leader at `addr`, one sequence per
/// master, a master always on the same one of `links`. Returns, for each
/// link used, the link to keep (None: it failed).
async fn send_to_leader(
    links: &[PeerLink],
    addr: &str,
    batch: Vec<Command>,
) -> Vec<(usize, Option<PeerLink>)> {
    // Per master, in proposal order (a Monitor before its Opinion); masters
    // spread over the links.
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
        let l = links[slot].clone();
        let addr = addr.to_string();
        tasks.spawn(async move { (slot, send_sequences(l, addr, seqs).await) });
    }
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(r) = r {
            results.push(r);
        }
    }
    results
}

/// The sequences of one connection, pipelined: they run concurrently, each
/// master's in order. Returns the link when every call went through.
async fn send_sequences(
    mut l: PeerLink,
    addr: String,
    seqs: Vec<Vec<Command>>,
) -> Option<PeerLink> {
    if let Err(e) = l.connect().await {
        tracing::debug!("proposals to {addr} failed: {e}");
        return None;
    }
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
    healthy.then_some(l)
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

pub(super) fn leader_addr(node: &RaftNode) -> Option<String> {
    rpc::status(node).leader.map(|(_, addr)| addr)
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
