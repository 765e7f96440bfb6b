//! Formation and membership upkeep of the local node, carried out with
//! openraft; every decision is the pure core's (`core::membership`).
//!
//! - Not a voter: ask the known daemons for their `status` (peer list, hello
//!   discovery, the members of its own stored membership) and bootstrap,
//!   join, or wait, as `decide_formation` says.
//! - A voter: keep its own entry right (a daemon back on a new address asks
//!   the leader to update it); if no leader is heard of for a while, check
//!   with its peers that it is still in the group (a daemon removed while it
//!   was away joins again).
//! - The leader: probe the members, and carry out the housekeeping that is
//!   due (silent learners, a static list that shrank, unreachable voters
//!   when enabled), one change at a time.
//! - `SENTINEL RESET` asks, through the core, that daemons it did not
//!   rediscover leave the group: the leader decides.
//!
//! Everything is logged once per change of state, not per round.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::driver::{leader_addr, GroupSettings, RPC_TTL};
use super::node::RaftNode;
use super::rpc::{self, ForgetReply, ForgetRequest, JoinReply, JoinRequest, Status};
use crate::core::split_addr;
use tokio_util::sync::CancellationToken;

use super::Host;
use crate::core::membership::{self, Formation, FormationView, PeerAnswer, WaitReason};

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
/// Cadence of the loop.
const PERIOD: Duration = Duration::from_millis(500);
/// The leader's probes and housekeeping.
const LEADER_PERIOD: Duration = Duration::from_secs(1);
/// A voter that has heard of no leader this long checks that it is still in
/// the group.
const LEADERLESS_CHECK: Duration = Duration::from_secs(10);

/// Logs a line only when it differs from the previous one of its kind.
#[derive(Default)]
struct Once(Option<String>);

impl Once {
    fn info(&mut self, msg: String) {
        if self.0.as_deref() != Some(msg.as_str()) {
            tracing::info!("{msg}");
            self.0 = Some(msg);
        }
    }

    fn warn(&mut self, msg: String) {
        if self.0.as_deref() != Some(msg.as_str()) {
            tracing::warn!("{msg}");
            self.0 = Some(msg);
        }
    }

    fn clear(&mut self) {
        self.0 = None;
    }
}

struct Upkeep {
    host: Arc<dyn Host>,
    node: RaftNode,
    settings: GroupSettings,
    started: Instant,
    /// The Raft storage held nothing when the daemon started, and the
    /// directory never belonged to a group: it may bootstrap one.
    started_blank: bool,
    /// This daemon's address as peers reach it, once known.
    me: Option<String>,
    /// A join was sent by this process (only the first may say "fresh").
    join_sent: bool,
    pubsub_up_since: Option<Instant>,
    /// The node id each peer answered `status` with, by address.
    seen: std::collections::BTreeMap<String, u64>,
    leaderless_since: Option<Instant>,
    /// The group no longer lists this daemon (it was removed while away).
    removed: bool,
    was_leader: bool,
    last_leader_round: Option<Instant>,
    /// When this voter last asked the leader to remove voters its static
    /// peer list no longer names.
    last_unlisted_ask: Option<Instant>,
    formation_log: Once,
    entry_ask: Once,
    entry_log: Once,
    fatal: mpsc::Sender<String>,
}

/// How often a follower asks for the removal of voters its peer list no
/// longer names.
const UNLISTED_ASK_EVERY: Duration = Duration::from_secs(5);

pub(super) async fn run(
    host: Arc<dyn Host>,
    node: RaftNode,
    settings: GroupSettings,
    started_blank: bool,
    mut forgets: mpsc::UnboundedReceiver<u64>,
    fatal: mpsc::Sender<String>,
    shutdown: CancellationToken,
) {
    let mut u = Upkeep {
        host,
        node,
        settings,
        started: Instant::now(),
        started_blank,
        me: None,
        join_sent: false,
        pubsub_up_since: None,
        seen: Default::default(),
        leaderless_since: None,
        removed: false,
        was_leader: false,
        last_leader_round: None,
        last_unlisted_ask: None,
        formation_log: Once::default(),
        entry_ask: Once::default(),
        entry_log: Once::default(),
        fatal,
    };
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            Some(id) = forgets.recv() => {
                u.forget_after_reset(id).await;
                continue;
            }
            _ = shutdown.cancelled() => return,
        }
        if !u.round().await {
            return;
        }
    }
}

impl Upkeep {
    /// The static peer list now (empty: discovery).
    fn static_peers(&self) -> Vec<String> {
        self.node.policy.peers.get().unwrap_or_default()
    }

    /// One round; false when the daemon must stop (a fatal condition was
    /// reported).
    async fn round(&mut self) -> bool {
        if self.me.is_none() {
            self.me = own_addr(&*self.host, &self.settings, &self.static_peers()).await;
            if self.me.is_none() {
                self.formation_log
                    .warn("raft: cannot tell this daemon's own address among the peers yet".into());
                return true;
            }
        }
        if self.pubsub_up_since.is_none() && self.host.hellos_reachable() {
            self.pubsub_up_since = Some(Instant::now());
        }
        if !self.node.is_voter() || self.removed {
            return self.formation().await;
        }
        self.voter_upkeep().await;
        true
    }

    /// Candidate members: static peers, or the sentinels discovered by
    /// hello, plus the members of this node's own stored membership.
    fn candidates(&self) -> Vec<String> {
        let mut out: Vec<String> = match self.node.policy.peers.get() {
            Some(p) if !p.is_empty() => p,
            _ => self.host.discovered_sentinels(),
        };
        let m = self.node.raft.metrics().borrow().clone();
        out.extend(
            m.membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != self.node.id)
                .map(|(_, n)| n.addr.clone()),
        );
        out.sort();
        out.dedup();
        out.retain(|a| Some(a) != self.me.as_ref());
        out
    }

    /// Asks every candidate for its status, in parallel (each under RPC_TTL).
    async fn statuses(&self, cands: &[String]) -> Vec<(String, Status)> {
        let mut calls = tokio::task::JoinSet::new();
        for peer in cands {
            let mut link = self.node.network.link(peer);
            let peer = peer.clone();
            calls.spawn(async move {
                link.call::<_, Status>("status", &(), RPC_TTL)
                    .await
                    .ok()
                    .map(|st| (peer, st))
            });
        }
        let mut out = Vec::new();
        while let Some(r) = calls.join_next().await {
            if let Ok(Some(answer)) = r {
                out.push(answer);
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    async fn formation(&mut self) -> bool {
        let Some(addr) = self.me.clone() else {
            return true;
        };
        let cands = self.candidates();
        let answers: Vec<PeerAnswer> = self
            .statuses(&cands)
            .await
            .into_iter()
            .map(|(addr, st)| PeerAnswer {
                addr,
                id: st.id,
                cluster_id: st.cluster_id,
                initialized: st.initialized,
            })
            .collect();
        for a in &answers {
            self.seen.insert(a.addr.clone(), a.id);
        }
        let absent: Vec<u64> = self
            .seen
            .iter()
            .filter(|(addr, _)| !answers.iter().any(|a| &a.addr == *addr))
            .map(|(_, id)| *id)
            .collect();
        let listened = if cands.is_empty() {
            self.pubsub_up_since
                .is_some_and(|t| t.elapsed() >= LONE_GRACE)
        } else {
            true
        };
        let statics = self.static_peers();
        let view = FormationView {
            me: self.node.id,
            addr: &addr,
            cluster_id: self.node.cluster_id.get(),
            blank: self.node.is_blank() && self.started_blank,
            static_peers: (!statics.is_empty()).then_some(&statics[..]),
            known_peers: cands.len(),
            answers: &answers,
            absent: &absent,
            grace_over: self.started.elapsed() >= DISCOVERY_GRACE && listened,
        };
        match membership::decide_formation(&view) {
            Formation::Join { via, cluster_id } => {
                if let Err(e) = self.node.adopt_cluster_id(&cluster_id) {
                    self.formation_log.warn(format!("raft: {e}"));
                    return true;
                }
                // It knows a group exists now: it never starts another one.
                self.started_blank = false;
                let fresh = self.node.is_blank() && !self.join_sent;
                self.join_sent = true;
                match join(&self.node, &via, &addr, fresh).await {
                    Ok(()) => {
                        self.removed = false;
                        self.formation_log.info(format!(
                            "raft: joined the group {cluster_id} through {via} as node {}",
                            self.node.id
                        ));
                    }
                    Err(JoinFailure::LostState) => {
                        let msg = format!(
                            "raft: this daemon (node {}) is already a voter of the group, but its \
                             raft data in {} is empty: its state was lost. Remove it from the group \
                             (SENTINEL RAFT FORGET {}) or restore its data directory.",
                            self.node.id,
                            self.node.data_dir.display(),
                            self.node.id
                        );
                        let _ = self.fatal.try_send(msg);
                        return false;
                    }
                    Err(JoinFailure::Refused(why)) => self.formation_log.warn(format!(
                        "raft: the group refused this daemon (node {}) for now: {why}",
                        self.node.id
                    )),
                    Err(JoinFailure::Other(e)) => tracing::debug!("raft: join through {via}: {e}"),
                }
            }
            Formation::Bootstrap => self.bootstrap(&addr).await,
            Formation::Wait(why @ WaitReason::SeveralGroups(_)) => self
                .formation_log
                .warn(format!("raft: not joining any group: {why}")),
            Formation::Wait(WaitReason::HasData) => self.formation_log.info(format!(
                "raft: waiting for a member of cluster {} to answer (this daemon's data directory names it, \
                 so it never starts another group: to start a new one, remove {})",
                self.node.cluster_id.get().unwrap_or("?"),
                self.node.data_dir.display()
            )),
            Formation::Wait(why) => tracing::debug!("raft: waiting: {why}"),
        }
        true
    }

    async fn bootstrap(&mut self, addr: &str) {
        let cluster_id = self
            .node
            .cluster_id
            .get()
            .map(str::to_string)
            .or_else(|| self.settings.cluster_id.clone())
            .unwrap_or_else(|| format!("raftinel-{:016x}", rand::random::<u64>()));
        if let Err(e) = self.node.adopt_cluster_id(&cluster_id) {
            self.formation_log.warn(format!("raft: {e}"));
            return;
        }
        match self.node.bootstrap(addr).await {
            Ok(()) => self.formation_log.info(format!(
                "raft: bootstrapped a new group {cluster_id} as node {} at {addr}",
                self.node.id
            )),
            Err(e) => tracing::debug!("raft: bootstrap: {e}"),
        }
    }

    async fn voter_upkeep(&mut self) {
        let Some(addr) = self.me.clone() else {
            return;
        };
        let m = self.node.raft.metrics().borrow().clone();
        let entry = m
            .membership_config
            .membership()
            .get_node(&self.node.id)
            .cloned();
        // Back on a new address (or with a new myid): the leader updates
        // this daemon's entry; it keeps its vote.
        if let Some(e) = entry.filter(|e| e.addr != addr || e.myid != self.node.myid) {
            self.entry_ask.info(format!(
                "raft: this daemon's entry in the group is {} {:?}; asking the leader to update it to {addr}",
                e.addr, e.myid
            ));
            let via = leader_addr(&self.node)
                .into_iter()
                .chain(self.candidates())
                .next();
            if let Some(via) = via {
                match join(&self.node, &via, &addr, false).await {
                    Ok(()) => self
                        .entry_log
                        .info(format!("raft: this daemon's entry is now {addr}")),
                    Err(JoinFailure::Refused(why)) => self.entry_log.warn(format!(
                        "raft: the leader did not update this daemon's entry: {why}"
                    )),
                    Err(_) => {}
                }
            }
        } else {
            self.entry_ask.clear();
            self.entry_log.clear();
        }
        self.check_still_member(m.current_leader.is_some()).await;
        let leads = m.current_leader == Some(self.node.id);
        if leads != self.was_leader {
            let mut p = self.node.probes.lock().unwrap_or_else(|e| e.into_inner());
            p.since = leads.then(Instant::now);
            p.last.clear();
            self.was_leader = leads;
        }
        if leads
            && self
                .last_leader_round
                .is_none_or(|t| t.elapsed() >= LEADER_PERIOD)
        {
            self.last_leader_round = Some(Instant::now());
            self.leader_housekeeping().await;
        }
        if !leads && m.current_leader.is_some() {
            self.ask_removal_of_unlisted(&m).await;
        }
    }

    /// A follower whose static peer list no longer names some voters (a set
    /// scaled in: its pods are rolled with the shorter list while the leader
    /// may still have the longer one) asks the leader to remove them. The
    /// leader removes only a member that does not answer and only if the
    /// rest keeps a live majority, as for any removal; until then the
    /// departed voters would count against the majority at every step of
    /// the roll.
    async fn ask_removal_of_unlisted(
        &mut self,
        m: &openraft::RaftMetrics<u64, crate::core::group::Member>,
    ) {
        let Some(peers) = self.node.policy.peers.get() else {
            return;
        };
        if self
            .last_unlisted_ask
            .is_some_and(|t| t.elapsed() < UNLISTED_ASK_EVERY)
        {
            return;
        }
        let unlisted: Vec<u64> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|&id| id != self.node.id)
            .filter(|id| {
                m.membership_config
                    .membership()
                    .get_node(id)
                    .is_some_and(|n| !peers.contains(&n.addr))
            })
            .collect();
        if unlisted.is_empty() {
            return;
        }
        self.last_unlisted_ask = Some(Instant::now());
        for id in unlisted {
            match forget_through_leader(&self.node, id, "unlisted").await {
                ForgetReply::Removed => tracing::warn!(
                    "raft: node {id}, not in this daemon's peer list, removed by the leader"
                ),
                other => tracing::debug!("raft: removal of unlisted node {id}: {other:?}"),
            }
        }
    }

    /// A voter without a leader for a while asks its peers whether it is
    /// still a member: one removed while it was away joins again.
    async fn check_still_member(&mut self, leader_known: bool) {
        if leader_known {
            self.leaderless_since = None;
            return;
        }
        let since = *self.leaderless_since.get_or_insert_with(Instant::now);
        if since.elapsed() < LEADERLESS_CHECK {
            return;
        }
        self.leaderless_since = Some(Instant::now());
        let cands = self.candidates();
        let mine = self.node.cluster_id.get();
        for (_, st) in self.statuses(&cands).await {
            let in_group = st.initialized && st.cluster_id.as_deref() == mine;
            if in_group && st.leader.is_some() && !st.voters.contains(&self.node.id) {
                self.formation_log.warn(format!(
                    "raft: the group (leader {}) no longer lists this daemon (node {}); joining again",
                    st.leader.map(|l| l.1).unwrap_or_default(),
                    self.node.id
                ));
                self.removed = true;
                return;
            }
        }
    }

    /// The leader's round: probes (inside `group_view`), a joint
    /// configuration left behind by a previous leader, then what
    /// housekeeping says is due.
    async fn leader_housekeeping(&mut self) {
        let Ok(_one_at_a_time) = self.node.changes.try_lock() else {
            return;
        };
        let view = rpc::group_view(&self.node).await;
        if view.changing {
            let m = self.node.raft.metrics().borrow().clone();
            let last = m
                .membership_config
                .membership()
                .get_joint_config()
                .last()
                .cloned()
                .unwrap_or_default();
            if let Err(e) = self
                .node
                .raft
                .change_membership(openraft::ChangeMembers::ReplaceAllVoters(last), false)
                .await
            {
                tracing::debug!("raft: finishing a joint membership: {e}");
            }
            return;
        }
        if let Some((change, why)) = membership::housekeeping(&view, &self.node.policy.housekeeping)
        {
            if let Err(e) = rpc::carry_out(&self.node, &change, &why.to_string()).await {
                tracing::debug!("raft: {change:?} ({why}): {e:?}");
            }
        }
    }

    /// `SENTINEL RESET` did not rediscover voter `id`: the leader removes it
    /// if it is silent and the rest stays a live majority.
    async fn forget_after_reset(&mut self, id: u64) {
        match forget_through_leader(&self.node, id, "reset").await {
            ForgetReply::Removed => {}
            ForgetReply::Refused(why) => tracing::info!(
                "raft: node {id} was not rediscovered after SENTINEL RESET but stays in the group: {why}"
            ),
            other => tracing::debug!("raft: forgetting node {id} after RESET: {other:?}"),
        }
    }
}

/// Asks the leader (through this node when it leads) to remove `id`.
pub async fn forget_through_leader(node: &RaftNode, id: u64, reason: &str) -> ForgetReply {
    let req = ForgetRequest {
        id,
        reason: reason.to_string(),
    };
    let mut target = None;
    for _ in 0..3 {
        let reply = match &target {
            None if node.leader() == Some(node.id) => rpc::forget(node, &req).await,
            None => match leader_addr(node) {
                Some(l) => {
                    target = Some(l);
                    continue;
                }
                None => return ForgetReply::NotLeader { leader: None },
            },
            Some(addr) => {
                let mut link = node.network.link(addr);
                // A removal probes the members first: allow more than one RPC TTL.
                match link
                    .call::<_, ForgetReply>("forget", &req, RPC_TTL * 5)
                    .await
                {
                    Ok(r) => r,
                    Err(e) => return ForgetReply::Failed(e.to_string()),
                }
            }
        };
        match reply {
            ForgetReply::NotLeader { leader: Some(l) } => target = Some(l),
            other => return other,
        }
    }
    ForgetReply::Failed("the leader kept moving".into())
}

enum JoinFailure {
    LostState,
    Refused(String),
    Other(String),
}

async fn join(node: &RaftNode, via: &str, addr: &str, fresh: bool) -> Result<(), JoinFailure> {
    let req = JoinRequest {
        id: node.id,
        addr: addr.to_string(),
        fresh,
        myid: node.myid.clone(),
        peers: node.policy.peers.get(),
    };
    let mut target = via.to_string();
    for _ in 0..3 {
        // A node that believes it leads (a leader restarted on a new
        // address, not yet told of its successor) asks itself.
        let reply = if node.leader() == Some(node.id) {
            Ok(rpc::join(node, &req).await)
        } else {
            let mut link = node.network.link(&target);
            // Adding a voter waits for it to catch up: allow more than one RPC TTL.
            link.call::<_, JoinReply>("join", &req, RPC_TTL * 12).await
        };
        match reply {
            Ok(JoinReply::Joined) => return Ok(()),
            Ok(JoinReply::LostState) => return Err(JoinFailure::LostState),
            Ok(JoinReply::Refused(why)) => return Err(JoinFailure::Refused(why)),
            Ok(JoinReply::Retry(why)) => return Err(JoinFailure::Other(why)),
            Ok(JoinReply::NotLeader { leader: Some(l) }) => target = l,
            Ok(other) => return Err(JoinFailure::Other(format!("{other:?}"))),
            Err(e) => return Err(JoinFailure::Other(e.to_string())),
        }
    }
    Err(JoinFailure::Other("leader kept moving".into()))
}

/// Whether `ip` belongs to this machine (binding to it succeeds).
fn is_local_ip(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// This daemon's address as peers reach it.
async fn own_addr(host: &dyn Host, settings: &GroupSettings, peers: &[String]) -> Option<String> {
    if let Some(a) = &settings.announce {
        return Some(a.clone());
    }
    if !peers.is_empty() {
        let host = hostname();
        for p in peers {
            let (h, port) = split_addr(p)?;
            if port != settings.port {
                continue;
            }
            let short = h.split('.').next().unwrap_or("");
            if !host.is_empty() && short == host {
                return Some(p.clone());
            }
            if let Ok(addr) = crate::links::connect::resolve(h, port).await {
                if is_local_ip(addr.ip()) {
                    return Some(p.clone());
                }
            }
        }
        return None;
    }
    // Discovered mode: the address our links to the master come from, which
    // is also the address our hellos announce.
    let (master, port) = host.a_master()?;
    let (_, local_ip) = crate::links::connect::connect(&master, port).await.ok()?;
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
