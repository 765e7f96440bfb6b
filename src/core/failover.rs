//! The failover engine, driven by committed Raft state (docs/design.md,
//! docs/failover.md). Pure like the rest of the core: it reads the committed
//! `GroupState` and the local Raft view fed in by the driver, and answers
//! with `Action`s (proposals, Redis reconfigurations, events).
//!
//! Split of roles:
//! - every daemon proposes its SDOWN opinion, derives ODOWN from the committed
//!   votes, publishes the committed steps it must publish (`+new-epoch`,
//!   `+vote-for-leader`, `+switch-master` once per committed epoch) and
//!   answers clients from committed state;
//! - the Raft leader starts failovers, drives the one it leads (selection on
//!   fresh INFO, promotion, replica reconfiguration), takes over a failover
//!   whose leader is gone, and demotes the old master once every daemon has
//!   published the switch (publish, then demote).
//!
//! Nothing is done to Redis for a step that is not committed: a step's
//! effects run when the step shows up in `Input::Committed`. Proposals may be
//! lost, so whatever is still wanted is re-proposed every `REPROPOSE_MS`
//! (`GroupState::apply` rejects stale or duplicate commands).

use indexmap::IndexMap;

use super::event::EventKind;
use super::instance::Role;
use super::sentinel::{emit, prefix, MAddr, Master, Sentinel};
use super::types::{Action, InstanceId, Millis};
use crate::core::group::Command;
use crate::core::group::{
    node_id_from_myid, CommittedMaster, Failover, Phase, ReplHistory, Switched,
};

/// A daemon that just became the Raft leader may not have applied the last
/// committed entries yet: for this long it does not correct Redis nodes from
/// its committed view (`fix_replicas`, the demotion after a switch), which
/// could be a switch behind and turn the new master into a replica of the
/// old one. Driving a failover needs no such wait: it acts only once its own
/// takeover is committed, which comes after everything before it.
pub(crate) const LEADER_SETTLE_MS: u64 = 1000;
/// A wanted proposal not yet seen committed is sent again after this long.
pub(crate) const REPROPOSE_MS: u64 = 250;
/// Selection waits this long at most for the replicas' fresh INFO.
pub(crate) const SELECT_INFO_WAIT_MS: u64 = 300;
/// INFO polling of a replica being promoted or reconfigured.
pub(crate) const POLL_MS: u64 = 100;
/// For this long after SLAVEOF is sent, a new INFO is asked as soon as the
/// previous one is answered (one in flight): the change usually shows within
/// a few milliseconds, and the link may answer an INFO sent with the
/// transaction before the transaction itself. Then every `POLL_MS`.
pub(crate) const FAST_POLL_WINDOW_MS: u64 = 1000;
/// INFO polling while a coordinated switchover waits for the replica.
pub(crate) const CATCHUP_POLL_MS: u64 = 50;
/// Minimum spacing of corrective SLAVEOFs to the same node.
const FIX_RESEND_MS: u64 = 1000;
/// After a switch, the old master is demoted (its clients killed) only once
/// every daemon of the group has published `+switch-master` — clients that
/// learn of a failover only from that message (Jedis) must have moved before
/// their connections drop — or once this long has passed since the leader
/// saw the switch committed (a daemon that missed the commit, cut off or
/// hung, is not waited for longer).
pub(crate) const SWITCH_PUBLISH_WAIT_MS: u64 = 2000;
/// Time given to subscribers after the last daemon's publication was seen
/// committed, before the old master's clients are killed: the message is
/// on the wire, the client's listener thread still has to act on it.
pub(crate) const SUBSCRIBER_GRACE_MS: u64 = 100;
/// `SENTINEL SIMULATE-FAILURE` bits (INFO `sentinel_simulate_failure_flags`).
pub const SIMFAILURE_CRASH_AFTER_ELECTION: u32 = 1;
pub const SIMFAILURE_CRASH_AFTER_PROMOTION: u32 = 2;

/// The master option that turns manual failovers into coordinated ones
/// (raftinel extension of SENTINEL SET).
pub const COORDINATED_OPTION: &str = "coordinated-failover";

/// Per-master failover bookkeeping of this daemon (never persisted: after a
/// restart the committed state says where things stand).
#[derive(Debug, Clone, Default)]
pub struct Ctl {
    /// Epoch of the last committed failover start already published here.
    /// Starts at the persisted current epoch, so a replayed log does not
    /// publish old failovers again.
    pub start_seen: u64,
    /// Epoch whose leader-side start events this daemon emitted.
    pub led_start: u64,
    /// Last opinion proposed (down?) and when.
    pub opinion: Option<(bool, Millis)>,
    /// When the last committed failover of this master started (retry
    /// spacing: 2 × failover-timeout after a start, unless it succeeded).
    pub last_start: Option<Millis>,
    /// Last automatic FailoverStart proposal.
    pub start_proposed: Option<Millis>,
    /// Epoch of the last FailoverStart proposed for this master
    /// (`Sentinel::start_epoch`).
    pub start_epoch: u64,
    /// Last FailoverTakeover proposal (epoch, when).
    pub takeover_proposed: Option<(u64, Millis)>,
    /// Last Monitor proposal of a master the group does not know yet.
    pub monitor_proposed: Option<Millis>,
    /// A SENTINEL FAILOVER waiting to be committed.
    pub manual: Option<ManualWant>,
    /// `coordinated-failover no`: SENTINEL FAILOVER is Sentinel's plain
    /// failover. By default it is a coordinated switchover.
    pub plain_manual: bool,
    /// The committed switch whose old master waits for its demotion, as this
    /// daemon first saw it: (epoch, when).
    pub switch_seen: Option<(u64, Millis)>,
    /// When this daemon last proposed its `SwitchPublished` (epoch, when).
    pub publish_proposed: Option<(u64, Millis)>,
    /// Raft leader: the old master's demotion for the switch it names.
    pub demotion: Option<Demotion>,
    /// Nodes this daemon paused (CLIENT PAUSE WRITE) and has not unpaused
    /// yet: each is unpaused once it reports role:slave, whatever became of
    /// the failover or switch that paused it (a next failover may start
    /// before the demotion shows, and a paused node would hold every hello
    /// PUBLISH sent to it, then be seen down).
    pub paused: Vec<(String, u16)>,
    /// The failover this daemon drives (Raft leader named in it).
    pub run: Option<Run>,
    /// ODOWN was decided by Sentinel's peer-reply rule before this daemon
    /// could read the group's votes (master killed while the group formed).
    /// Set: `Some(None)`; once the committed votes take over: `Some(Some(t))`,
    /// the deadline until which the votes may catch up without a `-odown`
    /// (see `sentinel::group_check_odown`).
    pub classic_odown: Option<Option<Millis>>,
    /// The group's SET options (and quorum) as last seen committed: only a
    /// committed value that changed since is applied here, so a local SET
    /// not yet committed is not undone by an older committed value.
    pub seen_options: std::collections::BTreeMap<String, String>,
    /// Options set on this daemon and proposed, not seen committed yet
    /// (group key -> value, when).
    pub pending_options: std::collections::BTreeMap<String, (String, Millis)>,
}

/// The Raft leader's progress in demoting the old master of the last switch
/// (local: a new leader starts over from the committed `Switched` record and
/// the old master's INFO).
#[derive(Debug, Clone, Copy, Default)]
pub struct Demotion {
    pub epoch: u64,
    /// Since when every daemon's publication is seen committed (or the
    /// daemons left out are out of reach).
    pub published_at: Option<Millis>,
    /// Last CLIENT PAUSE sent to the old master (coordinated).
    pub paused_at: Option<Millis>,
    /// The old master follows the new one: nothing more to do.
    pub done: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct ManualWant {
    pub coordinated: bool,
    pub since: Millis,
    pub proposed: Millis,
}

/// Per-replica reconfiguration state during `reconf_slaves`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconf {
    /// SLAVEOF sent at `at`; `count` = the replica's INFO count then.
    Sent {
        at: Millis,
        count: u64,
    },
    Inprog,
    Done,
}

impl Reconf {
    fn flag(self) -> &'static str {
        match self {
            Reconf::Sent { .. } => "reconf_sent",
            Reconf::Inprog => "reconf_inprog",
            Reconf::Done => "reconf_done",
        }
    }
}

/// Where the driving leader stands within the committed phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sub {
    /// Fresh INFO asked of these replicas (id, INFO count that answers it).
    Asking {
        waiting: Vec<(InstanceId, u64)>,
        at: Millis,
    },
    /// A proposal (next phase or abort) is out; waiting for its commit.
    Decided,
    /// The promoted replica's link is down: SLAVEOF NO ONE waits for it.
    WaitLink,
    /// Coordinated: writes paused on the old master; waiting for the replica
    /// to reach `offset`, the master's offset read after the pause: from the
    /// INFO pipelined with CLIENT PAUSE (`Input::PauseReply`), or, if that
    /// reply is late, from an INFO asked one poll period after the pause
    /// (`info_target` = the master INFO count that answers it).
    CatchUp {
        offset: Option<u64>,
        info_target: Option<u64>,
    },
    /// SLAVEOF NO ONE sent; waiting for an INFO after it saying role:master.
    WaitPromotion { count: u64 },
    /// Replicas being reconfigured.
    Reconf,
}

/// The failover this daemon drives.
#[derive(Debug, Clone)]
pub struct Run {
    pub epoch: u64,
    /// Committed phase whose entry work is done here (None: nothing yet).
    pub phase: Option<Phase>,
    pub sub: Sub,
    /// When the current phase (or promotion wait) began locally.
    pub since: Millis,
    /// The proposal being pushed until committed.
    pub want: Option<(Command, Millis)>,
    /// The abort event to publish when the proposed abort commits, and
    /// why (for its log line).
    pub abort: Option<EventKind>,
    pub abort_detail: Option<String>,
    pub reconf: IndexMap<String, Reconf>,
    /// Writes are paused on the old master (coordinated mode); they stay
    /// paused through the switch until the old master is demoted.
    pub paused: bool,
    /// When CLIENT PAUSE was last sent: it is sent again before it expires
    /// (its timeout is failover-timeout, and the steps after the pause may
    /// each take up to that).
    pub paused_at: Millis,
    pub last_poll: Millis,
    /// This daemon's node id: its proposals are signed with it.
    pub by: u64,
}

impl Run {
    fn new(epoch: u64, now: Millis, by: u64) -> Run {
        Run {
            by,
            epoch,
            phase: None,
            sub: Sub::Decided,
            since: now,
            want: None,
            abort: None,
            abort_detail: None,
            reconf: IndexMap::new(),
            paused: false,
            paused_at: now,
            last_poll: now,
        }
    }

    fn propose(&mut self, cmd: Command, now: Millis, out: &mut Vec<Action>) {
        let cmd = cmd.signed(self.by);
        out.push(Action::Propose(cmd.clone()));
        self.want = Some((cmd, now));
    }
}

/// Sentinel's `failover-state` name of a committed phase.
fn phase_str(p: Phase) -> &'static str {
    match p {
        Phase::SelectSlave => "select_slave",
        Phase::SendSlaveofNoone => "send_slaveof_noone",
        Phase::WaitPromotion => "wait_promotion",
        Phase::ReconfSlaves => "reconf_slaves",
        Phase::UpdateConfig => "update_config",
    }
}

/// How long the leader's own PING must have been pending before it counts
/// as unanswered (a healthy master answers in well under a millisecond).
const PENDING_PING_EVIDENCE_MS: u64 = 100;

/// The leader sees the master down: SDOWN, or — with the group's quorum
/// already saying so — a PING pending for a while and nothing heard from it
/// for more than down-after. The second form matters when the master hangs
/// (SIGSTOP): each daemon's SDOWN comes down-after after its own first
/// unanswered PING, and the leader's PING may have gone out up to a ping
/// period after the others'; a master that answers it is never "down".
fn leader_sees_down(inst: &super::instance::Instance, now: Millis) -> bool {
    let l = &inst.link;
    inst.s_down
        || (l
            .act_ping_time
            .is_some_and(|a| now.saturating_sub(a) > PENDING_PING_EVIDENCE_MS)
            && now.saturating_sub(l.last_avail_time) > inst.down_after)
}

fn same_addr(h1: &str, p1: u16, h2: &str, p2: u16) -> bool {
    p1 == p2 && h1.eq_ignore_ascii_case(h2)
}

/// The instance at `host:port` among a master's (`inst`) and its replicas.
fn instance_at<'a>(
    inst: &'a mut super::instance::Instance,
    replicas: &'a mut IndexMap<String, super::instance::Instance>,
    host: &str,
    port: u16,
) -> Option<&'a mut super::instance::Instance> {
    if same_addr(&inst.host, inst.port, host, port) {
        return Some(inst);
    }
    replicas
        .values_mut()
        .find(|r| same_addr(&r.host, r.port, host, port))
}

/// Asks INFO on the command link if it is up; returns the INFO count whose
/// arrival answers this request (replies come back in order).
fn ask_info(inst: &mut super::instance::Instance, out: &mut Vec<Action>) -> Option<u64> {
    if !inst.link.cmd_up {
        return None;
    }
    let target = inst.info_count + 1 + u64::from(inst.link.info_inflight);
    inst.link.pending += 1;
    inst.link.info_inflight = true;
    out.push(Action::SendInfo { id: inst.id });
    Some(target)
}

/// A switch of a master to a newer config epoch, as `Sentinel::switch_to`
/// applies it.
struct Switch<'a> {
    epoch: u64,
    host: &'a str,
    port: u16,
    /// The daemon that led the failover, when known.
    leader: Option<u64>,
    /// The history the promoted replica took at its promotion.
    history: Option<&'a ReplHistory>,
}

/// What the failover engine adds to an instance description.
#[derive(Debug, Clone, Default)]
pub(crate) struct DescExtras {
    pub failover_state: Option<&'static str>,
}

impl Sentinel {
    /// The committed record of a master, when this daemon is in a group and
    /// the group monitors it.
    pub(crate) fn cmaster(&self, name: &str) -> Option<&CommittedMaster> {
        self.committed.as_ref()?.masters.get(name)
    }

    fn cfailover(&self, name: &str) -> Option<&Failover> {
        self.cmaster(name)?.failover.as_ref()
    }

    /// The master a committed failover replaces, as the leader's events name
    /// it: the committed address. This daemon's own view may have moved to
    /// the promoted replica already (it published the switch as an
    /// observer before it took the failover over, or restarted from a
    /// config written during the reconfiguration).
    fn failover_maddr(&self, mi: usize) -> MAddr {
        let m = &self.masters[mi];
        match self.cmaster(&m.inst.name) {
            Some(cm) => MAddr {
                name: m.inst.name.clone(),
                host: cm.host.clone(),
                port: cm.port,
            },
            None => m.addr(),
        }
    }

    /// The address clients are given for master `m` (GET-MASTER-ADDR-BY-NAME,
    /// hello, config rewrite): committed, and the promoted replica's once the
    /// committed failover reached reconf_slaves (Sentinel does the same).
    pub(crate) fn client_addr(&self, m: &Master) -> (String, u16) {
        match self.cmaster(&m.inst.name) {
            Some(cm) => match &cm.failover {
                Some(Failover {
                    phase: Phase::ReconfSlaves | Phase::UpdateConfig,
                    promoted: Some((h, p)),
                    ..
                }) => (h.clone(), *p),
                _ => (cm.host.clone(), cm.port),
            },
            None => (m.inst.host.clone(), m.inst.port),
        }
    }

    /// The master's configured address as SENTINEL MASTER(S) and INFO show it:
    /// the committed one, or the promoted replica's once this daemon
    /// published the switch (observers, from the committed promotion on;
    /// the failover's leader keeps the old address until the switch, as in
    /// Sentinel).
    pub(crate) fn shown_addr(&self, m: &Master) -> (String, u16) {
        match self.cmaster(&m.inst.name) {
            Some(cm) => self
                .published_early(m)
                .unwrap_or_else(|| (cm.host.clone(), cm.port)),
            None => (m.inst.host.clone(), m.inst.port),
        }
    }

    /// The promoted address of master `m`'s committed failover, when its
    /// promotion is committed and this daemon already published its switch
    /// (its config epoch reached the failover's).
    fn published_early(&self, m: &Master) -> Option<(String, u16)> {
        let f = self.cfailover(&m.inst.name)?;
        let addr = f.promotion_committed()?;
        (m.config_epoch >= f.epoch).then(|| addr.clone())
    }

    /// Config epoch announced in hellos: the failover epoch once clients are
    /// told the promoted address.
    pub(crate) fn hello_config_epoch(&self, m: &Master) -> u64 {
        match self.cmaster(&m.inst.name) {
            Some(cm) => match &cm.failover {
                Some(f) if f.phase >= Phase::ReconfSlaves && f.promoted.is_some() => {
                    f.epoch.max(cm.config_epoch)
                }
                _ => cm.config_epoch.max(m.config_epoch),
            },
            None => m.config_epoch,
        }
    }

    /// Flags of an instance of master `m` with the failover's per-instance
    /// flags, and the master's `failover-state` field.
    pub(crate) fn failover_desc(
        &self,
        m: &Master,
        inst: &super::instance::Instance,
    ) -> (super::instance::FlagExtras, DescExtras) {
        use super::types::InstanceKind;
        let mut x = super::instance::FlagExtras::default();
        let mut d = DescExtras::default();
        // A daemon that published the switch of a failover it does not
        // lead describes the new master, as Sentinel's observers do: no
        // failover flags or state.
        let me = self.raft.node_id;
        let cf = self
            .cfailover(&m.inst.name)
            .filter(|f| f.leader == me || self.published_early(m).is_none());
        match inst.kind {
            InstanceKind::Master => {
                x.failover_in_progress = match self.cmaster(&m.inst.name) {
                    Some(_) => cf.is_some(),
                    None => m.failover_in_progress,
                };
                x.no_quorum = self.cut_off(&m.inst.name);
                if let Some(f) = cf {
                    x.force_failover = f.manual;
                    let local = m.fo.run.as_ref().filter(|r| r.epoch == f.epoch);
                    d.failover_state = Some(match local.map(|r| &r.sub) {
                        Some(Sub::WaitPromotion { .. }) => "wait_promotion",
                        _ => phase_str(f.phase),
                    });
                }
            }
            InstanceKind::Replica => {
                if let Some(f) = cf {
                    x.promoted = f
                        .promoted
                        .as_ref()
                        .is_some_and(|(h, p)| same_addr(h, *p, &inst.host, inst.port));
                    if let Some(run) = m.fo.run.as_ref().filter(|r| r.epoch == f.epoch) {
                        x.reconf = run.reconf.get(&inst.name).map(|r| r.flag());
                    }
                }
            }
            InstanceKind::Sentinel => {}
        }
        (x, d)
    }

    /// The group monitors master `name` but this daemon knows no Raft
    /// leader: what it answers is the last committed state, and no decision
    /// can be committed now (flags `no_quorum`, INFO `quorum=no`, CKQUORUM).
    pub(crate) fn cut_off(&self, name: &str) -> bool {
        self.cmaster(name).is_some() && self.raft.leader.is_none()
    }

    /// ODOWN votes for master `name` from committed state, when
    /// the group monitors it.
    pub(crate) fn committed_down_votes(&self, name: &str) -> Option<usize> {
        self.cmaster(name).map(|cm| cm.down_votes.len())
    }

    /// A new committed state from the local Raft node: publish what it
    /// changed, once (points 3, 6, 7), then let the engine act on it.
    /// Returns the indices of the masters whose committed record changed or
    /// still had something to publish (the engine steps those at once, the
    /// others at the next tick). No copy of the whole state is made: with
    /// hundreds of masters a commit touches one or two of them.
    pub(crate) fn committed_in(
        &mut self,
        now: Millis,
        new: crate::core::group::GroupState,
        out: &mut Vec<Action>,
    ) -> Vec<usize> {
        let old = self.committed.replace(new);
        if let (Some(o), Some(n)) = (&old, &self.committed) {
            if o.voters != n.voters {
                let new_voters = n.voters.clone();
                self.members_left(&o.voters, &new_voters, out);
            }
        }
        let mut touched = Vec::new();
        for mi in 0..self.masters.len() {
            let m = &self.masters[mi];
            let Some(cm) = self.cmaster(&m.inst.name) else {
                continue;
            };
            let old_cm = old.as_ref().and_then(|o| o.masters.get(&m.inst.name));
            // What the per-master work below does for an unchanged record:
            // publish a start not seen yet, apply a newer switch, mirror the
            // failover flag. Anything else needs a change.
            let idle = old_cm == Some(cm)
                && cm
                    .failover
                    .as_ref()
                    .is_none_or(|f| f.epoch <= m.fo.start_seen)
                && cm.config_epoch <= m.config_epoch
                && self.promotion_to_publish(mi, cm).is_none()
                && m.failover_in_progress == cm.failover.is_some();
            if idle {
                continue;
            }
            touched.push(mi);
            let cm = cm.clone();
            let old_f = old_cm.and_then(|c| c.failover.clone());
            if let Some(of) = &old_f {
                let same = cm.failover.as_ref().is_some_and(|f| f.epoch == of.epoch);
                if !same && cm.config_epoch < of.epoch {
                    self.failover_aborted(mi, of, out);
                }
            }
            if let Some(f) = &cm.failover {
                if f.epoch > self.masters[mi].fo.start_seen {
                    self.failover_started(mi, f, now, out);
                }
            }
            self.apply_committed_options(mi, cm.quorum, &cm.options, now, out);
            if cm.config_epoch > self.masters[mi].config_epoch {
                let leader = old_f
                    .as_ref()
                    .filter(|f| f.epoch == cm.config_epoch)
                    .map(|f| f.leader);
                let to = Switch {
                    epoch: cm.config_epoch,
                    host: &cm.host,
                    port: cm.port,
                    leader,
                    history: cm.history.as_ref(),
                };
                self.switch_to(mi, to, now, out);
            }
            if let Some(f) = self.promotion_to_publish(mi, &cm) {
                let (host, port) = f.promoted.clone().unwrap_or_default();
                let to = Switch {
                    epoch: f.epoch,
                    host: &host,
                    port,
                    leader: Some(f.leader),
                    history: f.history.as_ref(),
                };
                self.switch_to(mi, to, now, out);
            }
            self.seed_history(mi, &cm);
            self.masters[mi].failover_in_progress = cm.failover.is_some();
        }
        let epoch = self.committed.as_ref().map_or(0, |c| c.current_epoch);
        if epoch > self.current_epoch {
            self.current_epoch = epoch;
            out.push(Action::Flush);
            emit(out, EventKind::NewEpoch, epoch.to_string(), None);
        }
        touched
    }

    /// A committed FailoverStart, seen for the first time here.
    fn failover_started(&mut self, mi: usize, f: &Failover, now: Millis, out: &mut Vec<Action>) {
        let me = self.raft.node_id;
        let myid = self.myid.clone();
        let leader_runid = self.runid_of_node(mi, f.leader);
        let name = self.masters[mi].inst.name.clone();
        if f.epoch > self.current_epoch {
            self.current_epoch = f.epoch;
            out.push(Action::Flush);
            emit(out, EventKind::NewEpoch, f.epoch.to_string(), Some(&name));
        }
        let m = &mut self.masters[mi];
        m.fo.start_seen = f.epoch;
        m.fo.last_start = Some(now);
        m.fo.manual = None;
        m.failover_start_time = now;
        m.failover_in_progress = true;
        if self.raft.initialized && f.leader == me {
            m.fo.led_start = f.epoch;
            emit(out, EventKind::TryFailover, m.prefix(), Some(&name));
            m.leader = Some(myid.clone());
            m.leader_epoch = f.epoch;
            out.push(Action::Flush);
            emit(
                out,
                EventKind::VoteForLeader,
                format!("{myid} {}", f.epoch),
                Some(&name),
            );
            emit(out, EventKind::ElectedLeader, m.prefix(), Some(&name));
            if self.simfailure_flags & SIMFAILURE_CRASH_AFTER_ELECTION != 0 {
                out.push(Action::SimulatedCrash);
            }
            emit(
                out,
                EventKind::FailoverStateSelectSlave,
                m.prefix(),
                Some(&name),
            );
        } else if let Some(runid) = leader_runid {
            m.leader = Some(runid.clone());
            m.leader_epoch = f.epoch;
            out.push(Action::Flush);
            emit(
                out,
                EventKind::VoteForLeader,
                format!("{runid} {}", f.epoch),
                Some(&name),
            );
        }
    }

    /// The master's replication history as committed at its promotion,
    /// where this daemon has none from the master's own INFO yet (right
    /// after the switch, or after a restart): its view of the promoted
    /// node as a replica may predate the promotion, and a master that dies
    /// before its first INFO here would leave that stale view for good.
    fn seed_history(&mut self, mi: usize, cm: &CommittedMaster) {
        let m = &mut self.masters[mi];
        let Some(h) = &cm.history else {
            return;
        };
        if m.inst.repl_id.is_some() || !same_addr(&m.inst.host, m.inst.port, &cm.host, cm.port) {
            return;
        }
        m.inst.repl_id = Some(h.replid.clone());
        m.inst.repl_id2 = Some(h.replid2.clone()).filter(|id| !id.is_empty());
        m.inst.repl_offset = Some(h.offset);
    }

    /// A committed failover vanished without a switch: it was aborted.
    fn failover_aborted(&mut self, mi: usize, of: &Failover, out: &mut Vec<Action>) {
        let m = &mut self.masters[mi];
        m.failover_in_progress = false;
        if m.fo.run.as_ref().is_none_or(|r| r.epoch != of.epoch) {
            return;
        }
        let Some(run) = m.fo.run.take() else {
            return;
        };
        if let Some(kind) = run.abort {
            let mut ev = super::event::Event::new(kind, m.prefix(), Some(&m.inst.name));
            ev.detail = run.abort_detail;
            out.push(Action::Emit(ev));
        }
        if run.paused {
            m.inst.link.hold_hello = false;
            out.push(Action::Unpause { id: m.inst.id });
            let (h, p) = (m.inst.host.clone(), m.inst.port);
            m.fo.paused.retain(|(ph, pp)| !same_addr(ph, *pp, &h, p));
        }
    }

    /// The committed failover of `cm` whose switch this daemon publishes
    /// now, ahead of the switch itself: its promotion is committed
    /// (`ReconfSlaves`), this daemon has not switched to that epoch, and it
    /// does not lead the failover. As Sentinel's observers switch on the
    /// leader's hello once the promoted replica confirmed (the leader
    /// announces it from then on), while the leader publishes
    /// `+switch-master` only after `+failover-end`.
    fn promotion_to_publish<'a>(&self, mi: usize, cm: &'a CommittedMaster) -> Option<&'a Failover> {
        let f = cm.failover.as_ref()?;
        f.promotion_committed()?;
        let leads = self.raft.initialized && f.leader == self.raft.node_id;
        (f.epoch > self.masters[mi].config_epoch && !leads).then_some(f)
    }

    /// This daemon switches master `mi` to a newer epoch: a committed
    /// SwitchMaster, or (observers) a committed promotion. Sentinel's
    /// `+config-update-from` (observers, when the leader is known) and
    /// `+switch-master`, the master reset with `+slave` per replica (old
    /// master included), a config flush, and the observer
    /// client-reconfig-script; once per epoch (the config epoch says what
    /// was published).
    fn switch_to(&mut self, mi: usize, to: Switch<'_>, now: Millis, out: &mut Vec<Action>) {
        let e = to.epoch;
        let led = self.raft.initialized && to.leader == Some(self.raft.node_id);
        let name = self.masters[mi].inst.name.clone();
        if e > self.current_epoch {
            self.current_epoch = e;
            out.push(Action::Flush);
            emit(out, EventKind::NewEpoch, e.to_string(), Some(&name));
        }
        let m = &mut self.masters[mi];
        m.config_epoch = e;
        m.fo.run = None;
        m.inst.link.hold_hello = false;
        m.fo.last_start = None;
        let ma = m.addr();
        if same_addr(&ma.host, ma.port, to.host, to.port) {
            out.push(Action::Flush);
            return;
        }
        let leader_runid = to.leader.and_then(|l| self.runid_of_node(mi, l));
        let m = &mut self.masters[mi];
        if !led {
            let from = leader_runid.and_then(|r| {
                m.sentinels.values().find(|s| {
                    s.runid
                        .as_deref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(&r))
                })
            });
            if let Some(si) = from {
                emit(
                    out,
                    EventKind::ConfigUpdateFrom,
                    prefix(si, &ma),
                    Some(&name),
                );
            }
        }
        emit(
            out,
            EventKind::SwitchMaster,
            format!(
                "{} {} {} {} {}",
                ma.name, ma.host, ma.port, to.host, to.port
            ),
            Some(&name),
        );
        let script = m.client_reconfig_script.clone();
        self.switch_master_addr(mi, to.host, to.port, now, out);
        if let Some(h) = to.history {
            // What the leader read when the promotion was confirmed, not
            // this daemon's last INFO of the node as a replica.
            let i = &mut self.masters[mi].inst;
            i.repl_id = Some(h.replid.clone());
            i.repl_id2 = Some(h.replid2.clone()).filter(|id| !id.is_empty());
            i.repl_offset = Some(h.offset);
        }
        if let (false, Some(script)) = (led, script) {
            out.push(super::sentinel::reconfig_script(
                script, &ma, "observer", to.host, to.port,
            ));
        }
    }

    /// A new Raft view. A change of leadership forgets the proposal rate
    /// limits: proposals in flight to the old leader are likely lost, and a
    /// new leader must act at once (speed rule of the design).
    pub(crate) fn raft_in(&mut self, now: Millis, view: super::types::RaftView) {
        if view.is_leader && !self.raft.is_leader {
            self.leader_since = Some(now);
        } else if !view.is_leader {
            self.leader_since = None;
        }
        if view != self.raft {
            for m in self.masters.values_mut() {
                m.fo.start_proposed = None;
                m.fo.takeover_proposed = None;
                m.fo.opinion = None;
                if let Some(w) = m.fo.manual.as_mut() {
                    w.proposed = 0;
                }
                if let Some((_, at)) = m.fo.run.as_mut().and_then(|r| r.want.as_mut()) {
                    *at = 0;
                }
            }
        }
        self.raft = view;
    }

    /// The engine's step, after every input that can move it.
    pub(crate) fn failover_step(&mut self, now: Millis, out: &mut Vec<Action>) {
        for mi in 0..self.masters.len() {
            self.failover_step_master(mi, now, out);
        }
    }

    /// The engine's step for one master (`Sentinel::handle` steps only the
    /// masters an input is about; every master on each tick).
    pub(crate) fn failover_step_master(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if self.committed.is_none() || mi >= self.masters.len() {
            return;
        }
        if self.cmaster(&self.masters[mi].inst.name).is_none() {
            self.propose_monitor(mi, now, out);
            return;
        }
        self.group_odown(mi, now, out);
        self.propose_opinion(mi, now, out);
        self.push_manual(mi, now, out);
        self.maybe_start(mi, now, out);
        self.maybe_takeover(mi, now, out);
        self.drive(mi, now, out);
        self.report_published(mi, now, out);
        self.hold_hellos_to_paused(mi);
        self.demote_after_switch(mi, now, out);
        self.release_paused(mi, out);
        self.fix_replicas(mi, now, out);
    }

    /// CLIENT UNPAUSE to every node this daemon paused that now reports
    /// role:slave (its writes get -READONLY from then on).
    fn release_paused(&mut self, mi: usize, out: &mut Vec<Action>) {
        let m = &mut self.masters[mi];
        if m.fo.paused.is_empty() {
            return;
        }
        let mut released = Vec::new();
        for (h, p) in &m.fo.paused {
            let inst = std::iter::once(&mut m.inst)
                .chain(m.replicas.values_mut())
                .find(|i| same_addr(&i.host, i.port, h, *p));
            let Some(i) = inst else {
                continue;
            };
            if i.link.cmd_up && i.info_refresh.is_some() && i.role_reported == Role::Slave {
                i.link.hold_hello = false;
                out.push(Action::Unpause { id: i.id });
                released.push((h.clone(), *p));
            }
        }
        m.fo.paused.retain(|a| !released.contains(a));
    }

    /// Every daemon, once it switched in a coordinated switchover (at its
    /// committed promotion, or at the switch): no hello PUBLISH to the old
    /// master until it reports role:slave — it may still be paused, and
    /// a paused PUBLISH would hold every later command of the link (its
    /// PINGs too: the node would be seen down, and a new leader could not
    /// demote it until the pause ran out).
    fn hold_hellos_to_paused(&mut self, mi: usize) {
        // The old master of the switch, and that of the coordinated
        // failover whose promotion this daemon published already (its view
        // lists the old master among the replicas).
        let name = &self.masters[mi].inst.name;
        let switched = self
            .pending_switch(mi)
            .filter(|sw| sw.coordinated)
            .map(|sw| (sw.host.clone(), sw.port));
        let promoted = self.cmaster(name).and_then(|cm| {
            cm.failover
                .as_ref()
                .filter(|f| f.coordinated && f.promotion_committed().is_some())
                .map(|_| (cm.host.clone(), cm.port))
        });
        for (host, port) in switched.into_iter().chain(promoted) {
            let key = super::event::format_addr(&host, port);
            if let Some(r) = self.masters[mi].replicas.get_mut(&key) {
                r.link.hold_hello = !(r.info_refresh.is_some() && r.role_reported == Role::Slave);
            }
        }
    }

    /// The committed switch whose old master still waits for its demotion
    /// (the record of the current config epoch).
    fn pending_switch(&self, mi: usize) -> Option<&Switched> {
        let cm = self.cmaster(&self.masters[mi].inst.name)?;
        cm.switched
            .as_ref()
            .filter(|sw| sw.epoch == cm.config_epoch)
    }

    /// Every daemon: once it has published `+switch-master` for the
    /// committed switch, or for a failover whose promotion is committed
    /// (its own config epoch reached that epoch), it says so in the log
    /// (`SwitchPublished`), until that is committed.
    fn report_published(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        let me = self.raft.node_id;
        let initialized = self.raft.initialized;
        if let Some(epoch) = self.pending_switch(mi).map(|sw| sw.epoch) {
            let m = &mut self.masters[mi];
            if m.fo.switch_seen.is_none_or(|(e, _)| e != epoch) {
                m.fo.switch_seen = Some((epoch, now));
            }
        }
        let name = &self.masters[mi].inst.name;
        let due = self
            .pending_switch(mi)
            .map(|sw| (sw.epoch, &sw.published))
            .or_else(|| {
                self.cfailover(name)
                    .filter(|f| f.promotion_committed().is_some())
                    .map(|f| (f.epoch, &f.published))
            });
        let Some((epoch, done)) = due.map(|(e, p)| (e, p.contains(&me))) else {
            return;
        };
        let m = &mut self.masters[mi];
        if done || !initialized || m.config_epoch < epoch {
            return;
        }
        if m.fo
            .publish_proposed
            .is_some_and(|(e, t)| e == epoch && now.saturating_sub(t) < REPROPOSE_MS)
        {
            return;
        }
        m.fo.publish_proposed = Some((epoch, now));
        out.push(Action::Propose(Command::SwitchPublished {
            name: m.inst.name.clone(),
            epoch,
            node: me,
        }));
    }

    /// Whether every daemon that can have published the switch did: every
    /// voter of the group either said so, or is a peer this daemon knows
    /// and cannot reach (no command link to it: crashed, restarting, cut
    /// off; it cannot get the commit from this leader either, and is not
    /// waited for). A voter this daemon does not know (no hello from it yet)
    /// or a hung one (its link still up) is waited for, up to the bound.
    fn switch_published_everywhere(&self, mi: usize, sw: &Switched) -> bool {
        let me = self.raft.node_id;
        if !sw.published.contains(&me) {
            return false;
        }
        // Every voter of the committed membership published, or is a peer
        // this daemon has no link to (it cannot publish to anyone either).
        // Learners are not counted: they are not in the membership's voters.
        let Some(voters) = self
            .committed
            .as_ref()
            .map(|c| &c.voters)
            .filter(|v| !v.is_empty())
        else {
            // No membership recorded yet (a group formed by an earlier
            // release): count the voters, and the peers out of reach by the
            // node id their runid gives.
            let unreachable = self.masters[mi]
                .sentinels
                .values()
                .filter(|s| !s.link.cmd_up)
                .filter_map(|s| s.runid.as_deref().and_then(node_id_from_myid))
                .filter(|n| !sw.published.contains(n))
                .collect::<std::collections::BTreeSet<u64>>()
                .len();
            return sw.published.len() + unreachable >= self.raft.voters.max(1);
        };
        let sentinels = &self.masters[mi].sentinels;
        voters.iter().all(|(id, member)| {
            sw.published.contains(id)
                || sentinels.values().any(|s| {
                    !s.link.cmd_up
                        && s.runid
                            .as_deref()
                            .is_some_and(|runid| member.is_daemon(*id, runid))
                })
        })
    }

    /// Raft leader, after a switch: the old master is demoted (REPLICAOF in
    /// the transaction that kills its clients, `+convert-to-slave`) only
    /// once every daemon published `+switch-master` and subscribers had
    /// `SUBSCRIBER_GRACE_MS`, or `SWITCH_PUBLISH_WAIT_MS` after the switch:
    /// a client that learns of a failover only from that message would
    /// otherwise reconnect to the demoted node and stay there. Until then a
    /// coordinated switchover keeps it paused (CLIENT PAUSE sent again
    /// before it expires, hellos held); a plain one leaves it its clients.
    /// Once its INFO says role:slave, a paused one is unpaused.
    fn demote_after_switch(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if !self.settled_leader(now) {
            return;
        }
        let Some(sw) = self.pending_switch(mi).cloned() else {
            return;
        };
        let everywhere = self.switch_published_everywhere(mi, &sw);
        let sane = self.master_looks_sane(mi, now);
        let name = self.masters[mi].inst.name.clone();
        // Another failover running (the new master died already): nothing
        // is reconfigured meanwhile — the node may even be its candidate —
        // and a pause left on the old master ends by itself within
        // failover-timeout. That failover's switch replaces the record.
        if self.cfailover(&name).is_some() {
            return;
        }
        let m = &mut self.masters[mi];
        let mut d = match m.fo.demotion {
            Some(d) if d.epoch == sw.epoch => d,
            _ => Demotion {
                epoch: sw.epoch,
                ..Demotion::default()
            },
        };
        let key = super::event::format_addr(&sw.host, sw.port);
        let timeout = m.failover_timeout;
        let (to_host, to_port) = (m.inst.host.clone(), m.inst.port);
        let ma = m.addr();
        let seen = m.fo.switch_seen.map_or(now, |(_, t)| t);
        let Some(r) = m.replicas.get_mut(&key).filter(|_| !d.done) else {
            return;
        };
        if r.info_refresh.is_some() && r.role_reported == Role::Slave {
            // It follows a master already (demoted here, or by a leader
            // before this one); a wrong one is `fix_replicas`' business.
            if sw.coordinated {
                r.link.hold_hello = false;
                if r.link.cmd_up {
                    out.push(Action::Unpause { id: r.id });
                }
                m.fo.paused
                    .retain(|(h, p)| !same_addr(h, *p, &sw.host, sw.port));
            }
            d.done = true;
            m.fo.demotion = Some(d);
            return;
        }
        // Since when it has held (not latched: a peer whose link was down
        // for a moment is waited for again once it is back).
        d.published_at = if everywhere {
            d.published_at.or(Some(now))
        } else {
            None
        };
        let ready = d
            .published_at
            .is_some_and(|t| now.saturating_sub(t) >= SUBSCRIBER_GRACE_MS)
            || now.saturating_sub(seen) >= SWITCH_PUBLISH_WAIT_MS;
        // Answers PING (none pending for long) and says it is a master.
        let answers = r.link.cmd_up
            && !r.s_down
            && r.link
                .act_ping_time
                .is_none_or(|t| now.saturating_sub(t) <= PENDING_PING_EVIDENCE_MS)
            && r.info_refresh.is_some()
            && r.role_reported == Role::Master;
        // Sent again only after an INFO at least FIX_RESEND_MS younger than
        // the last attempt still shows it a master.
        let recently = r.fix_sent_at.is_some_and(|t| {
            r.info_refresh
                .is_none_or(|i| i < t.saturating_add(FIX_RESEND_MS))
        });
        if ready && answers && sane {
            if !recently {
                r.fix_sent_at = Some(now);
                reconfigure(r, Some((to_host, to_port)), out);
                emit(out, EventKind::ConvertToSlave, prefix(r, &ma), Some(&name));
                // The INFO answered after the transaction shows the new
                // role (and then the unpause follows).
                ask_info(r, out);
            }
        } else if sw.coordinated && answers {
            // Kept paused while it waits.
            let due = d
                .paused_at
                .is_none_or(|t| now.saturating_sub(t) >= timeout / 3);
            if due {
                pause_writes(&mut m.fo.paused, r, timeout, out);
                d.paused_at = Some(now);
            }
        }
        m.fo.demotion = Some(d);
    }

    /// A master this daemon monitors and the group does not: the leader
    /// registers it (the group must know a master to vote on it).
    fn propose_monitor(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if !self.raft.is_leader {
            return;
        }
        let m = &mut self.masters[mi];
        if m.fo
            .monitor_proposed
            .is_some_and(|t| now.saturating_sub(t) < 1000)
        {
            return;
        }
        m.fo.monitor_proposed = Some(now);
        out.push(Action::Propose(Command::Monitor {
            name: m.inst.name.clone(),
            host: m.inst.host.clone(),
            port: m.inst.port,
            quorum: m.quorum,
        }));
    }

    /// ODOWN = local SDOWN and committed down votes >= quorum.
    pub(crate) fn group_odown(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        let Some(votes) = self.committed_down_votes(&self.masters[mi].inst.name) else {
            return;
        };
        super::sentinel::group_check_odown(&mut self.masters[mi], now, votes, out);
    }

    /// Proposes this daemon's SDOWN opinion while the committed votes
    /// disagree with it (rate-limited).
    fn propose_opinion(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        let node = self.raft.node_id;
        // Only voters' opinions count (a learner's would be refused).
        let voter = self.committed.as_ref().is_some_and(|c| c.is_voter(node));
        if !self.raft.initialized || !voter {
            return;
        }
        let name = self.masters[mi].inst.name.clone();
        let committed = self
            .cmaster(&name)
            .is_some_and(|cm| cm.down_votes.contains(&node));
        let m = &mut self.masters[mi];
        let local = m.inst.s_down;
        if local == committed {
            m.fo.opinion = None;
            return;
        }
        let due = match m.fo.opinion {
            Some((v, t)) => v != local || now.saturating_sub(t) >= REPROPOSE_MS,
            None => true,
        };
        if due {
            m.fo.opinion = Some((local, now));
            out.push(Action::Propose(Command::Opinion {
                name,
                node,
                down: local,
            }));
        }
    }

    /// A FailoverStart naming the Raft leader as the daemon that drives it
    /// (a SENTINEL FAILOVER received by a follower is forwarded to the
    /// leader; naming the leader spares a takeover). The epoch is above the
    /// local one too: a deployment migrated from redis-sentinel starts its
    /// group at epoch 0 while its config files carry the old epochs, and a
    /// switch must be newer than every daemon's config epoch to be applied.
    fn start_command(&mut self, name: &str, manual: bool, coordinated: bool) -> Command {
        let committed = self.committed.as_ref().map_or(0, |c| c.current_epoch);
        let local = self
            .masters
            .get(name)
            .map_or(0, |m| m.config_epoch)
            .max(self.current_epoch);
        let epoch = self.start_epoch(name, committed.max(local));
        Command::FailoverStart {
            name: name.to_string(),
            epoch,
            leader: self.raft.leader.unwrap_or(self.raft.node_id),
            manual,
            coordinated,
            by: Some(self.raft.node_id),
        }
    }

    /// Re-proposes a pending SENTINEL FAILOVER until a failover of the master
    /// is committed (or failover-timeout passes).
    fn push_manual(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        let name = self.masters[mi].inst.name.clone();
        let busy = self.cfailover(&name).is_some();
        let timeout = self.masters[mi].failover_timeout;
        let Some(want) = self.masters[mi].fo.manual else {
            return;
        };
        if busy || now.saturating_sub(want.since) > timeout {
            self.masters[mi].fo.manual = None;
            return;
        }
        if now.saturating_sub(want.proposed) < REPROPOSE_MS {
            return;
        }
        let cmd = self.start_command(&name, true, want.coordinated);
        out.push(Action::Propose(cmd));
        if let Some(w) = self.masters[mi].fo.manual.as_mut() {
            w.proposed = now;
        }
    }

    /// The Raft leader starts a failover of a committed-ODOWN
    /// master when the group is a majority of the daemons it knows.
    fn maybe_start(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if !self.raft.is_leader {
            return;
        }
        let m = &self.masters[mi];
        let Some(cm) = self.cmaster(&m.inst.name) else {
            return;
        };
        // Committed ODOWN, and the leader sees the master down itself: a
        // stale committed vote (a daemon that crashed before retracting it)
        // must not start a failover of a master the leader can reach.
        if cm.failover.is_some()
            || cm.down_votes.len() < m.quorum.max(1) as usize
            || !leader_sees_down(&m.inst, now)
        {
            return;
        }
        let known = m.sentinels.len() + 1;
        if self.raft.voters < known / 2 + 1 {
            return;
        }
        let spacing = m.failover_timeout.saturating_mul(2);
        if m.fo
            .last_start
            .is_some_and(|t| now.saturating_sub(t) < spacing)
        {
            return;
        }
        if m.fo
            .start_proposed
            .is_some_and(|t| now.saturating_sub(t) < REPROPOSE_MS)
        {
            return;
        }
        let name = m.inst.name.clone();
        let cmd = self.start_command(&name, false, false);
        self.masters[mi].fo.start_proposed = Some(now);
        out.push(Action::Propose(cmd));
    }

    /// The Raft leader takes over a committed failover led by
    /// another daemon.
    fn maybe_takeover(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if !self.raft.is_leader {
            return;
        }
        let me = self.raft.node_id;
        let name = self.masters[mi].inst.name.clone();
        let Some(f) = self.cfailover(&name) else {
            return;
        };
        if f.leader == me {
            return;
        }
        let epoch = f.epoch;
        let fo = &mut self.masters[mi].fo;
        if fo
            .takeover_proposed
            .is_some_and(|(e, t)| e == epoch && now.saturating_sub(t) < REPROPOSE_MS)
        {
            return;
        }
        fo.takeover_proposed = Some((epoch, now));
        out.push(Action::Propose(Command::FailoverTakeover {
            name,
            epoch,
            leader: me,
        }));
    }

    /// Replica selection for a failover: Sentinel's rules plus the safety rules (never
    /// an empty replica while the master had data, never one whose
    /// replication history differs from the master's).
    pub(crate) fn select_for_failover(&self, mi: usize, now: Millis) -> Option<(String, u16)> {
        let m = self.masters.get_index(mi)?.1;
        let key = self.select_slave(&m.inst.name, now)?;
        let r = m.replicas.get(&key)?;
        Some((r.host.clone(), r.port))
    }

    /// Drives the failover this daemon leads (points 4-6, 10).
    fn drive(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        let name = self.masters[mi].inst.name.clone();
        let me = self.raft.node_id;
        let f = match self.cfailover(&name) {
            Some(f) if self.raft.is_leader && f.leader == me => f.clone(),
            other => {
                // Not ours (any more): keep the run only while its abort may
                // still be committed, so its event can be published. Taking
                // it back later is a new election (+elected-leader).
                let epoch = other.map(|f| f.epoch);
                let m = &mut self.masters[mi];
                if epoch.is_some_and(|e| e == m.fo.led_start) && m.fo.run.is_some() {
                    m.fo.led_start = 0;
                }
                if m.fo.run.as_ref().is_some_and(|r| r.abort.is_none()) {
                    m.fo.run = None;
                }
                return;
            }
        };
        let mut run = match self.masters[mi].fo.run.take() {
            Some(r) if r.epoch == f.epoch => r,
            _ => Run::new(f.epoch, now, me),
        };
        if self.masters[mi].fo.led_start != f.epoch {
            // Taking over (or resuming after a restart): this daemon is now
            // the elected leader of the failover.
            self.masters[mi].fo.led_start = f.epoch;
            let ma = self.failover_maddr(mi);
            emit(
                out,
                EventKind::ElectedLeader,
                ma.master_prefix(),
                Some(&name),
            );
            if self.simfailure_flags & SIMFAILURE_CRASH_AFTER_ELECTION != 0 {
                out.push(Action::SimulatedCrash);
            }
        }
        if let Some((cmd, at)) = &mut run.want {
            if now.saturating_sub(*at) >= REPROPOSE_MS {
                out.push(Action::Propose(cmd.clone()));
                *at = now;
            }
        }
        if run.phase != Some(f.phase) {
            run.phase = Some(f.phase);
            run.since = now;
            run.want = None;
            run.abort = None;
            run.abort_detail = None;
            self.enter_phase(mi, &mut run, &f, now, out);
        }
        self.progress(mi, &mut run, &f, now, out);
        self.masters[mi].fo.run = Some(run);
    }

    fn promoted_key(&self, mi: usize, f: &Failover) -> Option<String> {
        let (h, p) = f.promoted.as_ref()?;
        self.masters[mi]
            .replicas
            .iter()
            .find(|(_, r)| same_addr(&r.host, r.port, h, *p))
            .map(|(k, _)| k.clone())
    }

    fn enter_phase(
        &mut self,
        mi: usize,
        run: &mut Run,
        f: &Failover,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let name = self.masters[mi].inst.name.clone();
        match f.phase {
            Phase::SelectSlave => {
                // Fresh facts of both sides: the replicas' INFO, and the
                // master's when it answers (its replication ids are what
                // the replicas' histories are judged against).
                let m = &mut self.masters[mi];
                let mut waiting: Vec<(InstanceId, u64)> = m
                    .replicas
                    .values_mut()
                    .filter_map(|r| ask_info(r, out).map(|t| (r.id, t)))
                    .collect();
                if !m.inst.s_down && !m.inst.link.info_inflight {
                    waiting.extend(ask_info(&mut m.inst, out).map(|t| (m.inst.id, t)));
                }
                run.sub = Sub::Asking { waiting, at: now };
            }
            Phase::SendSlaveofNoone | Phase::WaitPromotion => {
                let Some(key) = self.promoted_key(mi, f) else {
                    run.sub = Sub::WaitLink;
                    return;
                };
                let m = &self.masters[mi];
                let ma = m.addr();
                if let Some(r) = m.replicas.get(&key) {
                    let p = prefix(r, &ma);
                    emit(out, EventKind::SelectedSlave, p.clone(), Some(&name));
                    emit(
                        out,
                        EventKind::FailoverStateSendSlaveofNoone,
                        p,
                        Some(&name),
                    );
                }
                run.sub = Sub::WaitLink;
            }
            Phase::ReconfSlaves | Phase::UpdateConfig => {
                let timeout = self.masters[mi].failover_timeout;
                let ma = self.failover_maddr(mi);
                emit(
                    out,
                    EventKind::FailoverStateReconfSlaves,
                    ma.master_prefix(),
                    Some(&name),
                );
                // The old master is left alone until after the switch (see
                // `demote_after_switch`). A coordinated switchover taken
                // over here pauses it again: the pause of the daemon that
                // led so far is not known to this one and may run out.
                let m = &mut self.masters[mi];
                let old = instance_at(&mut m.inst, &mut m.replicas, &ma.host, ma.port);
                if let Some(old) = old.filter(|o| o.link.cmd_up && !o.s_down) {
                    if f.coordinated && !run.paused {
                        pause_writes(&mut m.fo.paused, old, timeout, out);
                        run.paused = true;
                        run.paused_at = now;
                    }
                }
                run.reconf.clear();
                run.sub = Sub::Reconf;
            }
        }
    }
}

/// The reconfiguration transaction to `inst`. Its `CLIENT KILL TYPE pubsub`
/// drops this daemon's own pubsub link to the node: reconnect it at the
/// next tick rather than a reconnect period after the last connect, or the
/// node counts as disconnected (skipped by `reconf_slaves`, its PINGs held)
/// for up to a second.
fn reconfigure(
    inst: &mut super::instance::Instance,
    replicaof: Option<(String, u16)>,
    out: &mut Vec<Action>,
) {
    inst.link.last_reconn_time = None;
    out.push(Action::Reconfigure {
        id: inst.id,
        replicaof,
    });
}

/// `CLIENT PAUSE <ms> WRITE` (with its INFO) on a master being switched
/// over; no hello PUBLISH on that link meanwhile (a paused PUBLISH would hold
/// every later command of the link).
fn pause_writes(
    paused: &mut Vec<(String, u16)>,
    inst: &mut super::instance::Instance,
    ms: u64,
    out: &mut Vec<Action>,
) {
    if !paused
        .iter()
        .any(|(h, p)| same_addr(h, *p, &inst.host, inst.port))
    {
        paused.push((inst.host.clone(), inst.port));
    }
    inst.link.hold_hello = true;
    inst.link.pending += 1;
    out.push(Action::PauseWrites { id: inst.id, ms });
}

impl Sentinel {
    fn propose_abort(
        run: &mut Run,
        name: &str,
        kind: EventKind,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        run.abort = Some(kind);
        run.sub = Sub::Decided;
        run.propose(
            Command::FailoverAbort {
                name: name.to_string(),
                epoch: run.epoch,
                reason: kind.channel().to_string(),
                by: None,
            },
            now,
            out,
        );
    }

    /// `-failover-abort-slave-timeout` once the current step has waited
    /// more than `timeout` since it began; whether it aborted.
    fn abort_on_timeout(
        run: &mut Run,
        name: &str,
        timeout: u64,
        now: Millis,
        out: &mut Vec<Action>,
    ) -> bool {
        let late = now.saturating_sub(run.since) > timeout;
        if late {
            Self::propose_abort(run, name, EventKind::FailoverAbortSlaveTimeout, now, out);
        }
        late
    }

    fn progress(
        &mut self,
        mi: usize,
        run: &mut Run,
        f: &Failover,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let name = self.masters[mi].inst.name.clone();
        let timeout = self.masters[mi].failover_timeout;
        self.refresh_pause(mi, run, now, out);
        match run.sub.clone() {
            Sub::Decided => {}
            Sub::Asking { waiting, at } => {
                let m = &self.masters[mi];
                let still: Vec<(InstanceId, u64)> = waiting
                    .into_iter()
                    .filter(|(id, target)| {
                        std::iter::once(&m.inst)
                            .chain(m.replicas.values())
                            .find(|r| r.id == *id)
                            .is_some_and(|r| r.link.cmd_up && r.info_count < *target)
                    })
                    .collect();
                if !still.is_empty() && now.saturating_sub(at) < SELECT_INFO_WAIT_MS {
                    run.sub = Sub::Asking { waiting: still, at };
                    return;
                }
                match self.select_for_failover(mi, now) {
                    None => {
                        let refused = self.history_refusals(&name);
                        Self::propose_abort(
                            run,
                            &name,
                            EventKind::FailoverAbortNoGoodSlave,
                            now,
                            out,
                        );
                        run.abort_detail = (!refused.is_empty()).then(|| refused.join("; "));
                    }
                    Some(addr) => {
                        run.sub = Sub::Decided;
                        run.propose(
                            Command::FailoverPhase {
                                name,
                                epoch: run.epoch,
                                phase: Phase::SendSlaveofNoone,
                                promoted: Some(addr),
                                history: None,
                                by: None,
                            },
                            now,
                            out,
                        );
                    }
                }
            }
            Sub::WaitLink => {
                let key = self.promoted_key(mi, f);
                let up = key
                    .as_ref()
                    .and_then(|k| self.masters[mi].replicas.get(k))
                    .is_some_and(|r| r.link.cmd_up);
                if !up {
                    Self::abort_on_timeout(run, &name, timeout, now, out);
                    return;
                }
                let Some(key) = key else {
                    return;
                };
                if f.coordinated && !run.paused {
                    let m = &mut self.masters[mi];
                    if !m.inst.link.cmd_up {
                        // A link that is merely down (reset by a switch, a
                        // partition between us and a master that still takes
                        // writes) is no reason to skip the pause: only a
                        // master the group agrees is down (ODOWN from the
                        // committed votes) is promoted over unpaused;
                        // otherwise wait for the link, and give up at
                        // failover-timeout.
                        if m.inst.o_down {
                            self.promote(mi, run, &key, now, out);
                        } else {
                            Self::abort_on_timeout(run, &name, timeout, now, out);
                        }
                        return;
                    }
                    // No hello PUBLISH on the master's link from now on (a
                    // paused PUBLISH would hold every later command of the
                    // link); one already in flight is waited for.
                    m.inst.link.hold_hello = true;
                    if m.inst.link.hello_inflight {
                        if Self::abort_on_timeout(run, &name, timeout, now, out) {
                            m.inst.link.hold_hello = false;
                        }
                        return;
                    }
                    pause_writes(&mut m.fo.paused, &mut m.inst, timeout, out);
                    run.paused = true;
                    run.paused_at = now;
                    run.last_poll = now;
                    run.since = now;
                    run.sub = Sub::CatchUp {
                        offset: None,
                        info_target: None,
                    };
                    return;
                }
                self.promote(mi, run, &key, now, out);
            }
            Sub::CatchUp {
                mut offset,
                info_target,
            } => {
                let Some(key) = self.promoted_key(mi, f) else {
                    return;
                };
                let m = &mut self.masters[mi];
                if offset.is_none() && info_target.is_some_and(|t| m.inst.info_count >= t) {
                    offset = m.inst.repl_offset;
                    run.sub = Sub::CatchUp {
                        offset,
                        info_target,
                    };
                }
                // The same history (a replica that resynced from a master
                // restarted empty counts offsets of another history), and
                // every byte the paused master had.
                let master_replid = m.inst.repl_id.clone();
                let caught_up = offset.is_some_and(|o| {
                    m.replicas.get(&key).is_some_and(|r| {
                        r.slave_repl_offset >= o
                            && master_replid
                                .as_ref()
                                .is_none_or(|id| r.repl_id.as_ref() == Some(id))
                    })
                });
                if caught_up {
                    self.promote(mi, run, &key, now, out);
                    return;
                }
                if Self::abort_on_timeout(run, &name, timeout, now, out) {
                    return;
                }
                if now.saturating_sub(run.last_poll) >= CATCHUP_POLL_MS {
                    run.last_poll = now;
                    if offset.is_none() && info_target.is_none() {
                        let t = ask_info(&mut m.inst, out);
                        run.sub = Sub::CatchUp {
                            offset,
                            info_target: t,
                        };
                    }
                    if let Some(r) = m.replicas.get_mut(&key) {
                        if !r.link.info_inflight {
                            ask_info(r, out);
                        }
                    }
                }
            }
            Sub::WaitPromotion { count } => {
                let Some(key) = self.promoted_key(mi, f) else {
                    return;
                };
                let crash_after_promotion =
                    self.simfailure_flags & SIMFAILURE_CRASH_AFTER_PROMOTION != 0;
                let m = &mut self.masters[mi];
                let ma = m.addr();
                let Some(r) = m.replicas.get_mut(&key) else {
                    return;
                };
                if r.info_count > count && r.role_reported == Role::Master {
                    let p = prefix(r, &ma);
                    let (to_host, to_port) = (r.host.clone(), r.port);
                    emit(out, EventKind::PromotedSlave, p, Some(&name));
                    if crash_after_promotion {
                        out.push(Action::SimulatedCrash);
                    }
                    if let Some(script) = m.client_reconfig_script.clone() {
                        out.push(super::sentinel::reconfig_script(
                            script, &ma, "leader", &to_host, to_port,
                        ));
                    }
                    // The history it took is committed with the phase: every
                    // daemon judges replicas against it after the switch,
                    // whatever INFO of it each one happened to see.
                    let history = r.repl_id.clone().map(|replid| ReplHistory {
                        replid,
                        replid2: r.repl_id2.clone().unwrap_or_default(),
                        offset: r.repl_offset.unwrap_or(0),
                    });
                    // The old master is not touched here, paused or not: it
                    // is demoted after the switch is published.
                    run.sub = Sub::Decided;
                    run.propose(
                        Command::FailoverPhase {
                            name,
                            epoch: run.epoch,
                            phase: Phase::ReconfSlaves,
                            promoted: None,
                            history,
                            by: None,
                        },
                        now,
                        out,
                    );
                    return;
                }
                if Self::abort_on_timeout(run, &name, timeout, now, out) {
                    return;
                }
                let fast = now.saturating_sub(run.since) < FAST_POLL_WINDOW_MS;
                let due = now.saturating_sub(run.last_poll) >= POLL_MS;
                if (fast || due) && !r.link.info_inflight {
                    run.last_poll = now;
                    ask_info(r, out);
                }
            }
            Sub::Reconf => self.reconf_step(mi, run, f, now, out),
        }
    }

    /// Coordinated: CLIENT PAUSE again on the old master before the last
    /// one runs out (its timeout is failover-timeout; catch-up, promotion
    /// and the replicas' reconfiguration may each take up to that, and the
    /// old master stays paused until it is demoted after the switch).
    fn refresh_pause(&mut self, mi: usize, run: &mut Run, now: Millis, out: &mut Vec<Action>) {
        let timeout = self.masters[mi].failover_timeout;
        if !run.paused || now.saturating_sub(run.paused_at) < timeout / 3 {
            return;
        }
        let ma = self.failover_maddr(mi);
        let m = &mut self.masters[mi];
        let old = instance_at(&mut m.inst, &mut m.replicas, &ma.host, ma.port);
        if let Some(old) = old.filter(|o| o.link.cmd_up) {
            pause_writes(&mut m.fo.paused, old, timeout, out);
            run.paused_at = now;
        }
    }

    /// The old master's offset, read right after CLIENT PAUSE (coordinated
    /// mode): the replica must reach it before it is promoted.
    pub(crate) fn pause_reply(
        &mut self,
        now: Millis,
        id: InstanceId,
        info: Option<String>,
        out: &mut Vec<Action>,
    ) {
        let Some((mi, slot)) = self.locate(id) else {
            return;
        };
        // A pause sent again after the switch (the old master is a replica
        // of the record by then) needs no answer beyond its bookkeeping.
        if let Some(inst) = self.slot_mut(mi, slot) {
            inst.link.reply_received();
        }
        let m = &mut self.masters[mi];
        if m.inst.id != id {
            return;
        }
        let Some(mut run) = m.fo.run.take() else {
            return;
        };
        if let Sub::CatchUp {
            offset: None,
            info_target,
        } = run.sub
        {
            let parsed = info.as_deref().map(|t| super::info::parse(t, true));
            let offset = parsed.as_ref().and_then(|p| p.master_repl_offset);
            match offset {
                Some(o) => {
                    m.inst.repl_offset = Some(o);
                    if let Some(id) = parsed.and_then(|p| p.master_replid) {
                        m.inst.repl_id = Some(id);
                    }
                    run.sub = Sub::CatchUp {
                        offset: Some(o),
                        info_target,
                    };
                    run.last_poll = now.saturating_sub(CATCHUP_POLL_MS);
                }
                None => {
                    // Not paused (refused, timed out): no guarantee can be
                    // given, so no promotion.
                    let name = m.inst.name.clone();
                    Self::propose_abort(
                        &mut run,
                        &name,
                        EventKind::FailoverAbortSlaveTimeout,
                        now,
                        out,
                    );
                }
            }
        }
        self.masters[mi].fo.run = Some(run);
    }

    /// SLAVEOF NO ONE to the chosen replica, then wait for it to say
    /// role:master on an INFO asked right away.
    fn promote(&mut self, mi: usize, run: &mut Run, key: &str, now: Millis, out: &mut Vec<Action>) {
        let m = &mut self.masters[mi];
        let ma = m.addr();
        let Some(r) = m.replicas.get_mut(key) else {
            return;
        };
        let count = r.info_count;
        // A node still paused by an earlier switchover must take writes
        // once it is the master.
        if m.fo
            .paused
            .iter()
            .any(|(h, p)| same_addr(h, *p, &r.host, r.port))
        {
            m.fo.paused
                .retain(|(h, p)| !same_addr(h, *p, &r.host, r.port));
            r.link.hold_hello = false;
            out.push(Action::Unpause { id: r.id });
        }
        reconfigure(r, None, out);
        emit(
            out,
            EventKind::FailoverStateWaitPromotion,
            prefix(r, &ma),
            Some(&ma.name),
        );
        ask_info(r, out);
        run.last_poll = now;
        run.since = now;
        run.sub = Sub::WaitPromotion { count };
    }

    /// `reconf_slaves` as Sentinel runs it, with fast INFO polling, then the end
    /// detection and the SwitchMaster proposal.
    fn reconf_step(
        &mut self,
        mi: usize,
        run: &mut Run,
        f: &Failover,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some((ph, pp)) = f.promoted.clone() else {
            return;
        };
        let slave_reconf_timeout = self.timing.slave_reconf_timeout;
        // The master being replaced is no replica to reconfigure here (a
        // daemon that switched on a peer's hello before it led this failover
        // lists it among the replicas): it is demoted after the switch.
        let (oh, op) = self
            .cmaster(&self.masters[mi].inst.name)
            .map(|cm| (cm.host.clone(), cm.port))
            .unwrap_or_default();
        let skip = |r: &super::instance::Instance| {
            same_addr(&r.host, r.port, &ph, pp) || same_addr(&r.host, r.port, &oh, op)
        };
        let ma = self.failover_maddr(mi);
        let m = &mut self.masters[mi];
        let name = ma.name.clone();
        // INFO-driven transitions.
        for (key, r) in m.replicas.iter() {
            let Some(state) = run.reconf.get(key).copied() else {
                continue;
            };
            let points = r
                .slave_master_host
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(&ph))
                && r.slave_master_port == i64::from(pp);
            let mut state = state;
            if let Reconf::Sent { count, .. } = state {
                if r.info_count > count && points {
                    state = Reconf::Inprog;
                    emit(
                        out,
                        EventKind::SlaveReconfInprog,
                        prefix(r, &ma),
                        Some(&name),
                    );
                }
            }
            if state == Reconf::Inprog && r.slave_master_link_up {
                state = Reconf::Done;
                emit(out, EventKind::SlaveReconfDone, prefix(r, &ma), Some(&name));
            }
            run.reconf.insert(key.clone(), state);
        }
        // Send SLAVEOF to the next replicas within parallel-syncs.
        let mut in_progress = run
            .reconf
            .values()
            .filter(|s| matches!(s, Reconf::Sent { .. } | Reconf::Inprog))
            .count();
        let parallel = m.parallel_syncs.max(1) as usize;
        for (key, r) in m.replicas.iter_mut() {
            if in_progress >= parallel {
                break;
            }
            if skip(r) {
                continue;
            }
            let state = run.reconf.get(key).copied();
            if state == Some(Reconf::Done) {
                continue;
            }
            if let Some(Reconf::Sent { at, .. }) = state {
                if now.saturating_sub(at) > slave_reconf_timeout {
                    emit(
                        out,
                        EventKind::SlaveReconfSentTimeout,
                        prefix(r, &ma),
                        Some(&name),
                    );
                    run.reconf.insert(key.clone(), Reconf::Done);
                }
                continue;
            }
            if state == Some(Reconf::Inprog) || r.link.disconnected() {
                continue;
            }
            reconfigure(r, Some((ph.clone(), pp)), out);
            run.reconf.insert(
                key.clone(),
                Reconf::Sent {
                    at: now,
                    count: r.info_count,
                },
            );
            emit(out, EventKind::SlaveReconfSent, prefix(r, &ma), Some(&name));
            in_progress += 1;
        }
        // Poll the replicas being reconfigured.
        let fast = now.saturating_sub(run.since) < FAST_POLL_WINDOW_MS;
        let due = now.saturating_sub(run.last_poll) >= POLL_MS;
        if fast || due {
            run.last_poll = now;
            for (key, r) in m.replicas.iter_mut() {
                let busy = matches!(
                    run.reconf.get(key),
                    Some(Reconf::Sent { .. } | Reconf::Inprog)
                );
                if busy && !r.link.info_inflight {
                    ask_info(r, out);
                }
            }
        }
        // End detection (the promoted replica is the master of this
        // daemon's view if it published the switch before it took over).
        let promoted_down = std::iter::once(&m.inst)
            .chain(m.replicas.values())
            .any(|r| same_addr(&r.host, r.port, &ph, pp) && r.s_down);
        if promoted_down {
            return;
        }
        let pending = m
            .replicas
            .iter()
            .filter(|(k, r)| !skip(r) && !r.s_down && run.reconf.get(*k) != Some(&Reconf::Done))
            .count();
        let timed_out = now.saturating_sub(run.since) > m.failover_timeout;
        // Coordinated: the old master stays paused through the switch; it
        // is demoted, then unpaused, once the switch is published.
        if pending > 0 && !timed_out {
            return;
        }
        if timed_out {
            emit(
                out,
                EventKind::FailoverEndForTimeout,
                ma.master_prefix(),
                Some(&name),
            );
        }
        emit(out, EventKind::FailoverEnd, ma.master_prefix(), Some(&name));
        if timed_out {
            for (key, r) in m.replicas.iter_mut() {
                if skip(r)
                    || matches!(
                        run.reconf.get(key),
                        Some(Reconf::Done | Reconf::Sent { .. })
                    )
                    || r.link.disconnected()
                {
                    continue;
                }
                reconfigure(r, Some((ph.clone(), pp)), out);
                emit(
                    out,
                    EventKind::SlaveReconfSentBe,
                    prefix(r, &ma),
                    Some(&name),
                );
                run.reconf.insert(
                    key.clone(),
                    Reconf::Sent {
                        at: now,
                        count: r.info_count,
                    },
                );
            }
        }
        run.sub = Sub::Decided;
        run.propose(
            Command::SwitchMaster {
                name,
                epoch: run.epoch,
                host: ph,
                port: pp,
                by: None,
            },
            now,
            out,
        );
    }

    /// The Raft leader, for at least `LEADER_SETTLE_MS`.
    fn settled_leader(&self, now: Millis) -> bool {
        self.raft.is_leader
            && self
                .leader_since
                .is_some_and(|t| now.saturating_sub(t) >= LEADER_SETTLE_MS)
    }

    /// Sentinel's "master looks sane" before it reconfigures other nodes to
    /// follow it: at the committed address, up, and saying role:master in
    /// a recent INFO.
    fn master_looks_sane(&self, mi: usize, now: Millis) -> bool {
        let m = &self.masters[mi];
        let Some(cm) = self.cmaster(&m.inst.name) else {
            return false;
        };
        let info_period = self.timing.info_period;
        same_addr(&m.inst.host, m.inst.port, &cm.host, cm.port)
            && !m.inst.s_down
            && !m.inst.o_down
            && m.inst.role_reported == Role::Master
            && m.inst
                .info_refresh
                .is_some_and(|t| now.saturating_sub(t) < info_period.saturating_mul(2))
    }

    /// Leader only, no failover running: a replica that reports role:master
    /// (a node back as a master; the old master of the last switch is
    /// `demote_after_switch`'s) is made a replica as soon as it answers
    /// (+convert-to-slave); a replica following the wrong master is
    /// re-pointed after failover-timeout (+fix-slave-config).
    fn fix_replicas(&mut self, mi: usize, now: Millis, out: &mut Vec<Action>) {
        if !self.settled_leader(now) {
            return;
        }
        let name = self.masters[mi].inst.name.clone();
        let Some(cm) = self.cmaster(&name) else {
            return;
        };
        if cm.failover.is_some() {
            return;
        }
        let (host, port) = (cm.host.clone(), cm.port);
        let waiting = self
            .pending_switch(mi)
            .map(|sw| (sw.epoch, sw.host.clone(), sw.port));
        if !self.master_looks_sane(mi, now) {
            return;
        }
        let m = &mut self.masters[mi];
        let ma = m.addr();
        let timeout = m.failover_timeout;
        let demoted = m.fo.demotion.filter(|d| d.done).map(|d| d.epoch);
        for r in m.replicas.values_mut() {
            // The old master of the switch is `demote_after_switch`'s until
            // it follows a master.
            if let Some((e, h, p)) = &waiting {
                if demoted != Some(*e) && same_addr(&r.host, r.port, h, *p) {
                    continue;
                }
            }
            // Sent again only if an INFO at least FIX_RESEND_MS younger than
            // the last attempt still shows the problem.
            let recently_fixed = r.fix_sent_at.is_some_and(|t| {
                r.info_refresh
                    .is_none_or(|i| i < t.saturating_add(FIX_RESEND_MS))
            });
            if !r.link.cmd_up || r.info_refresh.is_none() || recently_fixed {
                continue;
            }
            let kind = if r.role_reported == Role::Master {
                // Answers PING (nothing pending) and says it is a master.
                if r.link.act_ping_time.is_some() {
                    continue;
                }
                EventKind::ConvertToSlave
            } else {
                let wrong = match &r.slave_master_host {
                    Some(h) => !same_addr(
                        h,
                        u16::try_from(r.slave_master_port).unwrap_or(0),
                        &host,
                        port,
                    ),
                    None => false,
                };
                let quiet = |t: Option<Millis>| t.is_none_or(|t| now.saturating_sub(t) > timeout);
                if !wrong
                    || now.saturating_sub(r.slave_conf_change_time) <= timeout
                    || !quiet(r.s_down_since)
                    || !quiet(r.o_down_since)
                    || r.s_down
                {
                    continue;
                }
                EventKind::FixSlaveConfig
            };
            r.fix_sent_at = Some(now);
            reconfigure(r, Some((host.clone(), port)), out);
            emit(out, kind, prefix(r, &ma), Some(&name));
            // Confirmation (and the role change) without waiting for the
            // periodic INFO.
            ask_info(r, out);
        }
    }

    /// SENTINEL FAILOVER: -INPROG, -NOGOODSLAVE, else propose a
    /// manual FailoverStart (re-proposed until committed) and answer +OK.
    pub(crate) fn manual_failover(
        &mut self,
        mi: usize,
        coordinated: bool,
        now: Millis,
        out: &mut Vec<Action>,
    ) -> Result<(), super::commands::CmdError> {
        use super::commands::CmdError;
        let name = self.masters[mi].inst.name.clone();
        let busy = match self.cmaster(&name) {
            Some(cm) => cm.failover.is_some(),
            None => self.masters[mi].failover_in_progress,
        } || self.masters[mi].fo.manual.is_some();
        if busy {
            return Err(CmdError("INPROG Failover already in progress".into()));
        }
        if self.select_for_failover(mi, now).is_none() {
            return Err(CmdError(
                "NOGOODSLAVE No suitable replica to promote".into(),
            ));
        }
        if !self.raft.initialized || self.cmaster(&name).is_none() {
            return Err(CmdError(
                "NOQUORUM No Raft group: a failover cannot be committed now".into(),
            ));
        }
        // A planned switchover loses no acknowledged write unless the master
        // is set `coordinated-failover no` (Sentinel's plain failover) and
        // the command did not ask for it.
        let coordinated = coordinated || !self.masters[mi].fo.plain_manual;
        let cmd = self.start_command(&name, true, coordinated);
        out.push(Action::Propose(cmd));
        self.masters[mi].fo.manual = Some(ManualWant {
            coordinated,
            since: now,
            proposed: now,
        });
        Ok(())
    }
}
