//! The simulated world: daemons running the real core, the Redis nodes, the
//! network between them and the Raft group, advanced by one event queue on a
//! simulated clock. Every choice (delays, losses, faults, elections) comes
//! from one `StdRng` seeded by the run's seed, so a seed replays exactly.
//!
//! The driver side mirrors `runtime/` and `links/`: a command sent on a link
//! that is not up is dropped, a link message from a retired link generation is
//! ignored, a connect that fails reports `LinkDown`, a command without reply
//! reports `CommandTimeout` after the links' 10 s timeout.

use std::collections::{BTreeMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::raft::RaftModel;
use super::redis::{hex40, RedisNode, RedisRole, REDIS_PORT};
use crate::core::group::node_id_from_myid;
use crate::core::group::{Command, GroupState};
use crate::core::group::{Failover, Phase};
use crate::core::persisted::{MasterState, PersistedState};
use crate::core::{
    Action, CoreOptions, Input, InstanceId, InstanceKind, LinkKind, LinkSpec, Millis, PingReply,
    RaftView, Sentinel,
};

pub(super) const MASTER_NAME: &str = "mymaster";
pub(super) const DOWN_AFTER: u64 = 1000;
pub(super) const FAILOVER_TIMEOUT: u64 = 3000;
const TICK: u64 = 100;
/// `links::command::COMMAND_TIMEOUT` and `links::connect::CONNECT_TIMEOUT`.
const CMD_TIMEOUT: u64 = 10_000;
const CONNECT_TIMEOUT: u64 = 2_000;
const SENTINEL_PORT: u16 = 26379;
/// Trace lines kept for a failure report (`RAFTINEL_SIM_TRACE` overrides).
const TRACE_LEN: usize = 60;
/// INFO replies remembered per (daemon, node), for the data-safety checks.
const SEEN_KEEP: usize = 32;

/// Shape of a run.
#[derive(Debug, Clone)]
pub(super) struct SimConfig {
    pub daemons: usize,
    pub replicas: usize,
    /// Random faults (crashes, hangs, partitions, loss) during the steps.
    pub faults: bool,
    /// Manual failovers are coordinated switchovers (the default); false:
    /// the group monitors the master with `coordinated-failover no`, so
    /// they are Sentinel's plain failovers.
    pub coordinated: bool,
}

impl SimConfig {
    /// The shape of a random run, from its seed.
    pub fn random(seed: u64) -> SimConfig {
        let mut r = StdRng::seed_from_u64(seed ^ 0x005e_ed0f_5ead);
        SimConfig {
            daemons: if r.gen_bool(0.5) { 3 } else { 5 },
            replicas: r.gen_range(2..=3),
            faults: true,
            coordinated: r.gen_bool(0.5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    Node(usize),
    Daemon(usize),
    Nowhere,
}

/// One half of a link as the driver sees it (the number is its generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Half {
    Closed,
    Connecting(u64),
    Up(u64),
}

#[derive(Debug, Clone)]
struct SimLink {
    spec: LinkSpec,
    target: Target,
    cmd: Half,
    pubsub: Half,
}

/// What a daemon learned from one INFO reply (the simulator's own reading,
/// independent of the core's parser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SeenInfo {
    pub at: Millis,
    pub role_master: bool,
    pub offset: u64,
    pub replid: String,
    pub replid2: String,
}

pub(super) struct Daemon {
    pub host: String,
    pub port: u16,
    pub node_id: u64,
    pub core: Option<Sentinel>,
    pub incarnation: u64,
    /// The state as of the last `Action::Flush` (what a restart reads).
    pub persisted: PersistedState,
    links: BTreeMap<InstanceId, SimLink>,
    /// Partition side: daemons on the same side reach each other.
    pub side: u8,
    sent_view: Option<RaftView>,
    /// The Raft view the core has received.
    pub view: RaftView,
    view_at: Millis,
    /// Index of the last committed state delivered to the core (0 = none).
    pub delivered_index: usize,
    scheduled_index: usize,
    commit_at: Millis,
    /// INFO replies delivered to the current incarnation, per node.
    pub seen: BTreeMap<usize, VecDeque<SeenInfo>>,
    /// The master address this daemon last gave its subscribers: the one
    /// its current incarnation started with (its flushed config), then the
    /// new address of each `+switch-master` it published.
    pub told_addr: Option<(String, u16)>,
}

impl Daemon {
    pub fn alive(&self) -> bool {
        self.core.is_some()
    }
}

/// A `REPLICAOF NO ONE` sent by a daemon, with what it knew when it sent it.
#[derive(Debug, Clone)]
pub(super) struct Promotion {
    pub step: usize,
    pub at: Millis,
    pub daemon: usize,
    pub node_id: u64,
    pub target: Option<(String, u16)>,
    /// The daemon's committed failover of the master, if any.
    pub failover: Option<Failover>,
    /// The committed master address in the daemon's view.
    pub view_master: Option<(String, u16)>,
    /// The daemon believed it was the Raft leader.
    pub believed_leader: bool,
    /// Ground truth when it was sent: the target's and the old master's
    /// replication state.
    pub truth_target: Option<Truth>,
    pub truth_master: Option<Truth>,
}

/// A node's real replication state at one instant.
#[derive(Debug, Clone)]
pub(super) struct Truth {
    pub replid: String,
    pub replid2: String,
    pub offset: u64,
    pub history_changed_at: Millis,
}

impl Truth {
    fn of(n: &RedisNode) -> Truth {
        Truth {
            replid: n.replid.clone(),
            replid2: n.replid2.clone(),
            offset: n.offset,
            history_changed_at: n.history_changed_at,
        }
    }
}

/// Requests travelling from a daemon to a node or a peer daemon.
#[derive(Debug, Clone)]
enum Req {
    Ping,
    Info,
    Hello(String),
    Ask {
        ip: String,
        port: u16,
        epoch: u64,
        runid: String,
    },
    /// `REPLICAOF`; for a promotion in a coordinated failover, the old
    /// master's node (checked when the promotion lands).
    Reconfigure(Option<(String, u16)>, Option<usize>),
    /// `CLIENT PAUSE <ms> WRITE`; 0 = `CLIENT UNPAUSE`.
    Pause(u64),
    ScriptKill,
}

#[derive(Debug, Clone)]
enum Ev {
    Tick {
        d: usize,
        inc: u64,
    },
    ConnectDone {
        d: usize,
        inc: u64,
        id: InstanceId,
        kind: LinkKind,
        gen: u64,
        ok: bool,
    },
    Request {
        d: usize,
        inc: u64,
        id: InstanceId,
        gen: u64,
        target: Target,
        req: Req,
    },
    /// A reply, or a pubsub message, on one link generation of a daemon.
    LinkInput {
        d: usize,
        inc: u64,
        id: InstanceId,
        kind: LinkKind,
        gen: u64,
        input: Input,
    },
    LinkBroken {
        d: usize,
        inc: u64,
        id: InstanceId,
        kind: LinkKind,
        gen: u64,
    },
    Commit {
        cmd: Command,
        proposer: usize,
        on_majority: bool,
        term: u64,
        proposed_at: Millis,
    },
    Committed {
        d: usize,
        inc: u64,
        index: usize,
    },
    View {
        d: usize,
        inc: u64,
        view: RaftView,
    },
    DaemonRestart {
        d: usize,
    },
    NodeRestart {
        n: usize,
        empty: bool,
    },
}

pub(super) struct World {
    pub seed: u64,
    pub cfg: SimConfig,
    pub rng: StdRng,
    pub now: Millis,
    pub step: usize,
    pub daemons: Vec<Daemon>,
    pub nodes: Vec<RedisNode>,
    pub raft: RaftModel,
    /// When each committed entry was proposed (same index as `raft.log`).
    pub proposed_at: Vec<Millis>,
    /// Daemon/node pairs that cannot reach each other.
    pub cut: Vec<(usize, usize)>,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Upper bound of a one-way network delay.
    pub max_delay: u64,
    queue: BTreeMap<(Millis, u64), Ev>,
    /// Last arrival time per link generation and direction (in order).
    fifo: BTreeMap<(u64, bool), Millis>,
    /// Link generations whose stream lost a message (see `link_lost`).
    stalled: std::collections::BTreeSet<u64>,
    seq: u64,
    next_gen: u64,
    pub promotions: Vec<Promotion>,
    /// Coordinated switchovers that lost acknowledged writes.
    pub write_loss: Vec<String>,
    /// Old masters demoted too early: before the switch, or before every
    /// daemon that stayed live since the switch's commit published it
    /// (within the bound).
    pub early_demotions: Vec<String>,
    /// `+switch-master` published for an epoch whose promotion was not
    /// committed, or twice by one daemon.
    pub bad_publications: Vec<String>,
    /// The last epoch each daemon published `+switch-master` for (kept
    /// across its restarts).
    pub last_published: Vec<u64>,
    /// (switch epoch, daemon) pairs whose `+switch-master` was published.
    pub switch_published: std::collections::BTreeSet<(u64, usize)>,
    /// When each switch's `SwitchMaster` was committed, by epoch.
    pub switch_committed_at: BTreeMap<u64, Millis>,
    /// Last time each daemon was down or cut from the majority.
    pub unlive_at: Vec<Millis>,
    /// Coordinated promotions checked by `check_no_write_lost`.
    pub coordinated_checked: usize,
    /// Promotions already checked.
    pub checked: usize,
    pub trace: VecDeque<String>,
    /// Epoch watermarks for `epochs_never_decrease`:
    /// (incarnation, core epoch, committed epoch) per daemon.
    pub epoch_marks: Vec<(u64, u64, u64)>,
    pub committed_mark: (u64, u64),
    /// Events emitted by all daemons, by channel (run summary).
    pub events: BTreeMap<&'static str, usize>,
    trace_len: usize,
}

fn view_of(state: &GroupState) -> Option<(Option<Failover>, (String, u16))> {
    let m = state.masters.get(MASTER_NAME)?;
    Some((m.failover.clone(), (m.host.clone(), m.port)))
}

/// What the link reports when `req` gets no reply within its timeout.
fn timeout_input(id: InstanceId, req: &Req) -> Input {
    match req {
        Req::Pause(ms) if *ms > 0 => Input::PauseReply { id, info: None },
        _ => Input::CommandTimeout { id },
    }
}

impl World {
    pub fn new(seed: u64, cfg: SimConfig) -> World {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut nodes = Vec::new();
        let initial_offset = rng.gen_range(1_000..100_000);
        let master = RedisNode::new_master("10.0.0.1".into(), initial_offset, &mut rng);
        nodes.push(master);
        for j in 0..cfg.replicas {
            let mut r = RedisNode::new_master(format!("10.0.0.{}", j + 2), 0, &mut rng);
            r.follow("10.0.0.1".into(), REDIS_PORT, 0);
            if let Some(m) = nodes.first().cloned() {
                r.sync_from(&m, 0);
            }
            // Some runs give one replica priority 0 (never promotable).
            if rng.gen_bool(0.2) {
                r.priority = 0;
            } else {
                r.priority = rng.gen_range(1..=3) * 50;
            }
            nodes.push(r);
        }
        let quorum = u32::try_from(cfg.daemons / 2 + 1).unwrap_or(2);
        let mut daemons = Vec::new();
        for i in 0..cfg.daemons {
            let myid = hex40(&mut rng);
            let node_id = node_id_from_myid(&myid).unwrap_or(i as u64 + 1);
            let mut ms = MasterState::new(MASTER_NAME, "10.0.0.1", REDIS_PORT, quorum);
            ms.down_after_ms = DOWN_AFTER;
            ms.failover_timeout_ms = FAILOVER_TIMEOUT;
            let persisted = PersistedState {
                myid: Some(myid.clone()),
                current_epoch: 0,
                globals: Default::default(),
                masters: vec![ms],
            };
            daemons.push(Daemon {
                host: format!("10.0.1.{}", i + 1),
                port: SENTINEL_PORT,
                node_id,
                core: None,
                incarnation: 0,
                persisted,
                links: BTreeMap::new(),
                side: 0,
                sent_view: None,
                view: RaftView::default(),
                view_at: 0,
                delivered_index: 0,
                scheduled_index: 0,
                commit_at: 0,
                seen: BTreeMap::new(),
                told_addr: None,
            });
        }
        let n = daemons.len();
        let mut w = World {
            seed,
            cfg,
            rng,
            now: 0,
            step: 0,
            daemons,
            nodes,
            raft: RaftModel::default(),
            proposed_at: Vec::new(),
            cut: Vec::new(),
            loss: 0.0,
            max_delay: 5,
            queue: BTreeMap::new(),
            fifo: BTreeMap::new(),
            stalled: Default::default(),
            seq: 0,
            next_gen: 0,
            promotions: Vec::new(),
            write_loss: Vec::new(),
            early_demotions: Vec::new(),
            bad_publications: Vec::new(),
            last_published: vec![0; n],
            switch_published: Default::default(),
            switch_committed_at: BTreeMap::new(),
            unlive_at: vec![0; n],
            coordinated_checked: 0,
            checked: 0,
            trace: VecDeque::new(),
            epoch_marks: vec![(0, 0, 0); n],
            committed_mark: (0, 0),
            events: BTreeMap::new(),
            trace_len: std::env::var("RAFTINEL_SIM_TRACE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(TRACE_LEN),
        };
        // The group is bootstrapped with every daemon as a voter, then the
        // monitored master.
        w.raft.initial.apply_membership(
            w.daemons
                .iter()
                .map(|d| {
                    let myid = d.persisted.myid.clone().unwrap_or_default();
                    (
                        d.node_id,
                        crate::core::group::Member::new(format!("{}:{}", d.host, d.port), myid),
                    )
                })
                .collect(),
        );
        w.raft.commit(
            Command::Monitor {
                name: MASTER_NAME.into(),
                host: "10.0.0.1".into(),
                port: REDIS_PORT,
                quorum,
            },
            None,
            true,
        );
        w.proposed_at.push(0);
        if !w.cfg.coordinated {
            w.raft.commit(
                Command::Set {
                    name: MASTER_NAME.into(),
                    option: "coordinated-failover".into(),
                    value: "no".into(),
                },
                None,
                true,
            );
            w.proposed_at.push(0);
        }
        for d in 0..n {
            w.start_daemon(d);
        }
        w.raft.election_at = Some(0);
        w
    }

    // ----- bookkeeping -------------------------------------------------------

    pub fn note(&mut self, what: String) {
        if self.trace.len() >= self.trace_len {
            self.trace.pop_front();
        }
        self.trace
            .push_back(format!("[step {} t={}ms] {what}", self.step, self.now));
    }

    fn schedule(&mut self, at: Millis, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn delay(&mut self) -> Millis {
        self.rng.gen_range(1..=self.max_delay.max(1))
    }

    fn lost(&mut self) -> bool {
        self.loss > 0.0 && self.rng.gen_bool(self.loss)
    }

    pub fn node_by_addr(&self, host: &str, port: u16) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.port == port && n.host == host)
    }

    fn resolve(&self, host: &str, port: u16) -> Target {
        if let Some(n) = self.node_by_addr(host, port) {
            return Target::Node(n);
        }
        match self
            .daemons
            .iter()
            .position(|d| d.host == host && d.port == port)
        {
            Some(k) => Target::Daemon(k),
            None => Target::Nowhere,
        }
    }

    /// The side holding a majority of all voters (alive ones counted), if any.
    pub fn majority_side(&self) -> Option<u8> {
        let n = self.daemons.len();
        let mut counts: BTreeMap<u8, usize> = BTreeMap::new();
        for d in self.daemons.iter().filter(|d| d.alive()) {
            *counts.entry(d.side).or_default() += 1;
        }
        counts.into_iter().find(|(_, c)| c * 2 > n).map(|(s, _)| s)
    }

    pub fn on_majority(&self, d: usize) -> bool {
        self.daemons[d].alive() && Some(self.daemons[d].side) == self.majority_side()
    }

    fn daemons_reach(&self, a: usize, b: usize) -> bool {
        self.daemons[a].side == self.daemons[b].side
    }

    fn reaches_node(&self, d: usize, n: usize) -> bool {
        !self.cut.contains(&(d, n))
    }

    fn reaches(&self, d: usize, t: Target) -> bool {
        match t {
            Target::Node(n) => self.reaches_node(d, n),
            Target::Daemon(k) => self.daemons_reach(d, k),
            Target::Nowhere => false,
        }
    }

    /// The committed state delivered to daemon `d`.
    pub fn daemon_state(&self, d: usize) -> Option<&GroupState> {
        let i = self.daemons[d].delivered_index;
        i.checked_sub(1).and_then(|i| self.raft.states.get(i))
    }

    /// The master address clients must be given according to `state`: the
    /// promoted replica from reconf_slaves on (design step 6), else the
    /// committed address.
    pub fn expected_master(state: &GroupState) -> Option<(String, u16)> {
        let (failover, addr) = view_of(state)?;
        match failover {
            Some(f) if f.phase >= Phase::ReconfSlaves => f.promoted.or(Some(addr)),
            _ => Some(addr),
        }
    }

    // ----- daemons -----------------------------------------------------------

    fn start_daemon(&mut self, d: usize) {
        let seed = self.rng.gen();
        let opts = CoreOptions {
            port: self.daemons[d].port,
            rng_seed: seed,
            requirepass: None,
        };
        let (core, actions) = Sentinel::new(self.daemons[d].persisted.clone(), opts, self.now);
        let dm = &mut self.daemons[d];
        dm.told_addr = dm
            .persisted
            .masters
            .first()
            .map(|m| (m.host.clone(), m.port));
        dm.core = Some(core);
        dm.incarnation += 1;
        dm.links.clear();
        dm.sent_view = None;
        dm.view = RaftView::default();
        dm.delivered_index = 0;
        dm.scheduled_index = 0;
        dm.seen.clear();
        let inc = dm.incarnation;
        self.exec(d, actions);
        let first = self.now + self.rng.gen_range(0..TICK);
        self.schedule(first, Ev::Tick { d, inc });
    }

    pub fn crash_daemon(&mut self, d: usize) {
        if !self.daemons[d].alive() {
            return;
        }
        self.note(format!("FAULT daemon d{d} crashes"));
        let dm = &mut self.daemons[d];
        dm.core = None;
        dm.incarnation += 1;
        dm.links.clear();
        // Peers connected to it see the connection reset, if they can.
        self.break_links_to(Target::Daemon(d));
    }

    pub fn restart_daemon(&mut self, d: usize) {
        if self.daemons[d].alive() {
            return;
        }
        self.note(format!("daemon d{d} restarts from its last flushed state"));
        self.start_daemon(d);
    }

    /// Feeds one input to daemon `d` and carries out what it asks.
    fn feed(&mut self, d: usize, input: Input) {
        let now = self.now;
        let Some(core) = self.daemons[d].core.as_mut() else {
            return;
        };
        let actions = core.handle(now, input);
        self.exec(d, actions);
    }

    fn exec(&mut self, d: usize, actions: Vec<Action>) {
        for a in actions {
            if !self.daemons[d].alive() {
                break;
            }
            self.exec_one(d, a);
        }
    }

    fn exec_one(&mut self, d: usize, action: Action) {
        match action {
            Action::Connect(spec) => self.connect(d, spec),
            Action::Disconnect { id, link } => {
                let links = &mut self.daemons[d].links;
                match link {
                    None => {
                        links.remove(&id);
                    }
                    Some(kind) => {
                        if let Some(l) = links.get_mut(&id) {
                            match kind {
                                LinkKind::Command => l.cmd = Half::Closed,
                                LinkKind::PubSub => l.pubsub = Half::Closed,
                            }
                        }
                    }
                }
            }
            Action::SendPing { id } => self.send(d, id, Req::Ping),
            Action::SendInfo { id } => self.send(d, id, Req::Info),
            Action::SendHello { id, hello } => {
                let payload = hello.payload(&self.daemons[d].host.clone());
                self.send(d, id, Req::Hello(payload));
            }
            Action::AskMasterDown {
                peer,
                master_ip,
                master_port,
                epoch,
                runid,
            } => self.send(
                d,
                peer,
                Req::Ask {
                    ip: master_ip,
                    port: master_port,
                    epoch,
                    runid,
                },
            ),
            Action::ScriptKill { id } => self.send(d, id, Req::ScriptKill),
            Action::Reconfigure { id, replicaof } => {
                let target = self.daemons[d]
                    .links
                    .get(&id)
                    .map(|l| (l.spec.host.clone(), l.spec.port));
                let mut coordinated_from = None;
                match &replicaof {
                    None => {
                        self.record_promotion(d, target.clone());
                        coordinated_from = self
                            .promotions
                            .last()
                            .filter(|p| p.failover.as_ref().is_some_and(|f| f.coordinated))
                            .and_then(|p| p.view_master.as_ref())
                            .and_then(|(h, port)| self.node_by_addr(h, *port));
                    }
                    Some((h, p)) => {
                        self.note(format!("d{d} sends REPLICAOF {h} {p} to {target:?}"));
                        if let Some((th, tp)) = &target {
                            self.check_demotion(d, th, *tp, h, *p);
                        }
                    }
                }
                self.send(d, id, Req::Reconfigure(replicaof, coordinated_from));
            }
            Action::PauseWrites { id, ms } => self.send(d, id, Req::Pause(ms)),
            Action::Unpause { id } => self.send(d, id, Req::Pause(0)),
            Action::Propose(cmd) => self.propose(d, cmd),
            // Membership is simulated on its own (`sim::group`).
            Action::ForgetDaemon { .. } => {}
            Action::Emit(ev) => {
                if ev.kind == crate::core::EventKind::SwitchMaster {
                    let w: Vec<&str> = ev.message.split(' ').collect();
                    if let [_, _, _, h, p] = w.as_slice() {
                        self.daemons[d].told_addr = p.parse().ok().map(|p: u16| (h.to_string(), p));
                    }
                    // The daemon's config epoch once this input is handled
                    // (from the log, or from a peer's hello before it
                    // rejoined the group); one input may publish two
                    // switches (a lagging daemon gets a switch and the next
                    // promotion at once).
                    let epoch = self.daemons[d]
                        .core
                        .as_ref()
                        .and_then(|c| c.masters.get(MASTER_NAME))
                        .map(|m| m.config_epoch);
                    let to = self.daemons[d].told_addr.clone();
                    if let (Some(e), Some(to)) = (epoch, to) {
                        self.check_publication(d, &to, e);
                    }
                }
                *self.events.entry(ev.kind.channel()).or_default() += 1;
                self.note(format!("d{d} {} {}", ev.kind.channel(), ev.message));
            }
            Action::Flush => {
                if let Some(core) = &self.daemons[d].core {
                    self.daemons[d].persisted = core.persisted();
                }
            }
            Action::RunScript { .. } => {}
            Action::Warn(line) => self.note(format!("d{d} warning: {line}")),
            // The simulator never sets SIMULATE-FAILURE flags; a crash is a
            // crash all the same.
            Action::SimulatedCrash => self.crash_daemon(d),
        }
    }

    /// Daemon `d` published `+switch-master` to `to`, its config epoch being
    /// `upto` afterwards. The publication is for the lowest epoch above the
    /// last one it published (daemons publish epochs in order, and flush
    /// each with its publication, so a restart does not go back) whose
    /// failover chose `to`, up to `upto`. There must be such an epoch (else
    /// it published one twice, or one that chose another node), and its
    /// promotion must be an applied entry of the log (`ReconfSlaves`).
    fn check_publication(&mut self, d: usize, to: &(String, u16), upto: u64) {
        let last = self.last_published[d];
        let chose = |e: &Command| match e {
            Command::FailoverPhase {
                name,
                epoch,
                promoted: Some(addr),
                ..
            } if name == MASTER_NAME && addr == to && *epoch > last && *epoch <= upto => {
                Some(*epoch)
            }
            _ => None,
        };
        let applied =
            |x: &&super::raft::Entry| x.response == crate::core::group::CommandResponse::Applied;
        let chosen: std::collections::BTreeSet<u64> = self
            .raft
            .log
            .iter()
            .filter(applied)
            .filter_map(|x| chose(&x.cmd))
            .collect();
        let promoted = |e: u64| {
            self.raft.log.iter().filter(applied).any(|x| {
                matches!(&x.cmd, Command::FailoverPhase { name, epoch, phase, .. }
                    if name == MASTER_NAME && *epoch == e && *phase >= Phase::ReconfSlaves)
            })
        };
        // An epoch whose failover chose `to` and was aborted before the
        // promotion (the same node may be chosen again later) is skipped.
        let epoch = chosen.iter().copied().find(|&e| promoted(e));
        let problem = match (epoch, chosen.first()) {
            (Some(e), _) => {
                self.last_published[d] = e;
                self.switch_published.insert((e, d));
                None
            }
            (None, Some(e)) => Some(format!(
                "d{d} published +switch-master for epoch {e}, whose promotion is not committed"
            )),
            (None, None) => Some(format!(
                "d{d} published +switch-master to {to:?} (config epoch {upto}, last published {last}): no failover chose it since, or it published that epoch already"
            )),
        };
        if let Some(p) = problem {
            self.note(format!("BAD PUBLICATION: {p}"));
            self.bad_publications.push(p);
        }
    }

    /// Daemon `d` sends `REPLICAOF to_h to_p` to the node at `h:p`. If that
    /// node is the master a committed failover is replacing, the demotion
    /// comes before the switch; if it is the old master of the committed
    /// switch, every daemon live since that commit must have published
    /// `+switch-master` first, unless the bound passed.
    fn check_demotion(&mut self, d: usize, h: &str, p: u16, to_h: &str, to_p: u16) {
        let state = self.raft.committed();
        let Some(m) = state.masters.get(MASTER_NAME) else {
            return;
        };
        let problem = if let Some(f) = m.failover.as_ref().filter(|f| {
            f.phase >= Phase::SendSlaveofNoone
                && f.promoted.as_ref() == Some(&(to_h.to_string(), to_p))
        }) {
            (m.host == h && m.port == p).then(|| {
                format!(
                    "d{d} demoted the master {h}:{p} to follow {to_h}:{to_p} during the failover of epoch {}, before the switch",
                    f.epoch
                )
            })
        } else if let Some(sw) = m
            .switched
            .as_ref()
            .filter(|sw| sw.epoch == m.config_epoch && sw.host == h && sw.port == p)
        {
            let at = self
                .switch_committed_at
                .get(&sw.epoch)
                .copied()
                .unwrap_or(0);
            let within = self.now < at + crate::core::failover::SWITCH_PUBLISH_WAIT_MS;
            // A daemon that last told its clients the new master already
            // (it restarted from a config flushed during the
            // reconfiguration, or it missed the switches in between) has
            // nothing to publish.
            // One the demoting daemon cannot reach (no command link up to
            // it) is not waited for: it cannot get the commit from that
            // leader either (the design's stated exception).
            let new_addr = Some((m.host.clone(), m.port));
            let reached = |k: usize| {
                k == d
                    || self.daemons[d]
                        .links
                        .values()
                        .any(|l| l.target == Target::Daemon(k) && matches!(l.cmd, Half::Up(_)))
            };
            let missing: Vec<usize> = (0..self.daemons.len())
                .filter(|&k| {
                    self.daemons[k].alive()
                        && self.unlive_at[k] < at
                        && reached(k)
                        && self.daemons[k].told_addr != new_addr
                        && !self.switch_published.contains(&(sw.epoch, k))
                })
                .collect();
            (within && !missing.is_empty()).then(|| {
                format!(
                    "d{d} demoted the old master {h}:{p} {} ms after the switch of epoch {} was committed, before daemons {missing:?} published +switch-master",
                    self.now - at,
                    sw.epoch
                )
            })
        } else {
            None
        };
        if let Some(p) = problem {
            self.note(format!("EARLY DEMOTION: {p}"));
            self.early_demotions.push(p);
        }
    }

    /// Keeps what an INFO reply delivered to daemon `d` said (read here by
    /// the simulator, not by the core's parser).
    fn remember_info(&mut self, d: usize, id: InstanceId, text: &str) {
        let Some(Target::Node(n)) = self.daemons[d].links.get(&id).map(|l| l.target) else {
            return;
        };
        let field = |k: &str| {
            text.split("\r\n")
                .find_map(|l| l.strip_prefix(k))
                .map(str::to_string)
        };
        let seen = SeenInfo {
            at: self.now,
            role_master: field("role:").as_deref() == Some("master"),
            offset: field("master_repl_offset:")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            replid: field("master_replid:").unwrap_or_default(),
            replid2: field("master_replid2:").unwrap_or_default(),
        };
        let list = self.daemons[d].seen.entry(n).or_default();
        if list.len() == SEEN_KEEP {
            list.pop_front();
        }
        list.push_back(seen);
    }

    fn record_promotion(&mut self, d: usize, target: Option<(String, u16)>) {
        let (failover, view_master) = match self.daemon_state(d).and_then(view_of) {
            Some((f, m)) => (f, Some(m)),
            None => (None, None),
        };
        let truth = |a: &Option<(String, u16)>| {
            a.as_ref()
                .and_then(|(h, p)| self.node_by_addr(h, *p))
                .map(|n| Truth::of(&self.nodes[n]))
        };
        let truth_target = truth(&target);
        let truth_master = truth(&view_master);
        let dm = &self.daemons[d];
        let p = Promotion {
            step: self.step,
            at: self.now,
            daemon: d,
            node_id: dm.node_id,
            target: target.clone(),
            failover,
            view_master,
            believed_leader: dm.view.is_leader,
            truth_target,
            truth_master,
        };
        self.note(format!(
            "d{d} sends REPLICAOF NO ONE to {target:?} (committed failover {:?})",
            p.failover
        ));
        self.promotions.push(p);
    }

    fn connect(&mut self, d: usize, spec: LinkSpec) {
        let id = spec.id;
        let target = self.resolve(&spec.host, spec.port);
        let replace = self.daemons[d]
            .links
            .get(&id)
            .is_some_and(|l| l.spec != spec);
        if replace {
            self.daemons[d].links.remove(&id);
        }
        let wants_pubsub = spec.kind != InstanceKind::Sentinel;
        let link = self.daemons[d].links.entry(id).or_insert(SimLink {
            spec,
            target,
            cmd: Half::Closed,
            pubsub: Half::Closed,
        });
        let need_cmd = link.cmd == Half::Closed;
        let need_pubsub = wants_pubsub && link.pubsub == Half::Closed;
        for (kind, need) in [
            (LinkKind::Command, need_cmd),
            (LinkKind::PubSub, need_pubsub),
        ] {
            if !need {
                continue;
            }
            self.next_gen += 1;
            let gen = self.next_gen;
            if let Some(l) = self.daemons[d].links.get_mut(&id) {
                match kind {
                    LinkKind::Command => l.cmd = Half::Connecting(gen),
                    LinkKind::PubSub => l.pubsub = Half::Connecting(gen),
                }
            }
            let (ok, after) = self.connect_outcome(d, target);
            let inc = self.daemons[d].incarnation;
            self.schedule(
                self.now + after,
                Ev::ConnectDone {
                    d,
                    inc,
                    id,
                    kind,
                    gen,
                    ok,
                },
            );
        }
    }

    /// Whether a connection attempt succeeds, and when the driver learns it.
    fn connect_outcome(&mut self, d: usize, target: Target) -> (bool, Millis) {
        if !self.reaches(d, target) {
            return (false, CONNECT_TIMEOUT);
        }
        let now = self.now;
        match target {
            Target::Node(n) => {
                let node = &self.nodes[n];
                if node.crashed {
                    (false, self.delay())
                } else if let Some(until) = node.hung_until.filter(|&t| now < t) {
                    // TCP accepts and the AUTH/SETNAME handshake waits in the
                    // socket until the process runs again (a stopped
                    // process): it completes then, or the driver gives up
                    // at its command timeout.
                    let wait = until - now;
                    if wait < CMD_TIMEOUT {
                        (true, wait + 2 * self.delay())
                    } else {
                        (false, CMD_TIMEOUT)
                    }
                } else {
                    (true, 2 * self.delay())
                }
            }
            Target::Daemon(k) => {
                if self.daemons[k].alive() {
                    (true, 2 * self.delay())
                } else {
                    (false, self.delay())
                }
            }
            Target::Nowhere => (false, CONNECT_TIMEOUT),
        }
    }

    fn send(&mut self, d: usize, id: InstanceId, req: Req) {
        let Some(link) = self.daemons[d].links.get(&id) else {
            return;
        };
        let Half::Up(gen) = link.cmd else {
            return;
        };
        let target = link.target;
        let inc = self.daemons[d].incarnation;
        if self.link_lost(gen) || !self.reaches(d, target) {
            let input = timeout_input(id, &req);
            self.schedule(
                self.now + CMD_TIMEOUT,
                Ev::LinkInput {
                    d,
                    inc,
                    id,
                    kind: LinkKind::Command,
                    gen,
                    input,
                },
            );
            return;
        }
        let at = self.now + self.delay();
        let at = self.fifo(gen, false, at);
        self.schedule(
            at,
            Ev::Request {
                d,
                inc,
                id,
                gen,
                target,
                req,
            },
        );
    }

    /// Sends `input` back to daemon `d` on one of its links, or a timeout if
    /// it is lost on the way.
    fn reply(&mut self, d: usize, inc: u64, id: InstanceId, gen: u64, input: Option<Input>) {
        let lost = self.link_lost(gen);
        let (at, input) = match input {
            Some(i) if !lost => {
                let at = self.now + self.delay();
                (self.fifo(gen, true, at), i)
            }
            Some(Input::PauseReply { .. }) => {
                (self.now + CMD_TIMEOUT, Input::PauseReply { id, info: None })
            }
            _ => (self.now + CMD_TIMEOUT, Input::CommandTimeout { id }),
        };
        self.schedule(
            at,
            Ev::LinkInput {
                d,
                inc,
                id,
                kind: LinkKind::Command,
                gen,
                input,
            },
        );
    }

    /// Whether a message on link generation `gen` is lost. A link is a TCP
    /// stream: once something on it is lost, nothing after it gets through
    /// either (the connection is stalled until the core drops it), so a
    /// reply on a link still proves that everything sent before it arrived.
    fn link_lost(&mut self, gen: u64) -> bool {
        if self.stalled.contains(&gen) {
            return true;
        }
        if self.lost() {
            self.stalled.insert(gen);
            return true;
        }
        false
    }

    /// A link is a TCP stream: what travels one way on it arrives in order.
    /// Returns when a message sent to arrive at `at` really arrives.
    fn fifo(&mut self, gen: u64, back: bool, at: Millis) -> Millis {
        let last = self.fifo.entry((gen, back)).or_insert(0);
        *last = (*last).max(at);
        *last
    }

    /// Every established link towards `t` breaks, for the daemons that can
    /// still see the connection reset.
    fn break_links_to(&mut self, t: Target) {
        let mut broken = Vec::new();
        for (d, dm) in self.daemons.iter().enumerate() {
            if !dm.alive() || !self.reaches(d, t) {
                continue;
            }
            for (id, l) in &dm.links {
                if l.target != t {
                    continue;
                }
                for (kind, half) in [(LinkKind::Command, l.cmd), (LinkKind::PubSub, l.pubsub)] {
                    if let Half::Up(gen) | Half::Connecting(gen) = half {
                        broken.push((d, dm.incarnation, *id, kind, gen));
                    }
                }
            }
        }
        for (d, inc, id, kind, gen) in broken {
            let at = self.now + self.delay();
            self.schedule(
                at,
                Ev::LinkBroken {
                    d,
                    inc,
                    id,
                    kind,
                    gen,
                },
            );
        }
    }

    fn propose(&mut self, d: usize, cmd: Command) {
        let on_majority = self.on_majority(d);
        let leader_reachable = self
            .raft
            .leader
            .is_some_and(|l| self.daemons[l].alive() && self.daemons_reach(d, l));
        if !on_majority || !leader_reachable || self.lost() {
            self.note(format!("d{d} proposal lost: {cmd:?}"));
            return;
        }
        let term = self.raft.term;
        let at = self.now + self.rng.gen_range(2..=30);
        self.schedule(
            at,
            Ev::Commit {
                cmd,
                proposer: d,
                on_majority,
                term,
                proposed_at: self.now,
            },
        );
    }

    // ----- Redis nodes ---------------------------------------------------------

    /// Connected replicas of node `n` (for its INFO).
    fn replicas_of(&self, n: usize) -> Vec<&RedisNode> {
        let (h, p) = self.nodes[n].addr();
        self.nodes
            .iter()
            .filter(|r| !r.crashed && r.link_up && r.role == RedisRole::Replica(h.clone(), p))
            .collect()
    }

    fn node_request(&mut self, d: usize, inc: u64, id: InstanceId, gen: u64, n: usize, req: Req) {
        let now = self.now;
        if !self.nodes[n].serving(now) || !self.reaches_node(d, n) {
            let input = timeout_input(id, &req);
            self.schedule(
                now + CMD_TIMEOUT,
                Ev::LinkInput {
                    d,
                    inc,
                    id,
                    kind: LinkKind::Command,
                    gen,
                    input,
                },
            );
            return;
        }
        match req {
            Req::Ping => {
                let input = Input::PingReply {
                    id,
                    reply: PingReply::Valid { pong: true },
                };
                self.reply(d, inc, id, gen, Some(input));
            }
            Req::Info => {
                let text = self.nodes[n].info(now, &self.replicas_of(n));
                let input = Input::InfoReply { id, text };
                self.reply(d, inc, id, gen, Some(input));
            }
            Req::Hello(payload) => {
                // PUBLISH on the node: every subscribed daemon that can reach
                // it gets the message, the sender included.
                let mut subs = Vec::new();
                for (k, dm) in self.daemons.iter().enumerate() {
                    if !dm.alive() || !self.reaches_node(k, n) {
                        continue;
                    }
                    for (lid, l) in &dm.links {
                        if let (Target::Node(t), Half::Up(g)) = (l.target, l.pubsub) {
                            if t == n {
                                subs.push((k, dm.incarnation, *lid, g));
                            }
                        }
                    }
                }
                for (k, kinc, lid, g) in subs {
                    if self.link_lost(g) {
                        continue;
                    }
                    let at = now + self.delay();
                    let at = self.fifo(g, true, at);
                    self.schedule(
                        at,
                        Ev::LinkInput {
                            d: k,
                            inc: kinc,
                            id: lid,
                            kind: LinkKind::PubSub,
                            gen: g,
                            input: Input::Hello {
                                via: Some(lid),
                                payload: payload.clone(),
                            },
                        },
                    );
                }
                let input = Input::PublishReply { id, ok: true };
                self.reply(d, inc, id, gen, Some(input));
            }
            Req::Reconfigure(None, coordinated_from) => {
                self.note(format!(
                    "node n{n} becomes master (REPLICAOF NO ONE from d{d})"
                ));
                if let Some(m) = coordinated_from {
                    self.check_no_write_lost(d, n, m);
                }
                let mut rng = StdRng::seed_from_u64(self.rng.gen());
                self.nodes[n].promote(&mut rng);
            }
            Req::Reconfigure(Some((h, p)), _) => {
                self.note(format!("node n{n} becomes replica of {h}:{p} (from d{d})"));
                self.nodes[n].follow(h, p, now);
            }
            Req::Pause(0) => {
                self.note(format!("node n{n} writes unpaused (from d{d})"));
                self.nodes[n].paused_until = None;
            }
            Req::Pause(ms) => {
                // CLIENT PAUSE and INFO pipelined: the INFO is read with the
                // pause in force.
                self.note(format!("node n{n} writes paused for {ms} ms (from d{d})"));
                self.nodes[n].paused_until = Some(now + ms);
                let info = Some(self.nodes[n].info(now, &self.replicas_of(n)));
                self.reply(d, inc, id, gen, Some(Input::PauseReply { id, info }));
            }
            Req::ScriptKill | Req::Ask { .. } => self.reply(d, inc, id, gen, None),
        }
    }

    fn daemon_request(&mut self, d: usize, inc: u64, id: InstanceId, gen: u64, k: usize, req: Req) {
        if !self.daemons[k].alive() || !self.daemons_reach(d, k) {
            self.reply(d, inc, id, gen, None);
            return;
        }
        let now = self.now;
        match req {
            Req::Ping => {
                let input = Input::PingReply {
                    id,
                    reply: PingReply::Valid { pong: true },
                };
                self.reply(d, inc, id, gen, Some(input));
            }
            Req::Hello(payload) => {
                self.feed(k, Input::Hello { via: None, payload });
                let input = Input::PublishReply { id, ok: true };
                self.reply(d, inc, id, gen, Some(input));
            }
            Req::Ask {
                ip,
                port,
                epoch,
                runid,
            } => {
                let mut out = Vec::new();
                let answer = self.daemons[k].core.as_mut().map(|c| {
                    c.is_master_down_by_addr(
                        now,
                        &ip,
                        &port.to_string(),
                        &epoch.to_string(),
                        &runid,
                        &mut out,
                    )
                });
                self.exec(k, out);
                let reply = match answer {
                    Some(Ok((down, leader, e))) => Some((down, leader, e)),
                    _ => None,
                };
                let input = Input::MasterDownReply { peer: id, reply };
                self.reply(d, inc, id, gen, Some(input));
            }
            Req::Info | Req::Reconfigure(..) | Req::Pause(_) | Req::ScriptKill => {
                self.reply(d, inc, id, gen, None)
            }
        }
    }

    /// A coordinated switchover promotes `n` only while the old master `m`
    /// is paused and `n` has everything `m` acknowledged. An old master that
    /// is down, or that the promoting daemon `d` cannot reach (cut, or its
    /// link stalled by a loss: the group saw it down), makes it an unplanned
    /// failover: nothing to check.
    fn check_no_write_lost(&mut self, d: usize, n: usize, m: usize) {
        let now = self.now;
        if n == m || !self.nodes[m].serving(now) || !self.reaches_node(d, m) {
            return;
        }
        let link_ok = self.daemons[d].links.values().any(|l| {
            l.target == Target::Node(m)
                && matches!(l.cmd, Half::Up(g) if !self.stalled.contains(&g))
        });
        if !link_ok {
            return;
        }
        // Back from a crash or hang so recently that the group may not have
        // seen it again yet (a reconnect period, a PING, the opinions'
        // commit): to the daemons it is a dead master, and the switchover an
        // unplanned failover, which Sentinel's rules govern.
        if now < self.nodes[m].back_at + DOWN_AFTER + 1_000 {
            return;
        }
        self.coordinated_checked += 1;
        let (old, new) = (&self.nodes[m], &self.nodes[n]);
        let paused = old.paused_until.is_some_and(|t| now < t);
        let problem = if !paused {
            Some(format!(
                "n{n} promoted while the old master n{m} is not paused (offset {})",
                old.offset
            ))
        } else if new.offset < old.offset {
            Some(format!(
                "n{n} promoted at offset {} below the old master n{m}'s {}: {} bytes of acknowledged writes lost",
                new.offset,
                old.offset,
                old.offset - new.offset
            ))
        } else {
            None
        };
        if let Some(p) = problem {
            self.note(format!("WRITE LOSS: {p}"));
            self.write_loss.push(p);
        }
    }

    pub fn crash_node(&mut self, n: usize) {
        if self.nodes[n].crashed {
            return;
        }
        self.note(format!("FAULT node n{n} ({}) crashes", self.nodes[n].host));
        self.nodes[n].crashed = true;
        self.break_links_to(Target::Node(n));
    }

    pub fn restart_node(&mut self, n: usize, empty: bool) {
        if !self.nodes[n].crashed {
            return;
        }
        let what = if empty { "empty" } else { "with its data" };
        self.note(format!(
            "node n{n} restarts {what} as {:?}",
            self.nodes[n].role
        ));
        let mut rng = StdRng::seed_from_u64(self.rng.gen());
        let now = self.now;
        self.nodes[n].restart(empty, now, &mut rng);
    }

    /// Replication and the write stream, between events.
    fn replicate(&mut self) {
        let now = self.now;
        for n in 0..self.nodes.len() {
            if self.nodes[n].hung_until.is_some_and(|t| now >= t) {
                self.nodes[n].hung_until = None;
            }
            if !self.nodes[n].serving(now) {
                continue;
            }
            let RedisRole::Replica(h, p) = self.nodes[n].role.clone() else {
                continue;
            };
            let src = self
                .node_by_addr(&h, p)
                .filter(|&s| s != n && self.nodes[s].serving(now));
            let Some(s) = src else {
                self.nodes[n].lose_link(now);
                self.nodes[n].sync_at = None;
                continue;
            };
            let source = self.nodes[s].clone();
            let node = &mut self.nodes[n];
            if node.link_up {
                if node.replid == source.replid {
                    node.offset = node.offset.max(source.visible_offset());
                } else {
                    // The source changed history (restart, promotion).
                    node.lose_link(now);
                }
            } else {
                match node.sync_at {
                    None => {
                        let at = now + self.rng.gen_range(50..400);
                        self.nodes[n].sync_at = Some(at);
                    }
                    Some(at) if now >= at => node.sync_from(&source, now),
                    Some(_) => {}
                }
            }
        }
    }

    fn writes(&mut self) {
        let now = self.now;
        for n in 0..self.nodes.len() {
            self.nodes[n].shipped = self.nodes[n].offset;
            let node = &self.nodes[n];
            let paused = node.paused_until.is_some_and(|t| now < t);
            if node.role == RedisRole::Master
                && node.serving(now)
                && !paused
                && self.rng.gen_bool(0.7)
            {
                let add = self.rng.gen_range(1..500);
                self.nodes[n].offset += add;
            }
        }
    }

    // ----- Raft ----------------------------------------------------------------

    fn raft_maintain(&mut self) {
        let now = self.now;
        let majority = self.majority_side();
        for d in 0..self.daemons.len() {
            if !self.daemons[d].alive() || Some(self.daemons[d].side) != majority {
                self.unlive_at[d] = now;
            }
        }
        if let Some(l) = self.raft.leader {
            if !self.daemons[l].alive() || Some(self.daemons[l].side) != majority {
                self.note(format!("raft leader d{l} lost (term {})", self.raft.term));
                self.raft.leader = None;
                self.raft.election_at = Some(now + self.rng.gen_range(150..=500));
            }
        }
        if self.raft.leader.is_none() {
            if self.raft.election_at.is_none() {
                self.raft.election_at = Some(now + self.rng.gen_range(150..=500));
            }
            if let (Some(side), Some(at)) = (majority, self.raft.election_at) {
                if now >= at {
                    let candidates: Vec<usize> = (0..self.daemons.len())
                        .filter(|&d| self.daemons[d].alive() && self.daemons[d].side == side)
                        .collect();
                    if !candidates.is_empty() {
                        let l = candidates[self.rng.gen_range(0..candidates.len())];
                        self.raft.term += 1;
                        self.raft.leader = Some(l);
                        self.raft.election_at = None;
                        self.note(format!(
                            "raft leader d{l} elected (term {})",
                            self.raft.term
                        ));
                    }
                }
            }
        }
        // Views: a deposed leader cut off from the majority learns it late.
        for d in 0..self.daemons.len() {
            if !self.daemons[d].alive() {
                continue;
            }
            let view = RaftView {
                node_id: self.daemons[d].node_id,
                initialized: true,
                is_leader: self.raft.leader == Some(d),
                voters: self.daemons.len(),
                // Cut off from the majority, a follower stops believing in
                // a leader once its own elections fail.
                leader: self
                    .raft
                    .leader
                    .filter(|_| Some(self.daemons[d].side) == majority)
                    .map(|l| self.daemons[l].node_id),
            };
            if self.daemons[d].sent_view == Some(view) {
                continue;
            }
            let demoted = self.daemons[d].sent_view.is_some_and(|v| v.is_leader) && !view.is_leader;
            let lag = if demoted && Some(self.daemons[d].side) != majority {
                self.rng.gen_range(0..=400)
            } else {
                self.rng.gen_range(0..=30)
            };
            let dm = &mut self.daemons[d];
            dm.sent_view = Some(view);
            dm.view_at = dm.view_at.max(now + lag);
            let (at, inc) = (dm.view_at, dm.incarnation);
            self.schedule(at, Ev::View { d, inc, view });
        }
        // Committed states reach every daemon on the majority side.
        let len = self.raft.len();
        for d in 0..self.daemons.len() {
            if !self.on_majority(d) || self.daemons[d].scheduled_index >= len {
                continue;
            }
            // Now and then a follower applies late (a slow disk, a busy
            // host): what waits for every daemon must wait for it too.
            let lag = if self.rng.gen_bool(0.1) {
                self.rng.gen_range(100..=400)
            } else {
                self.rng.gen_range(1..=30)
            };
            let dm = &mut self.daemons[d];
            dm.scheduled_index = len;
            dm.commit_at = dm.commit_at.max(now + lag);
            let (at, inc) = (dm.commit_at, dm.incarnation);
            self.schedule(at, Ev::Committed { d, inc, index: len });
        }
    }

    // ----- the event loop ----------------------------------------------------

    fn link_current(&self, d: usize, inc: u64, id: InstanceId, kind: LinkKind, gen: u64) -> bool {
        let dm = &self.daemons[d];
        if !dm.alive() || dm.incarnation != inc {
            return false;
        }
        let Some(l) = dm.links.get(&id) else {
            return false;
        };
        let half = match kind {
            LinkKind::Command => l.cmd,
            LinkKind::PubSub => l.pubsub,
        };
        matches!(half, Half::Up(g) | Half::Connecting(g) if g == gen)
    }

    fn set_half(&mut self, d: usize, id: InstanceId, kind: LinkKind, half: Half) {
        if let Some(l) = self.daemons[d].links.get_mut(&id) {
            match kind {
                LinkKind::Command => l.cmd = half,
                LinkKind::PubSub => l.pubsub = half,
            }
        }
    }

    fn process(&mut self, ev: Ev) {
        match ev {
            Ev::Tick { d, inc } => {
                if self.daemons[d].alive() && self.daemons[d].incarnation == inc {
                    self.feed(d, Input::Tick);
                    self.schedule(self.now + TICK, Ev::Tick { d, inc });
                }
            }
            Ev::ConnectDone {
                d,
                inc,
                id,
                kind,
                gen,
                ok,
            } => {
                if !self.link_current(d, inc, id, kind, gen) {
                    return;
                }
                if ok {
                    self.set_half(d, id, kind, Half::Up(gen));
                    self.feed(d, Input::LinkUp { id, link: kind });
                } else {
                    self.set_half(d, id, kind, Half::Closed);
                    self.feed(d, Input::LinkDown { id, link: kind });
                }
            }
            Ev::Request {
                d,
                inc,
                id,
                gen,
                target,
                req,
            } => match target {
                Target::Node(n) => self.node_request(d, inc, id, gen, n, req),
                Target::Daemon(k) => self.daemon_request(d, inc, id, gen, k, req),
                Target::Nowhere => self.reply(d, inc, id, gen, None),
            },
            Ev::LinkInput {
                d,
                inc,
                id,
                kind,
                gen,
                input,
            } => {
                if !self.link_current(d, inc, id, kind, gen) {
                    return;
                }
                if let Input::InfoReply { text, .. } = &input {
                    self.remember_info(d, id, text);
                }
                self.feed(d, input);
            }
            Ev::LinkBroken {
                d,
                inc,
                id,
                kind,
                gen,
            } => {
                if self.link_current(d, inc, id, kind, gen) {
                    self.set_half(d, id, kind, Half::Closed);
                    self.feed(d, Input::LinkDown { id, link: kind });
                }
            }
            Ev::Commit {
                cmd,
                proposer,
                on_majority,
                term,
                proposed_at,
            } => {
                if self.raft.term != term || self.raft.leader.is_none() {
                    self.note(format!("entry lost in a leader change: {cmd:?}"));
                    return;
                }
                let i = self.raft.commit(cmd.clone(), Some(proposer), on_majority);
                self.proposed_at.push(proposed_at);
                let resp = self.raft.log[i - 1].response.clone();
                if let (
                    Command::SwitchMaster { epoch, .. },
                    crate::core::group::CommandResponse::Applied,
                ) = (&cmd, &resp)
                {
                    self.switch_committed_at.insert(*epoch, self.now);
                }
                self.note(format!("commit #{i} from d{proposer}: {cmd:?} -> {resp:?}"));
            }
            Ev::Committed { d, inc, index } => {
                let dm = &self.daemons[d];
                if !dm.alive() || dm.incarnation != inc || index <= dm.delivered_index {
                    return;
                }
                self.daemons[d].delivered_index = index;
                if let Some(state) = self.raft.states.get(index - 1).cloned() {
                    self.feed(d, Input::Committed(Box::new(state)));
                }
            }
            Ev::View { d, inc, view } => {
                if self.daemons[d].alive() && self.daemons[d].incarnation == inc {
                    self.daemons[d].view = view;
                    self.feed(d, Input::Raft(view));
                }
            }
            Ev::DaemonRestart { d } => self.restart_daemon(d),
            Ev::NodeRestart { n, empty } => self.restart_node(n, empty),
        }
    }

    /// Runs every event due up to `until`, keeping Raft and replication
    /// current between events.
    pub fn run_until(&mut self, until: Millis) {
        loop {
            self.raft_maintain();
            self.replicate();
            let Some((&(at, seq), _)) = self.queue.first_key_value() else {
                break;
            };
            if at > until {
                break;
            }
            let Some(ev) = self.queue.remove(&(at, seq)) else {
                break;
            };
            self.now = self.now.max(at);
            self.process(ev);
        }
        self.now = self.now.max(until);
        self.raft_maintain();
        self.replicate();
    }

    /// One step: maybe a fault, then 10-200 ms of simulated time.
    pub fn step_once(&mut self) {
        self.step += 1;
        if self.cfg.faults {
            self.random_fault();
        }
        let dt = self.rng.gen_range(10..=200);
        self.writes();
        self.run_until(self.now + dt);
    }

    /// One step of exactly `ms` without faults (scripted scenarios).
    pub fn advance(&mut self, ms: u64) {
        self.step += 1;
        self.writes();
        self.run_until(self.now + ms);
    }

    /// What every running daemon answers to GET-MASTER-ADDR-BY-NAME.
    pub fn answers(&self) -> Vec<Option<(String, u16)>> {
        self.daemons
            .iter()
            .filter_map(|d| d.core.as_ref())
            .map(|c| c.master_addr(MASTER_NAME))
            .collect()
    }

    // ----- faults --------------------------------------------------------------

    pub fn master_node(&self) -> Option<usize> {
        let state = self.raft.committed();
        let (h, p) = Self::expected_master(&state)?;
        self.node_by_addr(&h, p)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.rng.gen_range(0..items.len())])
        }
    }

    fn random_fault(&mut self) {
        if !self.rng.gen_bool(0.06) {
            return;
        }
        let now = self.now;
        match self.rng.gen_range(0..13) {
            0 | 1 => {
                // The committed master crashes, and may come back.
                if let Some(n) = self.master_node() {
                    self.crash_node(n);
                    if self.rng.gen_bool(0.7) {
                        let at = now + self.rng.gen_range(300..8_000);
                        let empty = self.rng.gen_bool(0.4);
                        self.schedule(at, Ev::NodeRestart { n, empty });
                    }
                }
            }
            2 => {
                let all: Vec<usize> = (0..self.nodes.len()).collect();
                if let Some(n) = self.pick(&all) {
                    self.crash_node(n);
                    let at = now + self.rng.gen_range(300..5_000);
                    let empty = self.rng.gen_bool(0.5);
                    self.schedule(at, Ev::NodeRestart { n, empty });
                }
            }
            3 => {
                let all: Vec<usize> = (0..self.nodes.len()).collect();
                if let Some(n) = self.pick(&all) {
                    let d = self.rng.gen_range(300..4_000);
                    self.note(format!("FAULT node n{n} hangs for {d} ms"));
                    self.nodes[n].hung_until = Some(now + d);
                    self.nodes[n].back_at = now + d;
                }
            }
            4 | 5 => {
                let alive: Vec<usize> = (0..self.daemons.len())
                    .filter(|&d| self.daemons[d].alive())
                    .collect();
                if let Some(d) = self.pick(&alive) {
                    self.crash_daemon(d);
                    let at = now + self.rng.gen_range(300..6_000);
                    self.schedule(at, Ev::DaemonRestart { d });
                }
            }
            6 | 7 => {
                let sides: Vec<u8> = (0..self.daemons.len())
                    .map(|_| u8::from(self.rng.gen_bool(0.5)))
                    .collect();
                self.note(format!("FAULT daemon partition {sides:?}"));
                for (d, s) in sides.into_iter().enumerate() {
                    self.daemons[d].side = s;
                }
            }
            8 => {
                let nd = self.daemons.len();
                let nn = self.nodes.len();
                if self.rng.gen_bool(0.5) {
                    let d = self.rng.gen_range(0..nd);
                    self.note(format!("FAULT daemon d{d} cut from every Redis node"));
                    for n in 0..nn {
                        self.cut.push((d, n));
                    }
                } else {
                    let n = self.rng.gen_range(0..nn);
                    let ds: Vec<usize> = (0..nd).filter(|_| self.rng.gen_bool(0.6)).collect();
                    self.note(format!("FAULT node n{n} cut from daemons {ds:?}"));
                    for d in ds {
                        self.cut.push((d, n));
                    }
                }
            }
            9 => {
                self.loss = if self.loss > 0.0 { 0.0 } else { 0.05 };
                self.max_delay = if self.max_delay > 5 { 5 } else { 150 };
                self.note(format!(
                    "FAULT network loss {} max delay {} ms",
                    self.loss, self.max_delay
                ));
            }
            10 => {
                if let Some(l) = self.raft.leader {
                    self.note(format!("raft leadership moves away from d{l}"));
                    self.raft.leader = None;
                    self.raft.election_at = Some(now + self.rng.gen_range(150..=500));
                }
            }
            11 => {
                let alive: Vec<usize> = (0..self.daemons.len())
                    .filter(|&d| self.daemons[d].alive())
                    .collect();
                if let Some(d) = self.pick(&alive) {
                    self.manual_failover(d);
                }
            }
            _ => self.heal(),
        }
    }

    /// `SENTINEL FAILOVER mymaster` sent to daemon `d` by a client.
    pub fn manual_failover(&mut self, d: usize) {
        let now = self.now;
        let mut out = Vec::new();
        let Some(core) = self.daemons[d].core.as_mut() else {
            return;
        };
        let reply = core.failover(MASTER_NAME, false, now, &mut out);
        self.note(format!("client: SENTINEL FAILOVER to d{d} -> {reply:?}"));
        self.exec(d, out);
    }

    /// Heals every partition and restores a clean network.
    pub fn heal(&mut self) {
        self.note("heal: partitions cleared, no loss".into());
        for d in &mut self.daemons {
            d.side = 0;
        }
        self.cut.clear();
        self.loss = 0.0;
        self.max_delay = 5;
    }

    /// Ends the faults: heal, restart every crashed daemon, unhang nodes.
    /// Crashed Redis nodes stay down (a failover may still be needed).
    pub fn settle(&mut self) {
        self.heal();
        for d in 0..self.daemons.len() {
            self.restart_daemon(d);
        }
        for n in &mut self.nodes {
            n.hung_until = None;
        }
        // Pending restarts still happen; crashes do not.
        self.cfg.faults = false;
    }

    pub fn trace_text(&self) -> String {
        let mut s = String::new();
        for line in &self.trace {
            s.push_str("    ");
            s.push_str(line);
            s.push('\n');
        }
        s
    }
}
