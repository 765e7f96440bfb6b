//! Formation and membership, simulated: daemons with data directories that
//! are kept, wiped or moved, a seeded network of partitions, and a Raft group
//! abstracted to what membership needs (who holds how much of the committed
//! log, which configuration is in force, who leads). Every decision is the
//! real pure core's (`core::membership`: `decide_formation`, `decide_join`,
//! `decide_remove`, `housekeeping`) and the replicated state is the real
//! `GroupState` (authority checks included). Faults: crashes, restarts with
//! kept or wiped data (and sometimes a wiped config: a new myid), restarts on
//! a new address, partitions, runtime MONITOR / REMOVE, operators' FORGET,
//! RESET after a daemon departed, a static peer list scaled out and in,
//! forged and replayed commands.
//!
//! Invariants, after every step:
//! - one group per cluster id, and never two live groups in one deployment;
//! - a committed entry is never lost: the voters that could vote without
//!   holding every committed entry are never a majority;
//! - a membership change never leaves the group without a majority of live
//!   voters (checked when a change commits);
//! - no command that fails the authority checks changes the state;
//! - a daemon's cluster id never changes once set, and node ids are unique.
//!
//! At the end, everything is healed and restarted: every daemon must be a
//! voter of the one group, at its current address, holding the whole log.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::core::group::{Command, GroupState, Member};
use crate::core::membership::{
    self, Change, Formation, FormationView, GroupView, Housekeeping, JoinDecision, JoinRequest,
    Liveness, MemberState, PeerAnswer,
};
use crate::core::Millis;

const TICK: Millis = 500;
/// Live window of the leader's probes.
const WINDOW: Millis = 3000;
const GRACE: Millis = 3000;

/// What a daemon keeps in its Raft data directory.
#[derive(Debug, Clone)]
struct Data {
    node_id: u64,
    cluster: Option<String>,
    /// Committed entries it holds (a prefix of its group's log).
    held: usize,
    /// It was added to its group (its stored membership is not empty).
    joined: bool,
}

#[derive(Debug, Clone)]
struct Daemon {
    up: bool,
    port: u16,
    myid: String,
    data: Option<Data>,
    /// Its partition side.
    side: u8,
    /// The storage held nothing when it last started.
    started_blank: bool,
    started_at: Millis,
    join_sent: bool,
    /// Every cluster id its data ever had (identity_fixed).
    clusters_seen: BTreeSet<String>,
    /// Part of the deployment (a scaled-in daemon is not).
    active: bool,
    /// The node id each peer answered with, by address (this process).
    seen: BTreeMap<String, u64>,
}

impl Daemon {
    fn addr(&self) -> String {
        format!("10.0.0.{}:{}", self.port % 250, self.port)
    }
}

#[derive(Debug, Clone)]
struct Group {
    cluster: String,
    /// node id -> (member, voter)
    members: BTreeMap<u64, (Member, bool)>,
    log_len: usize,
    leader: Option<usize>,
    leader_since: Millis,
    state: GroupState,
    /// When each member was last reachable from the leader.
    last_seen: BTreeMap<u64, Millis>,
    /// Committed commands, for replays.
    history: Vec<Command>,
}

pub(super) struct GroupWorld {
    pub seed: u64,
    rng: StdRng,
    now: Millis,
    daemons: Vec<Daemon>,
    groups: Vec<Group>,
    static_peers: Option<Vec<u16>>,
    hk: Housekeeping,
    next_port: u16,
    pub trace: Vec<String>,
    pub changes: usize,
    pub refused_forged: usize,
    pub bootstraps: usize,
}

fn hex40(rng: &mut StdRng) -> String {
    (0..40)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

fn majority(n: usize) -> usize {
    n / 2 + 1
}

impl GroupWorld {
    pub fn new(seed: u64) -> GroupWorld {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = if rng.gen_bool(0.5) { 3 } else { 5 };
        let static_list = rng.gen_bool(0.4);
        let daemons: Vec<Daemon> = (0..n)
            .map(|i| Daemon {
                up: true,
                port: 26379 + i as u16,
                myid: hex40(&mut rng),
                data: None,
                side: 0,
                started_blank: true,
                started_at: 0,
                join_sent: false,
                clusters_seen: BTreeSet::new(),
                active: true,
                seen: BTreeMap::new(),
            })
            .collect();
        let static_peers = static_list.then(|| daemons.iter().map(|d| d.port).collect());
        let hk = Housekeeping {
            remove_unreachable_after: rng.gen_bool(0.3).then_some(20_000),
            learner_grace: 30_000,
            unlisted_grace: 5_000,
        };
        let mut w = GroupWorld {
            seed,
            rng,
            now: 0,
            daemons,
            groups: Vec::new(),
            static_peers,
            hk,
            next_port: 27000,
            trace: Vec::new(),
            changes: 0,
            refused_forged: 0,
            bootstraps: 0,
        };
        for d in 0..w.daemons.len() {
            w.start(d, false);
        }
        w
    }

    fn note(&mut self, s: String) {
        self.trace.push(format!("t={} {s}", self.now));
        if self.trace.len() > 80 {
            self.trace.remove(0);
        }
    }

    fn fail(&self, what: &str, why: String) -> ! {
        panic!(
            "membership simulation invariant `{what}` violated\n  {why}\n  seed={} t={}ms\n  reproduce: RAFTINEL_SIM_SEED={} cargo test --lib sim::tests::membership_seeds -- --nocapture\n  trace:\n    {}",
            self.seed,
            self.now,
            self.seed,
            self.trace.join("\n    ")
        );
    }

    fn reach(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.daemons[a], &self.daemons[b]);
        x.up && y.up && x.side == y.side
    }

    /// The daemon whose data is node `id` of group `g`.
    fn daemon_of(&self, g: usize, id: u64) -> Option<usize> {
        let cluster = &self.groups[g].cluster;
        self.daemons.iter().position(|d| {
            d.data
                .as_ref()
                .is_some_and(|x| x.node_id == id && x.cluster.as_ref() == Some(cluster))
        })
    }

    fn group_of(&self, d: usize) -> Option<usize> {
        let c = self.daemons[d].data.as_ref()?.cluster.as_ref()?;
        self.groups.iter().position(|g| &g.cluster == c)
    }

    fn start(&mut self, d: usize, wipe: bool) {
        let now = self.now;
        let fresh = self.rng.gen_range(1..u64::MAX);
        let dm = &mut self.daemons[d];
        if wipe {
            // Raft data emptied: the directory's identity keeps its cluster
            // id, the node id is new (store::identity_of).
            let cluster = dm.data.as_ref().and_then(|x| x.cluster.clone());
            dm.data = Some(Data {
                node_id: fresh,
                cluster,
                held: 0,
                joined: false,
            });
        }
        let data = dm.data.get_or_insert(Data {
            node_id: fresh,
            cluster: None,
            held: 0,
            joined: false,
        });
        // Only a directory that never belonged to a group may start one
        // (store::IdentityOrigin::Emptied).
        dm.started_blank = data.held == 0 && !data.joined && data.cluster.is_none();
        dm.up = true;
        dm.started_at = now;
        dm.join_sent = false;
        dm.seen.clear();
    }

    // ------------------------------------------------------------ the group

    /// Live voters of `ids` as the group's leader reaches them.
    fn live_count(&self, g: usize, ids: &BTreeSet<u64>, joining: Option<u64>) -> usize {
        let leader = self.groups[g].leader;
        ids.iter()
            .filter(|&&id| {
                Some(id) == joining
                    || match (leader, self.daemon_of(g, id)) {
                        (Some(l), Some(d)) => d == l || self.reach(l, d),
                        _ => false,
                    }
            })
            .count()
    }

    fn voters(&self, g: usize) -> BTreeSet<u64> {
        self.groups[g]
            .members
            .iter()
            .filter(|(_, (_, v))| *v)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The leader's view for a decision now.
    fn view(&self, g: usize) -> Option<GroupView> {
        let gr = &self.groups[g];
        let l = gr.leader?;
        let leader_id = self.daemons[l].data.as_ref()?.node_id;
        let members = gr
            .members
            .iter()
            .map(|(&id, (m, voter))| {
                // The leader's probe reaches the member at its registered
                // address, and the daemon there answers as that node.
                let answers = self
                    .daemon_of(g, id)
                    .is_some_and(|d| self.reach(l, d) && self.daemons[d].addr() == m.addr);
                let live = if id == leader_id || answers {
                    Liveness::Live
                } else if self.now - gr.leader_since < WINDOW {
                    Liveness::Unknown
                } else {
                    let seen = gr
                        .last_seen
                        .get(&id)
                        .copied()
                        .unwrap_or(0)
                        .max(gr.leader_since);
                    Liveness::Silent(self.now - seen)
                };
                MemberState {
                    id,
                    member: m.clone(),
                    voter: *voter,
                    live,
                }
            })
            .collect();
        Some(GroupView {
            leader: leader_id,
            members,
            changing: false,
            peers: self.static_peers.as_ref().map(|p| {
                p.iter()
                    .map(|port| format!("10.0.0.{}:{port}", port % 250))
                    .collect()
            }),
            // The simulated group signs its requests (forged ones are
            // refused by the transport it models).
            authenticated: true,
        })
    }

    /// Commits a change if both configurations have a live majority as the
    /// leader reaches them now (else it does not commit: nothing changes).
    fn carry_out(&mut self, g: usize, change: &Change, why: &str) -> bool {
        let old = self.voters(g);
        let mut new = old.clone();
        let mut joining = None;
        match change {
            Change::SetNode { .. } => {}
            Change::AddVoter { id, .. } | Change::Promote { id } => {
                new.insert(*id);
                joining = Some(*id);
            }
            Change::Replace { old: o, id, .. } => {
                new.remove(o);
                new.insert(*id);
                joining = Some(*id);
            }
            Change::Remove { id, voter } => {
                if *voter {
                    new.remove(id);
                }
            }
        }
        let live_old = self.live_count(g, &old, None);
        let live_new = self.live_count(g, &new, joining);
        if live_old < majority(old.len()) || live_new < majority(new.len()) {
            return false;
        }
        // A joining node must be reachable to catch up.
        if let Some(j) = joining {
            let l = self.groups[g].leader;
            let ok = match (l, self.daemon_of(g, j)) {
                (Some(l), Some(d)) => self.reach(l, d),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
        let gr = &mut self.groups[g];
        match change {
            Change::SetNode { id, member } => {
                if let Some(e) = gr.members.get_mut(id) {
                    e.0 = member.clone();
                }
            }
            Change::AddVoter { id, member } => {
                gr.members.insert(*id, (member.clone(), true));
            }
            Change::Promote { id } => {
                if let Some(e) = gr.members.get_mut(id) {
                    e.1 = true;
                }
            }
            Change::Replace { old, id, member } => {
                gr.members.remove(old);
                gr.members.insert(*id, (member.clone(), true));
            }
            Change::Remove { id, .. } => {
                gr.members.remove(id);
            }
        }
        gr.log_len += 1;
        let voters: BTreeMap<u64, Member> = gr
            .members
            .iter()
            .filter(|(_, (_, v))| *v)
            .map(|(id, (m, _))| (*id, m.clone()))
            .collect();
        gr.state.apply_membership(voters);
        self.changes += 1;
        self.note(format!("group {g}: {change:?} ({why})"));
        // The change committed with a live majority of the new voters.
        let now_voters = self.voters(g);
        let live = self.live_count(g, &now_voters, None);
        if live < majority(now_voters.len()) {
            self.fail(
                "membership_change_keeps_live_majority",
                format!("after {change:?}: {live} live of {}", now_voters.len()),
            );
        }
        if let Some(j) = joining {
            if let Some(d) = self.daemon_of(g, j) {
                if let Some(x) = self.daemons[d].data.as_mut() {
                    x.joined = true;
                }
            }
        }
        self.replicate(g);
        true
    }

    /// Entries reach every member the leader reaches.
    fn replicate(&mut self, g: usize) {
        let Some(l) = self.groups[g].leader else {
            return;
        };
        let len = self.groups[g].log_len;
        let ids: Vec<u64> = self.groups[g].members.keys().copied().collect();
        for id in ids {
            if let Some(d) = self.daemon_of(g, id) {
                if d == l || self.reach(l, d) {
                    if let Some(x) = self.daemons[d].data.as_mut() {
                        x.held = len;
                        x.joined = true;
                    }
                    self.groups[g].last_seen.insert(id, self.now);
                }
            }
        }
    }

    /// Commits `cmd` through the leader (if it has a live majority).
    fn commit(&mut self, g: usize, cmd: Command) -> bool {
        let voters = self.voters(g);
        if self.groups[g].leader.is_none()
            || self.live_count(g, &voters, None) < majority(voters.len())
        {
            return false;
        }
        let gr = &mut self.groups[g];
        gr.state.apply(&cmd);
        gr.history.push(cmd);
        gr.log_len += 1;
        self.replicate(g);
        true
    }

    /// Raft's election, abstracted: a voter that holds the whole committed
    /// log and reaches a majority of the voters leads.
    fn elect(&mut self, g: usize) {
        let voters = self.voters(g);
        if let Some(l) = self.groups[g].leader {
            let id = self.daemons[l].data.as_ref().map(|x| x.node_id);
            let still = self.daemons[l].up
                && id.is_some_and(|id| voters.contains(&id))
                && self.live_count(g, &voters, None) >= majority(voters.len());
            if still {
                return;
            }
            self.groups[g].leader = None;
        }
        let len = self.groups[g].log_len;
        let cands: Vec<usize> = voters
            .iter()
            .filter_map(|&id| self.daemon_of(g, id))
            .filter(|&d| self.daemons[d].up)
            .collect();
        for d in cands {
            let reached = voters
                .iter()
                .filter(|&&id| {
                    self.daemon_of(g, id)
                        .is_some_and(|o| o == d || self.reach(d, o))
                })
                .count();
            let held = self.daemons[d].data.as_ref().map_or(0, |x| x.held);
            if reached >= majority(voters.len()) && held >= len {
                self.groups[g].leader = Some(d);
                self.groups[g].leader_since = self.now;
                self.note(format!("group {g}: daemon {d} leads"));
                self.replicate(g);
                return;
            }
        }
    }

    // ------------------------------------------------------------ daemons

    fn my_addr_listed(&self, d: usize) -> bool {
        self.static_peers
            .as_ref()
            .is_none_or(|p| p.contains(&self.daemons[d].port))
    }

    fn formation(&mut self, d: usize) {
        let me = self.daemons[d].clone();
        let Some(data) = me.data.clone() else {
            return;
        };
        let known: Vec<usize> = match &self.static_peers {
            Some(p) => (0..self.daemons.len())
                .filter(|&o| o != d && p.contains(&self.daemons[o].port))
                .collect(),
            None => (0..self.daemons.len())
                .filter(|&o| o != d && self.daemons[o].active)
                .collect(),
        };
        let answers: Vec<PeerAnswer> = known
            .iter()
            .filter(|&&o| self.reach(d, o))
            .filter_map(|&o| {
                let x = self.daemons[o].data.as_ref()?;
                Some(PeerAnswer {
                    addr: self.daemons[o].addr(),
                    id: x.node_id,
                    cluster_id: x.cluster.clone(),
                    initialized: x.joined,
                })
            })
            .collect();
        let peers: Option<Vec<String>> = self.static_peers.as_ref().map(|p| {
            p.iter()
                .map(|port| format!("10.0.0.{}:{port}", port % 250))
                .collect()
        });
        for a in &answers {
            self.daemons[d].seen.insert(a.addr.clone(), a.id);
        }
        let absent: Vec<u64> = self.daemons[d]
            .seen
            .iter()
            .filter(|(addr, _)| !answers.iter().any(|a| &a.addr == *addr))
            .map(|(_, id)| *id)
            .collect();
        let addr = me.addr();
        let view = FormationView {
            me: data.node_id,
            addr: &addr,
            cluster_id: data.cluster.as_deref(),
            blank: me.started_blank && data.held == 0 && !data.joined,
            static_peers: peers.as_deref(),
            known_peers: known.len(),
            answers: &answers,
            absent: &absent,
            grace_over: self.now - me.started_at >= GRACE,
        };
        match membership::decide_formation(&view) {
            Formation::Join { via, cluster_id } => {
                if let Some(x) = self.daemons[d].data.as_mut() {
                    if x.cluster.is_none() {
                        x.cluster = Some(cluster_id.clone());
                    }
                }
                self.daemons[d].started_blank = false;
                let fresh = data.held == 0 && !data.joined && !me.join_sent;
                self.daemons[d].join_sent = true;
                self.join(d, &via, fresh);
            }
            Formation::Bootstrap => self.bootstrap(d),
            Formation::Wait(_) => {}
        }
    }

    fn bootstrap(&mut self, d: usize) {
        let data = self.daemons[d].data.clone().unwrap_or(Data {
            node_id: 0,
            cluster: None,
            held: 0,
            joined: false,
        });
        let cluster = data
            .cluster
            .clone()
            .unwrap_or_else(|| format!("c{:016x}", self.rng.gen::<u64>()));
        if self.groups.iter().any(|g| g.cluster == cluster) {
            self.fail(
                "one_group_per_cluster_id",
                format!("daemon {d} bootstraps a second group {cluster}"),
            );
        }
        let live_groups: Vec<&str> = self
            .groups
            .iter()
            .filter(|g| {
                g.members.keys().any(|&id| {
                    self.daemons.iter().any(|x| {
                        x.data.as_ref().is_some_and(|y| {
                            y.node_id == id && y.cluster.as_ref() == Some(&g.cluster) && y.held > 0
                        })
                    })
                })
            })
            .map(|g| g.cluster.as_str())
            .collect();
        if !live_groups.is_empty() {
            self.fail(
                "one_group_per_deployment",
                format!("daemon {d} bootstraps {cluster} while {live_groups:?} holds data"),
            );
        }
        let mut members = BTreeMap::new();
        let m = Member::new(self.daemons[d].addr(), self.daemons[d].myid.clone());
        members.insert(data.node_id, (m.clone(), true));
        let mut state = GroupState::default();
        state.apply_membership([(data.node_id, m)].into_iter().collect());
        self.groups.push(Group {
            cluster: cluster.clone(),
            members,
            log_len: 1,
            leader: Some(d),
            leader_since: self.now,
            state,
            last_seen: BTreeMap::new(),
            history: Vec::new(),
        });
        if let Some(x) = self.daemons[d].data.as_mut() {
            x.cluster = Some(cluster.clone());
            x.held = 1;
            x.joined = true;
        }
        self.bootstraps += 1;
        self.note(format!("daemon {d} bootstraps {cluster}"));
        let g = self.groups.len() - 1;
        self.commit(
            g,
            Command::Monitor {
                name: "m".into(),
                host: "10.0.9.1".into(),
                port: 6379,
                quorum: 2,
            },
        );
    }

    /// A join (or an entry update) sent through `via` to the leader.
    fn join(&mut self, d: usize, via: &str, fresh: bool) {
        let Some(g) = self.group_of(d) else {
            return;
        };
        let Some(v) = self.daemons.iter().position(|x| x.addr() == via) else {
            return;
        };
        let Some(l) = self.groups[g].leader else {
            return;
        };
        if !(self.reach(d, v) || d == v) || !(self.reach(v, l) || v == l) {
            return;
        }
        let Some(view) = self.view(g) else {
            return;
        };
        let data = self.daemons[d].data.clone().unwrap_or(Data {
            node_id: 0,
            cluster: None,
            held: 0,
            joined: false,
        });
        let req = JoinRequest {
            id: data.node_id,
            addr: self.daemons[d].addr(),
            myid: self.daemons[d].myid.clone(),
            fresh,
            // One list for every daemon here: the leader's names the joiner
            // whenever the joiner's would.
            peers: None,
        };
        match membership::decide_join(&view, &req) {
            JoinDecision::Member => {}
            JoinDecision::Change(c) => {
                self.carry_out(g, &c, "join");
            }
            JoinDecision::Refuse(r) => {
                if matches!(r, membership::Refusal::LostState { .. }) {
                    self.fail(
                        "identity_fixed",
                        format!(
                            "daemon {d} presented node {} with an empty log",
                            data.node_id
                        ),
                    );
                }
            }
        }
    }

    fn upkeep(&mut self, d: usize) {
        let Some(g) = self.group_of(d) else {
            return self.formation(d);
        };
        let Some(id) = self.daemons[d].data.as_ref().map(|x| x.node_id) else {
            return;
        };
        match self.groups[g].members.get(&id).cloned() {
            Some((m, true)) => {
                let addr = self.daemons[d].addr();
                if m.addr != addr || m.myid != self.daemons[d].myid {
                    let via = self.groups[g]
                        .leader
                        .map(|l| self.daemons[l].addr())
                        .unwrap_or_default();
                    self.join(d, &via, false);
                }
            }
            _ => self.formation(d),
        }
        if self.groups[g].leader == Some(d) {
            if let Some(view) = self.view(g) {
                if let Some((c, why)) = membership::housekeeping(&view, &self.hk) {
                    self.carry_out(g, &c, &why.to_string());
                }
            }
        }
    }

    // ------------------------------------------------------------ faults

    /// Whether the group survives daemon `d` losing its Raft data for good
    /// (wiped, or departed): the voters that keep theirs stay a majority.
    /// Losing more is losing the group, which no membership rule can
    /// prevent; the simulator does not inject it.
    fn can_lose(&self, d: usize) -> bool {
        let Some(g) = self.group_of(d) else {
            return true;
        };
        let voters = self.voters(g);
        let Some(id) = self.daemons[d].data.as_ref().map(|x| x.node_id) else {
            return true;
        };
        if !voters.contains(&id) {
            return true;
        }
        let keep = voters
            .iter()
            .filter(|&&v| v != id)
            .filter(|&&v| self.daemon_of(g, v).is_some_and(|o| self.daemons[o].active))
            .count();
        keep >= majority(voters.len())
    }

    fn random_fault(&mut self) {
        let n = self.daemons.len();
        let d = self.rng.gen_range(0..n);
        let active = self.daemons[d].active;
        match self.rng.gen_range(0..100) {
            0..=9 if active && self.daemons[d].up => {
                self.daemons[d].up = false;
                self.note(format!("daemon {d} crashes"));
            }
            10..=21 if active && !self.daemons[d].up => {
                self.start(d, false);
                self.note(format!("daemon {d} restarts with its data"));
            }
            22..=27 if active && self.can_lose(d) => {
                if self.rng.gen_bool(0.3) {
                    self.daemons[d].myid = hex40(&mut self.rng);
                }
                self.start(d, true);
                self.note(format!("daemon {d} restarts with wiped raft data"));
            }
            28..=31 if active && self.static_peers.is_none() => {
                self.daemons[d].port = self.next_port;
                self.next_port += 1;
                self.start(d, false);
                self.note(format!("daemon {d} restarts on {}", self.daemons[d].addr()));
            }
            32..=39 => {
                let cut = self.rng.gen_range(0..n);
                for (i, x) in self.daemons.iter_mut().enumerate() {
                    x.side = u8::from(i == cut || i == (cut + 1) % n && n > 3);
                }
                self.note(format!("partition around daemon {cut}"));
            }
            40..=49 => {
                for x in &mut self.daemons {
                    x.side = 0;
                }
            }
            50..=54 => self.runtime_monitor(),
            55..=59 => self.forge(),
            60..=63 => self.forget(d),
            64..=66 if self.can_lose(d) => self.reset_after_departure(d),
            67..=68 => self.scale(),
            _ => {}
        }
    }

    fn live_group(&self) -> Option<usize> {
        (0..self.groups.len())
            .rev()
            .find(|&g| self.groups[g].leader.is_some())
    }

    fn runtime_monitor(&mut self) {
        let Some(g) = self.live_group() else {
            return;
        };
        let name = format!("m{}", self.rng.gen_range(0..3));
        let cmd = if self.groups[g].state.masters.contains_key(&name) {
            Command::Remove { name }
        } else {
            Command::Monitor {
                name,
                host: "10.0.9.2".into(),
                port: 6380,
                quorum: 2,
            }
        };
        self.note(format!("runtime {cmd:?}"));
        self.commit(g, cmd);
    }

    /// Forged and replayed commands reach the log (the transport let them
    /// through): the state must not act on them.
    fn forge(&mut self) {
        let Some(g) = self.live_group() else {
            return;
        };
        let stranger = self.rng.gen_range(1..u64::MAX);
        let voter = self.voters(g).iter().next().copied().unwrap_or(1);
        let forged = [
            Command::SwitchMaster {
                name: "m".into(),
                epoch: self.groups[g].state.current_epoch + 7,
                host: "127.0.0.1".into(),
                port: 1,
                by: Some(voter),
            },
            Command::Opinion {
                name: "m".into(),
                node: stranger,
                down: true,
            },
            Command::FailoverStart {
                name: "m".into(),
                epoch: self.groups[g].state.current_epoch + 1,
                leader: stranger,
                manual: true,
                coordinated: false,
                force: false,
                by: Some(stranger),
            },
            Command::Set {
                name: "m".into(),
                option: "notification-script".into(),
                value: "/tmp/evil.sh".into(),
            },
        ];
        let cmd = forged[self.rng.gen_range(0..forged.len())].clone();
        let before = self.groups[g].state.clone();
        if !self.commit(g, cmd.clone()) {
            return;
        }
        let mut after = self.groups[g].state.clone();
        after.refused = before.refused;
        if after != before || self.groups[g].state.refused != before.refused + 1 {
            self.fail(
                "no_unauthorized_command_applied",
                format!("{cmd:?} changed the state"),
            );
        }
        self.refused_forged += 1;
        // A replay of something committed earlier changes nothing either
        // (stale, duplicate, or unauthorized).
        if let Some(old) = self.groups[g]
            .history
            .iter()
            .rfind(|c| {
                matches!(
                    c,
                    Command::SwitchMaster { .. } | Command::FailoverStart { .. }
                )
            })
            .cloned()
        {
            let before = self.groups[g].state.clone();
            if self.commit(g, old.clone()) {
                let mut after = self.groups[g].state.clone();
                after.refused = before.refused;
                if after != before {
                    self.fail("replay_changes_nothing", format!("{old:?}"));
                }
            }
        }
    }

    /// An operator forgets a member (it may still answer: then it stays).
    fn forget(&mut self, d: usize) {
        let Some(g) = self.live_group() else {
            return;
        };
        let Some(id) = self.daemons[d].data.as_ref().map(|x| x.node_id) else {
            return;
        };
        let Some(view) = self.view(g) else {
            return;
        };
        if let Ok(c) = membership::decide_remove(&view, id) {
            self.carry_out(g, &c, "forget");
        }
    }

    /// A daemon departs for good (a deleted pod) and RESET is sent: the
    /// voters not rediscovered are asked to leave.
    fn reset_after_departure(&mut self, d: usize) {
        if self.static_peers.is_some() || self.daemons.iter().filter(|x| x.active).count() <= 3 {
            return;
        }
        self.daemons[d].up = false;
        self.daemons[d].active = false;
        self.note(format!("daemon {d} departs; RESET everywhere"));
        let Some(g) = self.live_group() else {
            return;
        };
        let Some(l) = self.groups[g].leader else {
            return;
        };
        let unseen: Vec<u64> = self
            .voters(g)
            .into_iter()
            .filter(|&id| {
                self.daemon_of(g, id)
                    .is_none_or(|o| o != l && !self.reach(l, o))
            })
            .collect();
        for id in unseen {
            if let Some(view) = self.view(g) {
                if let Ok(c) = membership::decide_remove(&view, id) {
                    self.carry_out(g, &c, "reset");
                }
            }
        }
    }

    /// RESET sent again: voters of departed daemons are asked to leave.
    fn reset_sweep(&mut self) {
        let Some(g) = self.live_group() else {
            return;
        };
        let gone: Vec<u64> = self
            .voters(g)
            .into_iter()
            .filter(|&id| {
                self.daemon_of(g, id)
                    .is_none_or(|d| !self.daemons[d].active)
            })
            .collect();
        for id in gone {
            if let Some(view) = self.view(g) {
                if let Ok(c) = membership::decide_remove(&view, id) {
                    self.carry_out(g, &c, "reset");
                }
            }
        }
    }

    /// Static list: one daemon more, or the last one out.
    fn scale(&mut self) {
        let Some(peers) = self.static_peers.clone() else {
            return;
        };
        if self.rng.gen_bool(0.5) && peers.len() < 7 {
            let port = self.next_port;
            self.next_port += 1;
            let myid = hex40(&mut self.rng);
            self.daemons.push(Daemon {
                up: true,
                port,
                myid,
                data: None,
                side: 0,
                started_blank: true,
                started_at: self.now,
                join_sent: false,
                clusters_seen: BTreeSet::new(),
                active: true,
                seen: BTreeMap::new(),
            });
            let d = self.daemons.len() - 1;
            self.start(d, false);
            let mut p = peers;
            p.push(port);
            self.static_peers = Some(p);
            self.note(format!("scale out: daemon {d} on {port}"));
        } else if peers.len() > 3
            && peers
                .last()
                .and_then(|port| self.daemons.iter().position(|x| x.port == *port))
                .is_none_or(|d| self.can_lose(d))
        {
            let mut p = peers;
            if let Some(port) = p.pop() {
                if let Some(d) = self.daemons.iter().position(|x| x.port == port) {
                    self.daemons[d].up = false;
                    self.daemons[d].active = false;
                }
                self.note(format!("scale in: {port} leaves"));
            }
            self.static_peers = Some(p);
        }
    }

    // ------------------------------------------------------------ stepping

    pub fn step(&mut self, faults: bool) {
        self.now += TICK;
        if faults && self.rng.gen_bool(0.3) {
            self.random_fault();
        }
        for g in 0..self.groups.len() {
            self.elect(g);
            self.replicate(g);
        }
        let order: Vec<usize> = (0..self.daemons.len()).collect();
        for d in order {
            if self.daemons[d].up && self.daemons[d].active && self.my_addr_listed(d) {
                self.upkeep(d);
            }
        }
        // Proposals keep flowing: a command now and then.
        if let Some(g) = self.live_group() {
            if self.rng.gen_bool(0.2) {
                let node = self.voters(g).iter().next().copied().unwrap_or(0);
                let down = self.rng.gen_bool(0.5);
                self.commit(
                    g,
                    Command::Opinion {
                        name: "m".into(),
                        node,
                        down,
                    },
                );
            }
        }
        self.check();
    }

    fn check(&mut self) {
        // identity_fixed: a cluster id once set never changes; node ids unique.
        let mut ids = BTreeSet::new();
        for d in 0..self.daemons.len() {
            let Some(x) = self.daemons[d].data.clone() else {
                continue;
            };
            if let Some(c) = &x.cluster {
                self.daemons[d].clusters_seen.insert(c.clone());
                if self.daemons[d].clusters_seen.len() > 1 {
                    self.fail(
                        "identity_fixed",
                        format!(
                            "daemon {d}: cluster ids {:?}",
                            self.daemons[d].clusters_seen
                        ),
                    );
                }
            }
            if !ids.insert(x.node_id) {
                self.fail("identity_fixed", format!("node id {} twice", x.node_id));
            }
        }
        // committed_never_lost: voters that could vote without the whole
        // log are never a majority.
        for g in 0..self.groups.len() {
            let voters = self.voters(g);
            let len = self.groups[g].log_len;
            let stale = voters
                .iter()
                .filter(|&&id| {
                    self.daemon_of(g, id)
                        .and_then(|d| self.daemons[d].data.as_ref())
                        .is_some_and(|x| x.held < len)
                })
                .count();
            if !voters.is_empty() && stale >= majority(voters.len()) {
                self.fail(
                    "committed_never_lost",
                    format!(
                        "group {g}: {stale} of {} voters could elect a leader without the {len} committed entries",
                        voters.len()
                    ),
                );
            }
        }
    }

    /// Heals everything and lets the group settle.
    pub fn settle(&mut self) {
        for d in 0..self.daemons.len() {
            self.daemons[d].side = 0;
            if self.daemons[d].active && !self.daemons[d].up {
                self.start(d, false);
            }
        }
        // Up to 5 minutes: removals wait out their graces. The operator
        // sends RESET again after a while for the daemons that departed.
        for i in 0..600 {
            self.step(false);
            if i % 60 == 59 {
                self.reset_sweep();
            }
        }
        let Some(g) = self.live_group() else {
            self.fail("converges", "no group with a leader after healing".into());
        };
        let voters = self.voters(g);
        for d in 0..self.daemons.len() {
            let x = &self.daemons[d];
            if !x.active || !self.my_addr_listed(d) {
                continue;
            }
            let Some(data) = &x.data else {
                self.fail("converges", format!("daemon {d} has no data"));
            };
            let entry = self.groups[g].members.get(&data.node_id);
            let ok = data.cluster.as_ref() == Some(&self.groups[g].cluster)
                && voters.contains(&data.node_id)
                && entry.is_some_and(|(m, _)| m.addr == x.addr())
                && data.held == self.groups[g].log_len;
            if !ok {
                self.fail(
                    "converges",
                    format!(
                        "daemon {d} (node {}, {:?}) is not an up-to-date voter at {}: members {:?}",
                        data.node_id,
                        data.cluster,
                        x.addr(),
                        self.groups[g].members
                    ),
                );
            }
        }
        let expected = self
            .daemons
            .iter()
            .enumerate()
            .filter(|(d, x)| x.active && self.my_addr_listed(*d))
            .count();
        if voters.len() != expected {
            self.fail(
                "converges",
                format!(
                    "{} voters for {expected} daemons: {:?}",
                    voters.len(),
                    self.groups[g].members
                ),
            );
        }
    }
}
